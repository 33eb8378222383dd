/// Where a node that stops cluster services (`ha-cmd STOP|TAKE|FORCE`) is on its way out.
/// A node with no phase is not stopping: its departure is a failure (`TE_FAIL_NODE` state 0).
public enum StopPhase: Sendable, Hashable {
    /// It asked to stop (`mode`); its `TE_FAIL_NODE` state `mode.state` has not ended.
    case stopping(StopMode)
    /// Its `TE_FAIL_NODE` ended, however it ended: it takes part in no new event, and its
    /// departure raises nothing.
    case departing(StopMode)

    /// What happens to a stopping node, in the order the coordinator applies it.
    public enum Event: Sendable, Hashable {
        /// `stopServices` for the node.
        case stopRequested(StopMode)
        /// A `TE_FAIL_NODE` of the node with this state (not 0) ended.
        case stopEventEnded(state: Int)
        /// The node left the cluster.
        case left
    }

    public var mode: StopMode {
        switch self {
        case .stopping(let mode), .departing(let mode): mode
        }
    }

    public var isDeparting: Bool {
        if case .departing = self { true } else { false }
    }

    /// The transition: the phase after `event` (nil: not stopping, or gone), and whether the
    /// event counts. A stop request counts only for a node not stopping yet (a second one is
    /// ignored); the end of a `TE_FAIL_NODE` counts when its state is the node's stop mode's
    /// (the node leaves now: `.leaveCluster` for this node), again if it ends twice; a
    /// departure counts as quiet only once the node is departing: one that leaves before
    /// (killed, a SIGTERM fallen back to a fast stop, a partition) may still hold what it was
    /// releasing, so that is a failure, as a crash.
    public static func next(_ phase: StopPhase?, on event: Event) -> (phase: StopPhase?, counts: Bool) {
        switch (phase, event) {
        case (nil, .stopRequested(let mode)):
            (.stopping(mode), true)
        case (_?, .stopRequested):
            (phase, false)
        case (let phase?, .stopEventEnded(let state)) where phase.mode.state == state:
            (.departing(phase.mode), true)
        case (_, .stopEventEnded):
            (phase, false)
        case (.departing?, .left):
            (nil, true)
        case (_, .left):
            (nil, false)
        }
    }
}

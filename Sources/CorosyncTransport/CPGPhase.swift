/// The life of a `CPGConnection`, from joined to closed. The stream of events is open in
/// `open`, `leaving` and `closing`, and has ended in the others; `next(_:)` is the only way
/// from one case to another.
enum CPGPhase: Sendable, Hashable {
    /// In the group: messages go out, events come in.
    case open
    /// `leave()` was called: the stream ends at the configuration change that shows this
    /// member left, or at `deadline` (ns, CLOCK_MONOTONIC).
    case leaving(deadline: UInt64)
    /// The leave took effect (or its deadline passed): the stream has ended.
    case left
    /// Corosync went away (a failed dispatch, the socket hung up): the stream has ended with
    /// `.lost(reason:)`.
    case lost(reason: String)
    /// `close()` was called while the stream was open: nothing is dispatched any more, and the
    /// stream ends once the handles are finalized (or with `.lost` from a dispatch that was
    /// still running).
    case closing
    /// Closed, the stream ended.
    case closed

    enum Event: Sendable, Hashable {
        /// `leave()`, with the deadline for the configuration change that shows it.
        case leave(deadline: UInt64)
        /// The configuration change showing this member left arrived, or the deadline passed.
        case leaveTookEffect
        /// The connection to corosync is lost.
        case lost(reason: String)
        /// `close()`.
        case close
        /// `close()` finalized the handles.
        case finalized
    }

    /// The transition: true when `event` applies in this phase (and changed it), false when it
    /// is ignored. Then, for the caller: after `.leave`, call cpg_leave; after `.close`, stop
    /// dispatching and finalize; after `.leaveTookEffect`, `.lost` or `.finalized`, end the
    /// stream (this is the one time it ends).
    mutating func next(_ event: Event) -> Bool {
        let next: CPGPhase? =
            switch (self, event) {
            case (.open, .leave(let deadline)): .leaving(deadline: deadline)
            case (.leaving, .leaveTookEffect): .left
            case (.open, .lost(let reason)), (.leaving, .lost(let reason)): .lost(reason: reason)
            case (.open, .close), (.leaving, .close): .closing
            case (.left, .close), (.lost, .close): .closed
            // A dispatch that was running when close() was called may still find corosync gone.
            case (.closing, .lost), (.closing, .finalized): .closed
            default: nil
            }
        guard let next else { return false }
        self = next
        return true
    }

    /// Whether events still go to the stream (it has not ended).
    var streamOpen: Bool {
        switch self {
        case .open, .leaving, .closing: true
        case .left, .lost, .closed: false
        }
    }

    /// Whether the loop still dispatches the connection.
    var dispatches: Bool {
        switch self {
        case .open, .leaving: true
        case .left, .lost, .closing, .closed: false
        }
    }

    var leaveDeadline: UInt64? {
        if case .leaving(let deadline) = self { deadline } else { nil }
    }

    /// Why a message cannot be sent now; nil when it can.
    var sendError: CPGError? {
        switch self {
        case .open: nil
        case .leaving, .left: .left
        case .lost(let reason): .lost(reason: reason)
        case .closing, .closed: .closed
        }
    }
}

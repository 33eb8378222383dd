import HamnMetrics
import RulesEngine

/// What ``MonitorScheduler`` tells its caller.
public enum MonitorReport: Sendable, Hashable {
    /// One sample's observations (never empty).
    case observations(variable: String, [SampleObservation])
    /// The first failure of a streak: the whole sample (`instance` nil) or one instance
    /// (``SampleProblem``). The following failures of the same streak are not reported again.
    case failed(variable: String, instance: String?, message: String)
    /// As `failed`, for what is not installed on this machine (``SampleProblem/notInstalled``,
    /// ``SamplerError/notInstalled``): not a fault, logged at info level.
    case notInstalled(variable: String, instance: String?, message: String)
    /// The first success after a reported failure: the whole sample (`instance` nil), or an
    /// instance that was a problem and is observed again.
    case recovered(variable: String, instance: String?)
}

/// Runs the samplers of a ``MonitorPlan``, each every interval in a task of its own, and hands
/// what they give to a callback.
///
/// - Each entry samples at once when ``run(_:)`` starts, then every ``MonitorPlan/Entry/interval``
///   measured from the start of the previous sample (`ContinuousClock`). A sample that takes
///   longer than the interval delays the next one; ticks missed meanwhile are skipped, not
///   caught up.
/// - A sample that does not end within the entry's ``MonitorPlan/Entry/deadline`` is
///   cancelled and abandoned, and counts as a failure. While an abandoned sample still runs
///   (a sampler that ignores cancellation), that sampler is not started again: each interval
///   counts as a failure of the same streak. Other entries are never held up by it.
/// - Failures are reported once per streak (``MonitorReport/failed(variable:instance:message:)``),
///   recoveries once (``MonitorReport/recovered(variable:instance:)``); a failed sampler is
///   simply tried again at its next interval.
/// - ``InstanceReportingSampler``s are asked for their batch, so that a problem with one
///   instance is reported (once per streak, per instance) while the others are observed.
/// - Cancelling the task that runs ``run(_:)`` stops every entry promptly: sleeps end, running
///   samples are cancelled (commands killed with their process groups) or abandoned, and
///   ``run(_:)`` returns.
/// - The callback is called from the entries' tasks, concurrently for different entries, in
///   order for each entry. A slow callback delays only its own entry.
public struct MonitorScheduler: Sendable {
    public var entries: [MonitorPlan.Entry]
    public var node: ClusterNode
    /// Each sample counted there, a failed one too, and its instances' values.
    public var metrics: HamnMetrics?

    public init(plan: MonitorPlan, node: ClusterNode, metrics: HamnMetrics? = nil) {
        self.init(entries: plan.entries, node: node, metrics: metrics)
    }

    public init(entries: [MonitorPlan.Entry], node: ClusterNode, metrics: HamnMetrics? = nil) {
        self.entries = entries
        self.node = node
        self.metrics = metrics
    }

    /// Samples until the calling task is cancelled; returns at once when there is nothing to sample.
    public func run(_ report: @escaping @Sendable (MonitorReport) async -> Void) async {
        // After a reload: the series of the variables no longer sampled go (their last values
        // would stay otherwise); those of an instance no longer sampled go at its entry's next batch.
        metrics?.monitoring(variables: Set(entries.map(\.variable)))
        await withTaskGroup(of: Void.self) { group in
            for entry in entries {
                group.addTask { await Self.run(entry, node: node, metrics: metrics, report: report) }
            }
            await group.waitForAll()
        }
    }

    // MARK: - One entry

    private enum Outcome: Sendable {
        case batch(SampleBatch)
        case failure(String, notInstalled: Bool = false)
    }

    private static func run(
        _ entry: MonitorPlan.Entry, node: ClusterNode, metrics: HamnMetrics?,
        report: @escaping @Sendable (MonitorReport) async -> Void
    ) async {
        let clock = ContinuousClock()
        let variable = entry.variable
        var failing = false
        var failingInstances: Set<String> = []
        var previousStillRunning: MonitorLocked<Bool>? = nil
        while !Task.isCancelled {
            let started = clock.now
            let outcome: Outcome?
            if let previous = previousStillRunning, previous.withLock({ !$0 }) {
                outcome = .failure("the previous sample has not ended yet")
            } else {
                let finished = MonitorLocked(false)
                previousStillRunning = finished
                outcome = await sample(entry, node: node, finished: finished)
            }
            guard let outcome, !Task.isCancelled else { break }
            switch outcome {
            case .failure(let message, let notInstalled):
                metrics?.monitorSampled(variable: variable, failed: !notInstalled)
                if !failing {
                    failing = true
                    await report(
                        notInstalled
                            ? .notInstalled(variable: variable, instance: nil, message: message)
                            : .failed(variable: variable, instance: nil, message: message))
                }
            case .batch(let batch):
                metrics?.monitorSampled(
                    variable: variable, observations: batch.observations,
                    failed: batch.problems.contains { !$0.notInstalled })
                if failing {
                    failing = false
                    await report(.recovered(variable: variable, instance: nil))
                }
                var problems: [String: String] = [:]
                for problem in batch.problems where problems[problem.instance] == nil {
                    problems[problem.instance] = problem.message
                    if !failingInstances.contains(problem.instance) {
                        await report(
                            problem.notInstalled
                                ? .notInstalled(
                                    variable: variable, instance: problem.instance, message: problem.message)
                                : .failed(variable: variable, instance: problem.instance, message: problem.message))
                    }
                }
                let observed = Set(batch.observations.map(\.instanceText))
                for instance in failingInstances.sorted() where problems[instance] == nil && observed.contains(instance)
                {
                    await report(.recovered(variable: variable, instance: instance))
                }
                failingInstances = Set(problems.keys)
                if !batch.observations.isEmpty {
                    await report(.observations(variable: variable, batch.observations))
                }
            }
            var next = started.advanced(by: entry.interval)
            let now = clock.now
            if next < now { next = now }
            do {
                try await Task.sleep(until: next, clock: clock)
            } catch {
                break
            }
        }
    }

    /// One sample, in a task of its own, abandoned after the deadline or on cancellation; nil
    /// when cancelled. `finished` is set once the sample's task has ended.
    private static func sample(_ entry: MonitorPlan.Entry, node: ClusterNode, finished: MonitorLocked<Bool>) async
        -> Outcome?
    {
        let result = MonitorResumeOnce<Outcome>()
        let sampler = entry.sampler
        let work = Task {
            let outcome: Outcome
            do throws(SamplerError) {
                if let reporting = sampler as? any InstanceReportingSampler {
                    outcome = .batch(try await reporting.sampleBatch(node: node))
                } else {
                    outcome = .batch(SampleBatch(observations: try await sampler.sample(node: node)))
                }
            } catch {
                outcome = .failure(error.message, notInstalled: error.notInstalled)
            }
            finished.withLock { $0 = true }
            result.resume(outcome)
        }
        let deadline = entry.deadline
        let timer = Task {
            do {
                try await Task.sleep(for: deadline)
            } catch {
                return
            }
            result.resume(.failure("no answer within \(Self.seconds(deadline)) s"))
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome?, Never>) in
                _ = result.install(continuation)
            }
        } onCancel: {
            result.resume(nil)
        }
        timer.cancel()
        work.cancel()  // nothing if it ended; otherwise it is abandoned (cancelled, left to end)
        return outcome
    }

    static func seconds(_ duration: Duration) -> String {
        let parts = duration.components
        let value = Double(parts.seconds) + Double(parts.attoseconds) / 1e18
        return value == value.rounded() ? String(Int64(value)) : String(value)
    }
}

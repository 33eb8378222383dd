import HamnService
import RulesEngine
import Synchronization
import Testing

/// Answers at once, with the number of samples taken so far.
private final class FastSampler: ResourceSampler {
    let variable = "TEST.fast"
    private let count = Mutex(0)

    func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        let number = count.withLock { value -> Int in
            value += 1
            return value
        }
        return [
            SampleObservation(
                variable: variable, instance: ["NodeNum": String(node.number)], value: .number(Double(number)))
        ]
    }
}

/// Never answers, and does not even notice cancellation.
private struct DeafHangingSampler: ResourceSampler {
    let variable = "TEST.deaf"

    func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
        return []
    }
}

/// Sleeps for an hour (cancellation ends it).
private struct SleepingSampler: ResourceSampler {
    let variable = "TEST.sleepy"

    func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        try? await Task.sleep(for: .seconds(3600))
        throw SamplerError("cancelled")
    }
}

/// Fails its first `failures` samples, then answers; one instance is a problem on its 2nd and
/// 3rd samples.
private final class FlakySampler: InstanceReportingSampler {
    let variable = "TEST.flaky"
    let failures: Int
    private let count = Mutex(0)

    init(failures: Int) {
        self.failures = failures
    }

    func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        let number = count.withLock { value -> Int in
            value += 1
            return value
        }
        if number <= failures { throw SamplerError("broken \(number)") }
        let good = SampleObservation(variable: variable, instance: ["Name": "a"], value: .number(1))
        let other = SampleObservation(variable: variable, instance: ["Name": "b"], value: .number(2))
        let after = number - failures
        if after == 2 || after == 3 {
            return SampleBatch(
                observations: [good], problems: [SampleProblem(instance: "Name=b", message: "b is missing \(after)")])
        }
        return SampleBatch(observations: [good, other])
    }
}

private func entry(
    _ sampler: any ResourceSampler, interval: Duration = .milliseconds(40), deadline: Duration = .milliseconds(150)
)
    -> MonitorPlan.Entry
{
    MonitorPlan.Entry(
        variable: sampler.variable, interval: interval, target: .node, sampler: sampler, deadline: deadline)
}

@Suite("monitor scheduler", .timeLimit(.minutes(1)))
struct MonitorSchedulerTests {
    @Test("a hanging sampler neither stalls the others nor is reported more than once; cancellation is prompt")
    func hangingAndFast() async throws {
        let scheduler = MonitorScheduler(
            entries: [
                entry(DeafHangingSampler()), entry(SleepingSampler()), entry(FastSampler()),
                entry(FlakySampler(failures: 2)),
            ],
            node: monitorTestNode)
        let reports = MonitorCollector<MonitorReport>()
        let run = Task { await scheduler.run { await reports.append($0) } }

        let enough = await reports.waitUntil(timeout: .seconds(5)) { values in
            values.filter { if case .observations("TEST.fast", _) = $0 { true } else { false } }.count >= 15
                && values.contains { if case .failed("TEST.deaf", nil, _) = $0 { true } else { false } }
                && values.contains { if case .failed("TEST.sleepy", nil, _) = $0 { true } else { false } }
        }
        #expect(enough)
        // The hanging samplers have been failing all along: still one report each. The behaviour
        // under test is that nothing more is reported for them during this time (ten intervals).
        try await Task.sleep(for: .milliseconds(400))
        let clock = ContinuousClock()
        let cancelled = clock.now
        run.cancel()
        await run.value
        #expect(cancelled.duration(to: clock.now) < .milliseconds(500))

        let values = await reports.values
        let fast = values.compactMap { report -> Double? in
            guard case .observations("TEST.fast", let observations) = report else { return nil }
            return observations.first.flatMap { if case .scalar(.number(let n)) = $0.value { n } else { nil } }
        }
        #expect(fast.count >= 15)
        #expect(fast == (1...fast.count).map(Double.init))  // in order, none lost
        let deaf = values.filter { if case .failed("TEST.deaf", _, _) = $0 { true } else { false } }
        #expect(deaf.count == 1)
        if case .failed(_, nil, let message)? = deaf.first { #expect(message.contains("no answer within")) }
        #expect(values.filter { if case .failed("TEST.sleepy", _, _) = $0 { true } else { false } }.count == 1)
        #expect(!values.contains { if case .recovered("TEST.deaf", _) = $0 { true } else { false } })

        // The flaky one: one failure for its streak, one recovery, the instance problem once and its recovery.
        let flaky = values.filter { report in
            switch report {
            case .failed("TEST.flaky", _, _), .recovered("TEST.flaky", _): true
            default: false
            }
        }
        #expect(
            flaky == [
                .failed(variable: "TEST.flaky", instance: nil, message: "broken 1"),
                .recovered(variable: "TEST.flaky", instance: nil),
                .failed(variable: "TEST.flaky", instance: "Name=b", message: "b is missing 2"),
                .recovered(variable: "TEST.flaky", instance: "Name=b"),
            ])
    }

    @Test("samples every interval, measured from the start of the previous one")
    func interval() async throws {
        let scheduler = MonitorScheduler(
            entries: [entry(FastSampler(), interval: .milliseconds(100))], node: monitorTestNode)
        let reports = MonitorCollector<MonitorReport>()
        let clock = ContinuousClock()
        let started = clock.now
        let run = Task { await scheduler.run { await reports.append($0) } }
        // Not a timed window (a loaded machine would make it flaky): wait for four samples, then
        // check that they were not taken faster than every 100 ms.
        _ = await reports.waitUntil(timeout: .seconds(20)) { $0.count >= 4 }
        let elapsed = clock.now - started
        run.cancel()
        await run.value
        let count = await reports.values.count
        #expect(count >= 4, "it kept sampling")
        #expect(elapsed >= .milliseconds(300), "samples at 0, 100, 200, 300 ms at the earliest")
        #expect(count <= 4 + Int(elapsed / .milliseconds(100)), "no faster than every interval")
    }

    @Test("nothing to sample: run returns at once, having reported nothing")
    func empty() async {
        let reports = MonitorCollector<MonitorReport>()
        let returned = MonitorCollector<Bool>()
        let clock = ContinuousClock()
        let started = clock.now
        let run = Task {
            await MonitorScheduler(entries: [], node: monitorTestNode).run { await reports.append($0) }
            await returned.append(true)
        }
        // Waited for with a deadline, so that a run that does not return fails here, not by hanging.
        #expect(await returned.waitUntil(timeout: .seconds(5)) { !$0.isEmpty }, "run returned")
        #expect(started.duration(to: clock.now) < .seconds(2), "at once (no interval waited)")
        run.cancel()
        await run.value
        #expect(await reports.values.isEmpty)
    }
}

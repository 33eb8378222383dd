import RulesEngine
import Testing

@testable import HamnService

/// The web view's sparklines: a bounded ring per instance, a bounded number of instances.
@Suite("recent samples for the web view")
struct RecentSamplesTests {
    @Test("the last 30 numbers of each instance, oldest first; strings skipped; a structured value's first number")
    func ring() {
        var samples = RecentSamples()
        for value in 1...40 { samples.record(variable: "V", instance: "N=1", value: .number(Double(value))) }
        samples.record(variable: "V", instance: "N=1", value: .string("down"))
        #expect(samples.recent(variable: "V", instance: "N=1") == (11...40).map(Double.init))
        #expect(samples.recent(variable: "V", instance: "N=2") == [])
        samples.record(
            variable: "W", instance: "N=1", value: .fields([.init("Name", .string("a")), .init("Count", .number(7))]))
        #expect(samples.recent(variable: "W", instance: "N=1") == [7])
    }

    @Test("at most 1000 instances: the ones seen first are kept, later ones are not")
    func instanceLimit() {
        var samples = RecentSamples()
        for index in 0..<1200 { samples.record(variable: "V", instance: "N=\(index)", value: .number(1)) }
        #expect(samples.instanceCount == 1000)
        #expect(samples.recent(variable: "V", instance: "N=999") == [1])
        #expect(samples.recent(variable: "V", instance: "N=1000") == [])
        samples.record(variable: "V", instance: "N=0", value: .number(2))
        #expect(samples.recent(variable: "V", instance: "N=0") == [1, 2])
    }
}

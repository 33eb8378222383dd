import RulesParser

/// The measuring loop of `hamn-bench predicates`: how many predicate evaluations (or arming
/// observations) one thread makes per second. It lives here, beside the code it measures, so
/// that the loop is compiled in the same module as `CompiledPredicate.evaluate`, as the
/// service's evaluator will be.
public enum PredicateBenchmarkCore {
    /// One benchmark: a predicate (and rearm predicate, for arming) over a cycle of samples.
    public struct Case: Sendable {
        public var name: String
        public var predicate: String
        /// When set, each step is an `InstanceArming.observe` with this rearm predicate ("" for
        /// none) instead of a bare evaluation.
        public var rearmPredicate: String?
        public var variable: ResourceVariable?
        /// Evaluated in turn, each with the one before it as `X@P`. A power of two in length.
        public var samples: [SampleValue]

        public init(
            name: String, predicate: String, rearmPredicate: String? = nil, variable: ResourceVariable?,
            samples: [SampleValue]
        ) {
            self.name = name
            self.predicate = predicate
            self.rearmPredicate = rearmPredicate
            self.variable = variable
            self.samples = samples
        }
    }

    public struct Result: Sendable {
        public var name: String
        /// The predicate, and for arming the rearm predicate.
        public var predicate: String
        /// Evaluations per second of each round.
        public var rounds: [Double]
        /// How many evaluations were true (fired, for arming) in the last round, so that the
        /// work cannot be optimised away, and as a sanity check of the samples.
        public var trueCount: Int
        public var evaluations: Int

        public var best: Double { rounds.max() ?? 0 }
    }

    /// The standard cases: the simple `X > 70`, compound ones, fields, lists, patterns, and
    /// arming. Samples vary (seeded) so that nothing can be hoisted out of the loop.
    public static func standardCases(seed: UInt64 = 1) -> [Case] {
        var random = SeededGenerator(seed: seed)
        let count = 4096
        let catalogue = VariableCatalogue.builtIn
        let paging = catalogue["IBM.PSSP.aixos.PagSp.%totalused"]
        let percents = (0..<count).map { _ in SampleValue.number(Double(random.below(10_001)) / 100) }
        let small = (0..<count).map { _ in SampleValue.number(Double(random.below(6))) }
        let roles = ["Primary", "Primary", "Primary", "Standby"]
        let states = ["Peer", "Peer", "Peer", "RemoteCatchupPending", "DisconnectedPeer"]
        let connections = ["Connected", "Connected", "Connected", "Disconnected"]
        let hadr = (0..<count).map { _ in
            SampleValue.fields([
                .init("Role", .string(roles[random.below(roles.count)])),
                .init("State", .string(states[random.below(states.count)])),
                .init("SyncMode", .string("Nearsync")),
                .init("ConnectStatus", .string(connections[random.below(connections.count)])),
                .init("HeartBeatsMissed", .number(Double(random.below(3)))),
                .init("LogGap", .number(Double(random.below(1000)))),
            ])
        }
        let pcount = (0..<count).map { _ in
            let now = Double(random.below(9))
            return SampleValue.fields([
                .init("CurPIDCount", .number(now)),
                .init("PrevPIDCount", .number(now + Double(random.below(3)) - 1)),
                .init("CurPIDList", .string("4711,4712")),
            ])
        }
        return [
            Case(name: "simple", predicate: "X > 70", variable: paging, samples: percents),
            Case(name: "compound", predicate: "X > 70 && X@P <= 70 || X == 99", variable: paging, samples: percents),
            Case(
                name: "arithmetic", predicate: "(X * 2 + 5) % 7 < 3 && X - X@P > 1", variable: paging, samples: percents
            ),
            Case(name: "list", predicate: "X IN {1, 2, 3}", variable: paging, samples: small),
            Case(
                name: "hadr",
                predicate:
                    "X.Role != \"Primary\" && X.Role != \"Standby\" || X.State != \"Peer\" || X.ConnectStatus != \"Connected\"",
                variable: catalogue["HAMN.DB2.HADR"], samples: hadr),
            Case(name: "pcount", predicate: "X@0 < X@1", variable: catalogue["IBM.PSSP.Prog.pcount"], samples: pcount),
            Case(
                name: "regex", predicate: "X.State =~ \"^(Remote|Disconnected)\"", variable: catalogue["HAMN.DB2.HADR"],
                samples: hadr),
            Case(
                name: "like", predicate: "X.State LIKE \"Remote%Pending\"", variable: catalogue["HAMN.DB2.HADR"],
                samples: hadr),
            Case(name: "arming", predicate: "X > 70", rearmPredicate: "X < 60", variable: paging, samples: percents),
            Case(
                name: "arming-qualified", predicate: "X > 70 __QUAL_COUNT(3, 5)", rearmPredicate: "", variable: paging,
                samples: percents),
        ]
    }

    /// Runs `benchmark` for `rounds` rounds of at least `seconds` each, on the calling thread.
    /// Throws when the predicates do not parse or compile.
    public static func run(_ benchmark: Case, seconds: Double = 1, rounds: Int = 3) throws -> Result {
        let predicate = try PredicateParser.parse(benchmark.predicate)
        var rearm: Predicate?
        if let text = benchmark.rearmPredicate, !text.isEmpty { rearm = try PredicateParser.parse(text) }
        var samples = benchmark.samples
        if samples.isEmpty { samples = [.number(0)] }
        while samples.count & (samples.count - 1) != 0 { samples.removeLast() }
        let clock = ContinuousClock()
        var shown = benchmark.predicate
        if let text = benchmark.rearmPredicate { shown += text.isEmpty ? "; rearm NOT predicate" : "; rearm \(text)" }
        var result = Result(name: benchmark.name, predicate: shown, rounds: [], trueCount: 0, evaluations: 0)
        let batch = 1 << 16
        if benchmark.rearmPredicate != nil {
            let monitoring = EventDefinition.Monitoring(
                variable: benchmark.variable?.name ?? "X", instances: .everyNode, predicate: predicate,
                rearmPredicate: rearm)
            let rule = try CompiledRule(monitoring, variable: benchmark.variable)
            for _ in 0..<max(rounds, 1) {
                var arming = InstanceArming(rule)
                var fired = 0
                var done = 0
                var time = 0.0
                let start = clock.now
                var elapsed = 0.0
                repeat {
                    fired &+= observeBatch(&arming, samples, from: done, count: batch, time: &time)
                    done += batch
                    elapsed = Self.seconds(in: clock.now - start)
                } while elapsed < seconds
                result.rounds.append(Double(done) / elapsed)
                result.trueCount = fired
                result.evaluations = done
            }
        } else {
            let compiled = try CompiledPredicate(predicate, variable: benchmark.variable)
            let previous = samples.indices.map { Optional(samples[($0 &- 1) & (samples.count - 1)]) }
            for _ in 0..<max(rounds, 1) {
                var trues = 0
                var done = 0
                let start = clock.now
                var elapsed = 0.0
                repeat {
                    trues &+= evaluateBatch(compiled, samples, previous, from: done, count: batch)
                    done += batch
                    elapsed = Self.seconds(in: clock.now - start)
                } while elapsed < seconds
                result.rounds.append(Double(done) / elapsed)
                result.trueCount = trues
                result.evaluations = done
            }
        }
        return result
    }

    /// Evaluates `count` samples from the cycle. The samples are read through buffer pointers
    /// and the previous ones are already optionals, so that the loop measures the evaluations,
    /// not copies of the samples.
    @inline(never)
    private static func evaluateBatch(
        _ compiled: CompiledPredicate, _ samples: [SampleValue], _ previous: [SampleValue?], from: Int, count: Int
    ) -> Int {
        let mask = samples.count - 1
        var trues = 0
        samples.withUnsafeBufferPointer { samples in
            previous.withUnsafeBufferPointer { previous in
                for step in from..<from + count {
                    let index = step & mask
                    if compiled.evaluate(samples[index], previous: previous[index]).isTrue { trues &+= 1 }
                }
            }
        }
        return trues
    }

    @inline(never)
    private static func observeBatch(
        _ arming: inout InstanceArming, _ samples: [SampleValue], from: Int, count: Int, time: inout Double
    ) -> Int {
        let mask = samples.count - 1
        var fired = 0
        for step in from..<from + count {
            time += 10
            if arming.observe(samples[step & mask], at: time).transition == .fired { fired &+= 1 }
        }
        return fired
    }

    private static func seconds(in duration: Duration) -> Double {
        let (whole, attoseconds) = duration.components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}

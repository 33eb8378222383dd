import RulesEngine

/// What the corpus generators draw with RulesEngine's seeded SplitMix64, so that a given
/// `--seed` always generates the same corpus and two benchmark runs measure the same input.
extension SeededGenerator {
    /// A number in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// A number in `range` in hexadecimal, upper or lower case (both are accepted).
    mutating func hex(_ range: ClosedRange<Int>) -> String {
        String(int(range), radix: 16, uppercase: chance(0.5))
    }

    /// One of `choices`, which must not be empty.
    mutating func pick<T>(_ choices: [T]) -> T {
        choices[Int.random(in: 0..<choices.count, using: &self)]
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < p
    }
}

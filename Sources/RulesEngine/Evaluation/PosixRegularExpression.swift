import RulesParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A POSIX extended regular expression (`=~`, `!~`), compiled once with the system's `regcomp`,
/// as validation checks it (docs/decisions.md, Predicates).
///
/// The `regex_t` lives at a fixed address for the life of the object and is freed in `deinit`.
/// `@unchecked Sendable`: after `init` the `regex_t` is only read, and POSIX makes `regexec` on
/// a compiled expression safe to call from several threads at once (glibc locks its matcher).
/// Matching follows the process locale, `C` unless the program sets one: bytes.
final class PosixRegularExpression: @unchecked Sendable {
    let pattern: String
    private let compiled: UnsafeMutablePointer<regex_t>

    /// Throws `regerror`'s message when the pattern does not compile, and refuses a pattern
    /// that would expand past a ``RegularExpressionCost`` limit before `regcomp` sees it (a
    /// pattern read from a sample included).
    init(_ pattern: String) throws(PatternError) {
        self.pattern = pattern
        if let tooComplex = RegularExpressionCost.problem(pattern) { throw PatternError(message: tooComplex) }
        let compiled = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        compiled.initialize(to: regex_t())
        let status = regcomp(compiled, pattern, REG_EXTENDED | REG_NOSUB)
        guard status == 0 else {
            var buffer = [CChar](repeating: 0, count: 256)
            regerror(status, compiled, &buffer, buffer.count)
            compiled.deinitialize(count: 1)
            compiled.deallocate()
            throw PatternError(
                message: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.compiled = compiled
    }

    deinit {
        regfree(compiled)
        compiled.deinitialize(count: 1)
        compiled.deallocate()
    }

    /// Whether the expression matches somewhere in `subject` (unanchored, as `regexec` does).
    /// A NUL in `subject` ends it, as it would in C.
    func matches(_ subject: String) -> Bool {
        subject.withCString { regexec(compiled, $0, 0, nil, 0) == 0 }
    }

    struct PatternError: Error, Sendable {
        var message: String
    }
}

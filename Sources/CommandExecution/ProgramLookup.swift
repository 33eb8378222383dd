#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where a program name leads: the one `PATH` rule of every process this package starts
/// (recovery commands run directly, db2pd, command variables' shell). It is `sh`'s search,
/// restricted to answers that do not depend on the working directory:
///
/// - a name with a `/` is that file: absolute, it is found when it is an executable regular
///   file; relative, the answer depends on the working directory;
/// - a bare name is looked up in `PATH` (``defaultPath`` when nil or empty), entry by entry:
///   the first executable regular file wins; an empty or relative entry reached before one is
///   found (the working directory) makes the answer depend on the working directory.
///
/// Which name a recovery command starts is ``RulesParser/CommandStep/program``; this is only
/// where that name is found.
package enum ProgramLookup {
    /// `PATH` when the environment gives none.
    package static let defaultPath = "/usr/sbin:/usr/bin:/sbin:/bin"

    package enum Location: Sendable, Equatable {
        /// An executable regular file, by absolute name.
        case file(String)
        /// No such file, or not an executable regular file (the shell's 127 or 126).
        case notFound
        /// A relative name with a `/`, or an empty or relative `PATH` entry before the program
        /// was found: the answer is the working directory's.
        case dependsOnWorkingDirectory
    }

    package static func locate(_ program: String, path: String?) -> Location {
        guard !program.isEmpty else { return .notFound }
        if program.contains("/") {
            guard program.hasPrefix("/") else { return .dependsOnWorkingDirectory }
            return isExecutableFile(program) ? .file(program) : .notFound
        }
        let search = path.flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath
        for directory in search.split(separator: ":", omittingEmptySubsequences: false) {
            guard directory.hasPrefix("/") else { return .dependsOnWorkingDirectory }
            let candidate = directory.hasSuffix("/") ? "\(directory)\(program)" : "\(directory)/\(program)"
            if isExecutableFile(candidate) { return .file(candidate) }
        }
        return .notFound
    }

    /// Whether `path` is a regular file this process may execute (what `sh` looks for).
    package static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}

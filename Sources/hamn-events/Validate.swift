import ArgumentParser
import RulesEngine
import RulesParser
import RulesValidation

#if canImport(Glibc)
    import Glibc
#endif

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

extension HamnEvents {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rules files and the .rp recovery programs they name.",
            discussion: """
                Each PATH is a rules file (its .rp files are checked too, each once) or, when it
                ends in .rp, a recovery program. Findings are printed one per line as
                FILE:LINE:COLUMN: SEVERITY: CODE: MESSAGE (SPEC section 8 lists the codes).

                Exit status: 0 no errors; 1 errors (or warnings, with --strict); 2 a usage error
                or an input that cannot be read.
                """
        )

        @Argument(help: "Rules files, or .rp files.")
        var paths: [String]

        @Option(help: "Resolve absolute paths under DIR, to check a staged tree (skips P007).")
        var root: String?

        @Option(help: "The service's configuration file: its administrator-defined variables.")
        var config: String?

        @Flag(help: "Treat warnings as errors.")
        var strict = false

        @Option(help: "text or json.")
        var format: OutputFormat = .text

        func run() throws {
            var options = Validator.Options(root: root)
            if let root, LocalFileSystem().status(root)?.isDirectory != true {
                printError("hamn-events validate: --root \(root): not a directory")
                throw ExitCode(2)
            }
            if let config {
                // The service's own reader: validate sees the configuration exactly as `run` does.
                let configuration = try loadConfiguration(config)
                options.catalogue = options.catalogue.adding(configuration.resourceVariables)
                options.eventScriptDirectory = configuration.eventScripts
                if let warning = configuration.fencingWarning { printError("\(config): warning: \(warning)") }
            }
            let report = Validator(options: options).validate(paths)
            switch format {
            case .text:
                writeStdout(report.text)
                printError(report.summary)
            case .json:
                writeStdout(report.json + "\n")
            }
            let code = report.exitCode(strict: strict)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

func printError(_ message: String) {
    var line = message
    line += "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes all of `text` to standard output in large writes (print's line buffering is slow
/// for a report of a hundred thousand lines).
func writeStdout(_ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}

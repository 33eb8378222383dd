import FuzzTargets

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// `hamn-fuzz TARGET FILE...` runs each file through a fuzz target and prints the broken
// properties (exit 1 if any): to replay what libFuzzer found. Built by `scripts/fuzz` with
// `-DHAMN_LIBFUZZER` and libFuzzer's coverage instrumentation, `hamn-fuzz TARGET [libFuzzer
// options] [CORPUS...]` is a libFuzzer binary: its `main` hands the chosen target to
// `LLVMFuzzerRunDriver` (SwiftPM gives an executable its own `main`, so libFuzzer's cannot be
// used), and a broken property aborts, so that libFuzzer keeps the input as a crash.

#if HAMN_LIBFUZZER
    @_silgen_name("LLVMFuzzerRunDriver")
    private func runDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    nonisolated(unsafe) private var selected = FuzzTarget.rules
#endif

private func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

private func read(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return bytes
}

/// The regular files of a directory (none when it is not one).
private func files(in directory: String) -> [String] {
    guard let handle = opendir(directory) else { return [] }
    defer { closedir(handle) }
    var paths: [String] = []
    while let entry = readdir(handle) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if entry.pointee.d_type == UInt8(DT_REG) { paths.append(directory + "/" + name) }
    }
    return paths
}

@main
struct HamnFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            printError("usage: hamn-fuzz \(names) FILE...\n")
            exit(2)
        }
        #if HAMN_LIBFUZZER
            selected = target
            // Run the seeds once before libFuzzer watches: what a first input initialises for
            // good (globals such as the variable catalogue) is not a leak, but LeakSanitizer
            // cannot always see Swift's references to it (pointers with tag bits).
            for directory in arguments.dropFirst(2) where !directory.hasPrefix("-") {
                for path in files(in: directory) { _ = target.run(read(path) ?? []) }
            }
            _ = target.run([])
            // libFuzzer reads its options and corpus directories from argv: drop the target's name.
            var argv: [UnsafeMutablePointer<CChar>?] = (0..<Int(CommandLine.argc)).map { CommandLine.unsafeArgv[$0] }
            argv.remove(at: 1)
            argv.append(nil)
            var argc = CInt(argv.count - 1)
            let status = argv.withUnsafeMutableBufferPointer { buffer in
                var pointer = buffer.baseAddress!
                return runDriver(&argc, &pointer) { data, size in
                    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
                    let problems = selected.run(bytes)
                    if !problems.isEmpty {
                        printError("hamn-fuzz \(selected.rawValue): \(problems.joined(separator: "\n"))\n")
                        abort()
                    }
                    return 0
                }
            }
            exit(status)
        #else
            if arguments.count == 4, arguments[2] == "--write-seeds", target == .wire {
                for (index, seed) in FuzzTarget.wireSeeds.enumerated() {
                    let path = arguments[3] + "/seed-\(index)"
                    guard let file = fopen(path, "wb"), fwrite(seed, 1, seed.count, file) == seed.count else {
                        printError("\(path): cannot write\n")
                        exit(1)
                    }
                    fclose(file)
                }
                exit(0)
            }
            var failed = false
            for path in arguments.dropFirst(2) {
                guard let bytes = read(path) else {
                    printError("\(path): cannot open\n")
                    exit(2)
                }
                let problems = target.run(bytes)
                for problem in problems { print("\(path): \(problem)") }
                failed = failed || !problems.isEmpty
            }
            exit(failed ? 1 : 0)
        #endif
    }
}

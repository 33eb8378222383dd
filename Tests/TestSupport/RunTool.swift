import Foundation

/// Runs `executable` with `arguments` to its end; returns its exit status, standard output and
/// standard error. Standard error is read on a thread of its own, so that a program that fills
/// one pipe while the other is being read does not hang the test.
@discardableResult
public func runTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Thread {
        box.data = err.fileHandleForReading.readDataToEndOfFile()
        done.signal()
    }.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: box.data, as: UTF8.self)
    )
}

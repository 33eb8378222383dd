import Foundation
import RulesEngine
import Testing

@testable import HamnService

/// The control socket's request line, decoded and checked in one place: every request the
/// command line sends comes back as itself; anything else gets an error that says what is wrong.
@Suite("control requests")
struct ControlRequestTests {
    static let requests: [ControlRequest] = [
        .status, .history(limit: 20), .resume(cancelQueued: true), .trigger(event: "db2_paging", state: 0, node: nil),
        .trigger(event: "x", state: 2, node: "n2"), .recovery(setting: .off, nodes: "1-4,7"),
        .haCmd(action: .take, nodes: "aixmn1"),
        .mon(node: nil), .mon(node: "n1"), .waitEvent(name: "network_up_complete", timeout: 100),
        .waitEvent(name: "x", timeout: nil), .fence(node: "aixmn1"), .fenceConfirm(node: "aixmn1"),
    ]

    @Test("every request survives the wire", arguments: requests)
    func roundTrip(_ request: ControlRequest) throws {
        let line = try JSONEncoder.control.encode(request)
        #expect(try ControlRequest.decode(line).get() == request)
    }

    @Test(
        "garbage gets a malformed-request error naming the fault",
        arguments: [
            ("", "not a JSON object"),
            ("status", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            ("{}", "one key naming the request expected, got 0"),
            ("{\"status\":{},\"mon\":{}}", "one key naming the request expected, got 2"),
            ("{\"command\":\"status\"}", "unknown request 'command'"),
            ("{\"history\":{\"limit\":\"x\"}}", "malformed request 'history': limit: expected Int"),
            ("{\"history\":{}}", "malformed request 'history': missing 'limit'"),
            ("{\"recovery\":{\"setting\":\"sideways\",\"nodes\":\"1\"}}", "malformed request 'recovery'"),
            ("{\"ha_cmd\":{\"action\":\"REBOOT\",\"nodes\":\"1\"}}", "malformed request 'ha_cmd'"),
        ])
    func garbage(_ line: String, _ message: String) {
        guard case .failure(let error) = ControlRequest.decode(Data(line.utf8)) else {
            Issue.record("\(line) decoded")
            return
        }
        #expect(error.code == .malformedRequest)
        #expect(error.exitCode == 2)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test(
        "values out of range are invalid arguments, not a crash",
        arguments: [
            ("{\"wait_event\":{\"name\":\"x\",\"timeout\":1e300}}", "the timeout is not a number of seconds"),
            ("{\"wait_event\":{\"name\":\"x\",\"timeout\":-1}}", "the timeout is not a number of seconds"),
            ("{\"wait_event\":{\"name\":\"\"}}", "which event?"),
            ("{\"history\":{\"limit\":-5}}", "the limit is negative"),
            ("{\"trigger\":{\"event\":\"two words\",\"state\":0}}", "an event name without blanks"),
        ])
    func outOfRange(_ line: String, _ message: String) {
        guard case .failure(let error) = ControlRequest.decode(Data(line.utf8)) else {
            Issue.record("\(line) decoded")
            return
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test("a timeout is a failure with exit status 1, not a success")
    func timeoutAnswer() throws {
        let answer = ControlAnswer.failed(.timeout, "wait-event: x: no completion within 1 s")
        let decoded = try JSONDecoder.control.decode(ControlAnswer.self, from: JSONEncoder.control.encode(answer))
        #expect(decoded.error?.exitCode == 1)
        #expect(decoded.text == nil)
    }
}

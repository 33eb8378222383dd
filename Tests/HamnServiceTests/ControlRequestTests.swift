import Foundation
import RulesEngine
import RulesParser
import Testing

@testable import HamnService

/// The control socket's request line, decoded and checked in one place: every request the
/// command line sends comes back as itself; anything else gets an error that says what is wrong.
@Suite("control requests")
struct ControlRequestTests {
    static let requests: [ControlRequest] = [
        .status(), .status(all: true), .history(limit: 20), .resume(cancelQueued: true),
        .trigger(event: "db2_paging", state: 0, node: nil),
        .trigger(event: "x", state: 2, node: "n2"), .recovery(setting: .off, nodes: "1-4,7"),
        .haCmd(action: .take, nodes: "aixmn1"),
        .mon(node: nil), .mon(node: "n1"), .mon(node: nil, after: 42),
        .waitEvent(name: "network_up_complete", timeout: .init(seconds: 100)),
        .waitEvent(name: "x", timeout: nil), .fence(node: "aixmn1"), .fenceConfirm(node: "aixmn1"),
        .resumeRetry(cancelQueued: false), .resumeContinue(cancelQueued: true), .timeline(event: 7),
        .timeline(event: 7, run: 3),
    ]

    @Test("timeline: the event's id, the run optional; negative ones refused")
    func timeline() throws {
        #expect(
            try ControlRequest.decode(Data(#"{"timeline":{"event":7}}"#.utf8)).get() == .timeline(event: 7, run: nil))
        #expect(
            try ControlRequest.decode(Data(#"{"timeline":{"event":7,"run":2}}"#.utf8)).get()
                == .timeline(event: 7, run: 2))
        for (line, message) in [
            (#"{"timeline":{"event":-1}}"#, "history EVENT: a negative event id"),
            (#"{"timeline":{"event":1,"run":-2}}"#, "history EVENT: a negative run"),
            (#"{"timeline":{}}"#, "malformed request 'timeline': missing 'event'"),
        ] {
            guard case .failure(let error) = ControlRequest.decode(Data(line.utf8)) else {
                Issue.record("\(line) was taken")
                continue
            }
            #expect(error.message == message)
        }
    }

    @Test("resume's modes are requests of their own: a service before them refuses them by name")
    func resumeModes() throws {
        let lines = try [ResumeMode.skip, .retry, .continue].map {
            String(
                decoding: try JSONEncoder.control.encode(ControlRequest.resume($0, cancelQueued: false)), as: UTF8.self)
        }
        #expect(
            lines == [
                #"{"resume":{"cancel_queued":false}}"#, #"{"resume_retry":{"cancel_queued":false}}"#,
                #"{"resume_continue":{"cancel_queued":false}}"#,
            ])
    }

    @Test("every request survives the wire", arguments: requests)
    func roundTrip(_ request: ControlRequest) throws {
        let line = try JSONEncoder.control.encode(request)
        #expect(try ControlRequest.decode(line).get() == request)
    }

    @Test("mon and its lines across versions: a request or a line without an id is read as before")
    func monAcrossVersions() throws {
        #expect(try ControlRequest.decode(Data(#"{"mon":{}}"#.utf8)).get() == .mon(node: nil, after: nil))
        #expect(try ControlRequest.decode(Data(#"{"mon":{"node":"n2"}}"#.utf8)).get() == .mon(node: "n2"))
        let old = try JSONDecoder.control.decode(ControlAnswer.self, from: Data(#"{"logLine":{"text":"x"}}"#.utf8))
        #expect(old == .logLine(text: "x", id: nil))
        let new = String(
            decoding: try JSONEncoder.control.encode(ControlAnswer.logLine(text: "x", id: 7)), as: UTF8.self)
        #expect(new.contains(#""id":7"#), "\(new)")
        guard case .failure(let error) = ControlRequest.decode(Data(#"{"mon":{"after":-1}}"#.utf8)) else {
            Issue.record("a negative line id was taken")
            return
        }
        #expect(error.message == "mon: a negative line id", "\(error.message)")
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
            ("{\"wait_event\":{\"name\":\"\"}}", "which event?"),
            ("{\"history\":{\"limit\":-5}}", "the limit is negative"),
            ("{\"history\":{\"limit\":10001}}", "the limit is at most 10000 events"),
            (
                "{\"trigger\":{\"event\":\"x\",\"state\":1000000000000000000}}",
                "the state is an integer of at most 18 digits"
            ),
            (
                "{\"trigger\":{\"event\":\"x\",\"state\":-9223372036854775808}}",
                "the state is an integer of at most 18 digits"
            ),
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

    @Test(
        "a wait-event timeout beyond a year (BoundedDuration) is refused as malformed, exit status 2",
        arguments: ["1e19", "1e300", "-1", "31536001", "1e8"])
    func timeoutOutOfRange(_ timeout: String) {
        let line = "{\"wait_event\":{\"name\":\"x\",\"timeout\":\(timeout)}}"
        guard case .failure(let error) = ControlRequest.decode(Data(line.utf8)) else {
            Issue.record("\(line) decoded")
            return
        }
        #expect(error.exitCode == 2)
        #expect(
            error.message.contains("timeout: not a number of seconds from 0 to 31536000 (365d)"), "\(error.message)")
    }

    @Test("a timeout is a failure with exit status 1, not a success")
    func timeoutAnswer() throws {
        let answer = ControlAnswer.failed(.timeout, "wait-event: x: no completion within 1 s")
        let decoded = try JSONDecoder.control.decode(ControlAnswer.self, from: JSONEncoder.control.encode(answer))
        #expect(decoded.error?.exitCode == 1)
        #expect(decoded.text == nil)
    }
}

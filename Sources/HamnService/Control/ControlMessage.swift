/// A request to the service over its control socket: one JSON object on one line.
public struct ControlRequest: Codable, Sendable, Hashable {
    public enum Command: String, Codable, Sendable, CaseIterable {
        case status, history, resume, trigger, recovery, haCmd = "ha-cmd", mon, waitEvent = "wait-event"
    }

    public var command: Command
    /// history: how many events.
    public var limit: Int?
    /// resume
    public var cancelQueued: Bool?
    /// trigger: the event, its state and node; wait-event: the event name.
    public var event: String?
    public var state: Int?
    public var node: String?
    /// recovery: on or off; ha-cmd: START, STOP, TAKE or FORCE.
    public var enabled: Bool?
    public var action: String?
    /// recovery, ha-cmd: a NODERANGE.
    public var nodes: String?
    /// wait-event: seconds.
    public var timeout: Double?
    /// mon: only lines for this node's events (nil: all).
    public var onlyNode: String?

    public init(command: Command) {
        self.command = command
    }
}

/// One line of the service's answer. Most requests get one; `mon` gets one per log line until
/// the client goes away.
public struct ControlResponse: Codable, Sendable, Hashable {
    public var ok: Bool
    /// For people.
    public var text: String?
    /// For machines: a JSON document, as text.
    public var json: String?
    public var error: String?
    /// The exit status the command line should end with (wait-event's 1 on timeout).
    public var exitCode: Int32?

    public static func success(text: String, json: String? = nil) -> ControlResponse {
        ControlResponse(ok: true, text: text, json: json, error: nil, exitCode: nil)
    }

    public static func failure(_ message: String, exitCode: Int32 = 1) -> ControlResponse {
        ControlResponse(ok: false, text: nil, json: nil, error: message, exitCode: exitCode)
    }
}

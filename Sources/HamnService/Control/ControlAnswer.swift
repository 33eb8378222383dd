/// One line of the service's answer on the control socket (JSON, like the request). Most
/// requests get one; `mon` gets a `logLine` per line of the event log, and a `failed` if it is
/// dropped.
public enum ControlAnswer: Codable, Sendable, Hashable {
    /// Done: what was done, for people.
    case done(text: String)
    /// A report (`status`, `history`): text for people, a JSON document for machines.
    case report(text: String, json: String)
    /// `mon`: one line of the event log, with its id in the journal (for a `mon` that
    /// reconnects; nil from an earlier service).
    case logLine(text: String, id: Int64? = nil)
    /// The request failed: its code gives the command line's exit status.
    case failed(error: ControlError)

    public static func failed(_ error: ControlError) -> ControlAnswer {
        .failed(error: error)
    }

    public static func failed(_ code: ControlError.Code, _ message: String) -> ControlAnswer {
        .failed(error: ControlError(code, message))
    }

    /// The text for people, if the request did not fail.
    public var text: String? {
        switch self {
        case .done(let text), .report(let text, _), .logLine(let text, _): text
        case .failed: nil
        }
    }

    public var error: ControlError? {
        if case .failed(let error) = self { error } else { nil }
    }
}

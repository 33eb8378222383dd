import RulesEngine

/// Parses DB2 HADR status text into the fields of `HAMN.DB2.HADR`. Pure.
///
/// Three layouts are recognised:
///
/// - **Snapshot** (`db2 get snapshot for db on XCATDB`, "HADR Status" section):
///   `Role = Primary`, `State = Peer`, `Synchronization mode = Nearsync`,
///   `Connection status = Connected, 08/05/2010 ...` (the part before the comma),
///   `Heartbeats missed = 0`, `Log gap running average(bytes) = 0`. When a `HADR Status` line is
///   present only the lines after it are read.
/// - **db2pd, DB2 9.x** (`db2pd -d xcatdb -hadr`): column tables, a header line
///   (`Role State SyncMode HeartBeatsMissed LogGapRunAvg (bytes)`, `ConnectStatus ConnectTime
///   Timeout`) followed by a values line. Both the real whitespace-aligned output (a value with
///   spaces, such as a connect time, is cut at the header's column positions) and the markdown
///   pipe-table rendering (`| Role | State | ... |`) of the xCAT document are read.
/// - **db2pd, DB2 10+**: `HADR_ROLE = PRIMARY`, `HADR_STATE = PEER`, `HADR_SYNCMODE = NEARSYNC`,
///   `HADR_CONNECT_STATUS = CONNECTED`, `HEARTBEAT_MISSED = 0`, `HADR_LOG_GAP(bytes) = 0`. A
///   primary with several standbys prints one block per standby: the first block (the principal
///   standby) is taken.
///
/// Words are normalised to the capitalisation of the older layouts (``normalise(_:)``) so that
/// one predicate, `X.Role != "Primary"`, works on every layout. Text without a HADR role (an
/// error message, "HADR is not active", garbage) is a ``ParseError``.
public enum HADRStatusParser {
    public enum Layout: String, Sendable, Hashable {
        case snapshot
        case db2pdColumns
        case db2pdKeyValue
    }

    public struct Status: Sendable, Hashable {
        public var layout: Layout
        public var role: String?
        public var state: String?
        public var syncMode: String?
        public var connectStatus: String?
        public var heartBeatsMissed: Double?
        public var logGap: Double?

        public init(
            layout: Layout, role: String? = nil, state: String? = nil, syncMode: String? = nil,
            connectStatus: String? = nil, heartBeatsMissed: Double? = nil, logGap: Double? = nil
        ) {
            self.layout = layout
            self.role = role
            self.state = state
            self.syncMode = syncMode
            self.connectStatus = connectStatus
            self.heartBeatsMissed = heartBeatsMissed
            self.logGap = logGap
        }

        /// The structured value of `HAMN.DB2.HADR`: the fields in the catalogue's order
        /// (Role, State, SyncMode, ConnectStatus, HeartBeatsMissed, LogGap), absent ones left out.
        public var value: SampleValue {
            var fields: [SampleValue.Field] = []
            if let role { fields.append(.init("Role", .string(role))) }
            if let state { fields.append(.init("State", .string(state))) }
            if let syncMode { fields.append(.init("SyncMode", .string(syncMode))) }
            if let connectStatus { fields.append(.init("ConnectStatus", .string(connectStatus))) }
            if let heartBeatsMissed { fields.append(.init("HeartBeatsMissed", .number(heartBeatsMissed))) }
            if let logGap { fields.append(.init("LogGap", .number(logGap))) }
            return .fields(fields)
        }
    }

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func parse(_ text: String) throws(ParseError) -> Status {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        let status: Status
        if let found = try keyValueLayout(lines) {
            status = found
        } else if let found = try snapshotLayout(lines) {
            status = found
        } else if let found = try columnLayout(lines) {
            status = found
        } else {
            let first = lines.lazy.map { $0.monitorTrimmedString }.first { !$0.isEmpty }
            if let first {
                throw ParseError(
                    message: "no HADR status in the output (it begins: \(String(first.prefix(160)).quotedForMonitor))")
            }
            throw ParseError(message: "no HADR status in the output (it is empty)")
        }
        return status
    }

    /// `PRIMARY` → `Primary`, `REMOTE_CATCHUP_PENDING` → `RemoteCatchupPending`,
    /// `Remote catchup pending` → `RemoteCatchupPending`, `NEARSYNC` → `Nearsync`; a value that
    /// is already in that form is kept.
    public static func normalise(_ value: String) -> String {
        let words = value.split(whereSeparator: { $0 == " " || $0 == "_" || $0 == "-" || $0 == "\t" })
        return words.map { word -> String in
            guard let first = word.first else { return "" }
            let rest = word.dropFirst()
            let shouting = word.contains(where: \.isLetter) && !word.contains(where: \.isLowercase)
            return first.uppercased() + (shouting ? rest.lowercased() : String(rest))
        }.joined()
    }

    // MARK: - DB2 10+: HADR_ROLE = PRIMARY

    private static func keyValueLayout(_ lines: [String]) throws(ParseError) -> Status? {
        var values: [String: String] = [:]
        var seenRole = false
        for line in lines {
            guard let (key, value) = keyValue(line) else { continue }
            let upper = key.uppercased()
            if upper == "HADR_ROLE" {
                if seenRole { break }  // the next standby's block
                seenRole = true
            }
            guard seenRole else { continue }
            if values[upper] == nil { values[upper] = value }
        }
        guard seenRole else { return nil }
        var status = Status(layout: .db2pdKeyValue)
        status.role = word(values["HADR_ROLE"])
        status.state = word(values["HADR_STATE"])
        status.syncMode = word(values["HADR_SYNCMODE"])
        status.connectStatus = word(values["HADR_CONNECT_STATUS"])
        status.heartBeatsMissed = try number(values["HEARTBEAT_MISSED"], "HEARTBEAT_MISSED")
        if let gapKey = values.keys.filter({ $0.hasPrefix("HADR_LOG_GAP") }).min() {
            status.logGap = try number(values[gapKey], gapKey)
        }
        guard status.role != nil else { return nil }
        return status
    }

    // MARK: - Snapshot: Role = Primary

    private static func snapshotLayout(_ lines: [String]) throws(ParseError) -> Status? {
        var start = 0
        if let header = lines.firstIndex(where: { $0.monitorTrimmedString.lowercased() == "hadr status" }) {
            start = header + 1
        }
        var values: [String: String] = [:]
        for line in lines[start...] {
            guard let (key, value) = keyValue(line) else { continue }
            let name = key.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            if values[name] == nil { values[name] = value }
        }
        guard let role = values["role"] else { return nil }
        var status = Status(layout: .snapshot)
        status.role = word(role)
        status.state = word(values["state"])
        status.syncMode = word(values["synchronization mode"])
        if let connection = values["connection status"] {
            status.connectStatus = word(String(connection.prefix { $0 != "," }))
        }
        status.heartBeatsMissed = try number(values["heartbeats missed"], "Heartbeats missed")
        if let gapKey = values.keys.filter({ $0.hasPrefix("log gap running average") }).min() {
            status.logGap = try number(values[gapKey], "Log gap running average")
        }
        guard status.role != nil else { return nil }
        return status
    }

    // MARK: - db2pd 9.x: column tables

    /// A header row and the values row under it.
    private struct Table {
        var headers: [String]
        var values: [String]
    }

    private static func columnLayout(_ lines: [String]) throws(ParseError) -> Status? {
        let tables = pipeTables(lines) + alignedTables(lines)
        guard tables.contains(where: { $0.headers.first?.lowercased() == "role" }) else { return nil }
        var merged: [String: String] = [:]
        for table in tables {
            for (index, header) in table.headers.enumerated() where index < table.values.count {
                let key = header.lowercased().filter { !$0.isWhitespace }
                if merged[key] == nil { merged[key] = table.values[index] }
            }
        }
        var status = Status(layout: .db2pdColumns)
        status.role = word(merged["role"])
        status.state = word(merged["state"])
        status.syncMode = word(merged["syncmode"])
        status.connectStatus = word(merged["connectstatus"])
        status.heartBeatsMissed = try number(merged["heartbeatsmissed"], "HeartBeatsMissed")
        if let gapKey = merged.keys.filter({ $0.hasPrefix("loggaprunavg") }).min() {
            status.logGap = try number(merged[gapKey], "LogGapRunAvg")
        }
        guard status.role != nil else { return nil }
        return status
    }

    /// Markdown tables: consecutive `| a | b |` lines; separator rows (`|---|`) and rows of
    /// empty cells skipped; the first remaining row is the header, the next the values.
    private static func pipeTables(_ lines: [String]) -> [Table] {
        var tables: [Table] = []
        var rows: [[String]] = []
        func flush() {
            if rows.count >= 2 { tables.append(Table(headers: rows[0], values: rows[1])) }
            rows = []
        }
        for line in lines {
            let trimmed = line.monitorTrimmedString
            guard trimmed.hasPrefix("|") else {
                flush()
                continue
            }
            var cells = trimmed.split(separator: "|", omittingEmptySubsequences: false).map { $0.monitorTrimmed }
            if cells.first?.isEmpty == true { cells.removeFirst() }
            if cells.last?.isEmpty == true { cells.removeLast() }
            let isSeparator = cells.allSatisfy { cell in cell.isEmpty || cell.allSatisfy { $0 == "-" || $0 == ":" } }
            if isSeparator { continue }
            rows.append(cells.map(String.init))
        }
        flush()
        return tables
    }

    /// db2pd's own output: a header line whose words start columns, and the next non-blank
    /// line. `LogGapRunAvg (bytes)` is one header. When the values line has as many words as
    /// there are headers they are taken in order; otherwise it is cut at the headers' columns.
    private static func alignedTables(_ lines: [String]) -> [Table] {
        let knownFirstHeaders: Set<String> = ["role", "connectstatus"]
        var tables: [Table] = []
        for (index, line) in lines.enumerated() {
            guard !line.monitorTrimmedString.hasPrefix("|") else { continue }
            let headers = columns(line)
            guard let first = headers.first, knownFirstHeaders.contains(first.text.lowercased()), headers.count >= 2
            else { continue }
            guard let valueLine = lines[(index + 1)...].first(where: { !$0.monitorTrimmedString.isEmpty }),
                !valueLine.monitorTrimmedString.hasPrefix("|")
            else { continue }
            let words = valueLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words.count == headers.count {
                tables.append(Table(headers: headers.map(\.text), values: words))
                continue
            }
            let characters = Array(valueLine)
            var values: [String] = []
            for (column, header) in headers.enumerated() {
                let start = header.offset
                let end = column + 1 < headers.count ? headers[column + 1].offset : characters.count
                guard start < characters.count else {
                    values.append("")
                    continue
                }
                values.append(String(characters[start..<min(end, characters.count)]).monitorTrimmedString)
            }
            if values.first?.isEmpty != false, let firstWord = words.first { values[0] = firstWord }
            tables.append(Table(headers: headers.map(\.text), values: values))
        }
        return tables
    }

    /// The words of a header line with their character offsets; a `(unit)` word joins the
    /// word before it.
    private static func columns(_ line: String) -> [(text: String, offset: Int)] {
        var result: [(text: String, offset: Int)] = []
        var current = ""
        var start = 0
        let characters = Array(line) + [" "]
        for (offset, character) in characters.enumerated() {
            if character == " " || character == "\t" {
                if !current.isEmpty {
                    if current.hasPrefix("("), let last = result.popLast() {
                        result.append((last.text + " " + current, last.offset))
                    } else {
                        result.append((current, start))
                    }
                    current = ""
                }
            } else {
                if current.isEmpty { start = offset }
                current.append(character)
            }
        }
        return result
    }

    // MARK: - Helpers

    /// `key = value` (the first `=`), both trimmed; nil for other lines.
    private static func keyValue(_ line: String) -> (String, String)? {
        guard let equals = line.firstIndex(of: "=") else { return nil }
        let key = line[..<equals].monitorTrimmed
        let value = line[line.index(after: equals)...].monitorTrimmed
        guard !key.isEmpty else { return nil }
        return (String(key), String(value))
    }

    private static func word(_ value: String?) -> String? {
        guard let value else { return nil }
        let trimmed = value.monitorTrimmedString
        guard !trimmed.isEmpty else { return nil }
        return normalise(trimmed)
    }

    private static func number(_ value: String?, _ name: String) throws(ParseError) -> Double? {
        guard let value else { return nil }
        let trimmed = value.monitorTrimmedString
        if trimmed.isEmpty || trimmed.uppercased() == "NULL" { return nil }
        guard let number = Double(trimmed), number.isFinite else {
            throw ParseError(message: "HADR \(name) is not a number: \(trimmed.quotedForMonitor)")
        }
        return number
    }
}

extension String {
    var monitorTrimmedString: String { String(self[...].monitorTrimmed) }

    /// The text in double quotes, for messages.
    var quotedForMonitor: String {
        "\"" + self.monitorReplacing("\\", "\\\\").monitorReplacing("\"", "\\\"").monitorReplacing("\n", "\\n") + "\""
    }

    fileprivate func monitorReplacing(_ target: Character, _ replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}

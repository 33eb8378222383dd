import Foundation

/// What an engine says about itself when it joins: its node, and a digest of its rules, `.rp`
/// files and commands, so that members can tell when their configurations differ.
public struct EngineInfo: Sendable, Hashable, Codable {
    public var node: ClusterNode
    public var digest: ConfigurationDigest
    /// hamn-events' wire versions and build, for the log (`hamn-events wire 2,3`).
    public var software: String
    /// In a `hello`: the cluster the engine is in (see `Roster.cluster`). nil from an engine of
    /// an earlier build, taken as it was.
    public var cluster: UInt64?
    /// The wire versions the engine speaks (`WireAgreement`). nil from an engine of an earlier
    /// build: `WireAgreement.versions(of:)` reads them from `software`.
    public var versions: [Int]?

    /// `versions` nil: every version this build speaks, and the matching `software`.
    public init(
        node: ClusterNode, digest: ConfigurationDigest, software: String? = nil, cluster: UInt64? = nil,
        versions: [Int]? = nil
    ) {
        self.node = node
        self.digest = digest
        let versions = versions ?? WireFormat.versions.map(Int.init)
        self.software = software ?? WireFormat.software(versions)
        self.cluster = cluster
        self.versions = versions
    }
}

/// One engine of the group: its CPG address and what it announced.
public struct EngineEntry: Sendable, Hashable, Codable {
    public var address: CPGAddress
    public var info: EngineInfo
}

/// The engines' view as of the configuration change that showed `joined` joining: what a
/// joining engine needs to take part (see `EngineMembership`).
public struct Roster: Sendable, Hashable, Codable {
    /// The change this roster answers: who joined, and the group after it.
    public var joined: [CPGAddress]
    public var group: [CPGAddress]
    public var view: Int
    public var engines: [EngineEntry]
    /// Which cluster, as of the change: a number that every engine of a cluster derives alike
    /// (`EngineMembership.cluster`). Two clusters that meet at a heal have different ones.
    public var cluster: UInt64? = nil
    /// Set by an engine of a side the merge rule kept, answering the engines named in `joined`:
    /// they stop, whatever their own view says (if two sides' views disagree, both stop and
    /// restart: safe; both staying would not be). nil from an engine of an earlier build.
    public var stays: Bool? = nil
    /// Engines of other clusters the sender's cluster has heard say hello and that are still in
    /// the group (`EngineMembership`'s `heard`): a joiner takes them with the roster, so that a
    /// merge names them alike on every engine. nil (none) from an engine of an earlier build.
    public var heard: [EngineEntry]? = nil
    /// The clusters the sender's cluster beat in a merge, by their numbers as of now
    /// (`EngineMembership`'s `beaten`). nil (none) from an engine of an earlier build.
    public var beaten: [UInt64]? = nil
    /// The numbers the sender's cluster had before `cluster` (the latest 8): a hello naming one
    /// is from a joiner of this cluster whose hello crossed a change. nil (none) from an engine
    /// of an earlier build.
    public var past: [UInt64]? = nil
}

/// A message between engines on the CPG group.
public enum WireMessage: Sendable, Hashable, Codable {
    /// Sent once the engine knows its cluster (alone at its join, a roster taken, or `form`),
    /// naming it; again after a reload, or when the cluster number changed before admission.
    case hello(EngineInfo)
    /// Sent by every synchronised engine after a configuration change with joined members.
    case roster(Roster)
    /// Sent by a joining engine that heard no roster: the engines still joining start a cluster.
    case form
    /// The coordinator's messages.
    case cluster(ClusterMessage)
}

/// The bytes on the wire: `HAMN`, one version byte, one byte for the body's encoding, then the
/// body. Version 3 is version 2 with `resume`'s modes (`--retry`, `--continue`): the cluster
/// sends the version its members agreed on (`WireAgreement`), and a message that needs a higher
/// one is not sent (`encode(_:version:)` is nil). `segmentDone`, the message of every barrier, has a binary body (`SegmentDoneBody`);
/// every other message is JSON (rare, and a snapshot of the cluster's state is a nested
/// structure that is Codable already). A message with another magic, version or encoding, or
/// whose body does not decode, is refused with a reason; the transport logs it and drops it.
public enum WireFormat {
    public static let magic: [UInt8] = Array("HAMN".utf8)
    /// 1: JSON only (no encoding byte). 2: the encoding byte, and binary `segmentDone`. 3: 2 and
    /// `resume`'s modes. The versions this build speaks, oldest first; `version` the newest.
    public static let versions: [UInt8] = [2, 3]
    public static let version: UInt8 = 3
    public static let software = software(versions.map(Int.init))

    /// `hamn-events wire 2,3`: what an engine says it speaks (read back by
    /// `WireAgreement.versions(software:)` from an engine that sends no `versions`).
    public static func software(_ versions: [Int]) -> String {
        "hamn-events wire " + versions.map(String.init).joined(separator: ",")
    }

    /// The versions this build speaks up to `limit` (`HAMN_TEST_WIRE_MAX`, a test's old engine).
    public static func versions(upTo limit: Int?) -> [Int] {
        let all = versions.map(Int.init)
        guard let limit else { return all }
        let kept = all.filter { $0 <= limit }
        return kept.isEmpty ? [all[0]] : kept
    }

    /// The lowest version that carries `message` as it is: 3 for a resume with a mode.
    public static func lowestVersion(for message: WireMessage) -> UInt8 {
        if case .cluster(.resume(_, let mode, _)) = message, mode != nil { return 3 }
        return 2
    }

    /// The byte after the version.
    enum Body: UInt8 {
        case json = 0
        case segmentDone = 1
    }

    public struct DecodingFailure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// In the newest version.
    public static func encode(_ message: WireMessage) -> [UInt8] {
        encode(message, version: version)!
    }

    /// What an engine sends in a cluster that agreed on `agreed` (`WireAgreement`): `message` in
    /// the oldest version that carries it, nil when that is above `agreed`. The oldest, not
    /// `agreed`: an engine of an earlier build that joins reads what was sent before its join
    /// and ordered after it (a hello, a roster, a `segmentDone`); only what needs version 3 is
    /// lost to it. (A later version that changes how a message is encoded needs another rule.)
    public static func encode(_ message: WireMessage, agreed: UInt8) -> [UInt8]? {
        let needed = lowestVersion(for: message)
        return needed <= agreed ? encode(message, version: needed) : nil
    }

    /// In `version`; nil when `message` needs a higher one (`lowestVersion(for:)`).
    public static func encode(_ message: WireMessage, version: UInt8) -> [UInt8]? {
        guard lowestVersion(for: message) <= version else { return nil }
        var bytes = magic
        bytes.append(version)
        if case .cluster(.segmentDone(let eventID, let segment, let results)) = message {
            bytes.append(Body.segmentDone.rawValue)
            SegmentDoneBody.encode(eventID: eventID, segment: segment, results: results, into: &bytes)
            return bytes
        }
        bytes.append(Body.json.rawValue)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding our own value types cannot fail: no floats that are not finite, no custom encoders.
        bytes += (try? encoder.encode(message)) ?? Data()
        return bytes
    }

    /// A message in one of the `accepting` versions. A version 2 `resume` is the plain one
    /// (its mode, if any, is not version 2's).
    public static func decode(_ bytes: [UInt8], accepting: [UInt8] = versions) throws(DecodingFailure)
        -> WireMessage
    {
        guard bytes.count >= magic.count + 1, bytes[0..<magic.count].elementsEqual(magic) else {
            throw DecodingFailure(description: "not a hamn-events message (\(bytes.count) bytes, no HAMN header)")
        }
        let version = bytes[magic.count]
        guard accepting.contains(version) else {
            let spoken = accepting.map(String.init).joined(separator: " and ")
            throw DecodingFailure(
                description:
                    "message format version \(version); this engine speaks version\(accepting.count == 1 ? "" : "s") \(spoken)"
            )
        }
        let message = try body(bytes, version: version)
        if version < 3, case .cluster(.resume(let cancelQueued, .some, let user)) = message {
            return .cluster(.resume(cancelQueued: cancelQueued, mode: nil, user: user))
        }
        return message
    }

    private static func body(_ bytes: [UInt8], version: UInt8) throws(DecodingFailure) -> WireMessage {
        guard bytes.count > magic.count + 1 else {
            throw DecodingFailure(description: "malformed version \(version) message (\(bytes.count) bytes): no body")
        }
        let bodyStart = magic.count + 2
        switch Body(rawValue: bytes[magic.count + 1]) {
        case .segmentDone:
            do {
                return .cluster(try SegmentDoneBody.decode(bytes[bodyStart...]))
            } catch {
                throw DecodingFailure(
                    description: "malformed version \(version) segmentDone (\(bytes.count) bytes): \(error.description)"
                )
            }
        case .json:
            do {
                return try JSONDecoder().decode(WireMessage.self, from: Data(bytes[bodyStart...]))
            } catch {
                throw DecodingFailure(
                    description: "malformed version \(version) message (\(bytes.count) bytes): \(Self.summary(error))")
            }
        case nil:
            throw DecodingFailure(
                description:
                    "malformed version \(version) message (\(bytes.count) bytes): unknown body encoding \(bytes[magic.count + 1])"
            )
        }
    }

    private static func summary(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context), DecodingError.keyNotFound(_, let context),
            DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

import Foundation

/// What an engine says about itself when it joins: its node, and a digest of its rules, `.rp`
/// files and commands, so that members can tell when their configurations differ.
public struct EngineInfo: Sendable, Hashable, Codable {
    public var node: ClusterNode
    public var digest: ConfigurationDigest
    /// hamn-events' wire version and build, for the log.
    public var software: String
    /// In a `hello`: the cluster the engine is in (see `Roster.cluster`). nil from an engine of
    /// an earlier build, taken as it was (the whole cluster is upgraded at once).
    public var cluster: UInt64?

    public init(
        node: ClusterNode, digest: ConfigurationDigest, software: String = WireFormat.software, cluster: UInt64? = nil
    ) {
        self.node = node
        self.digest = digest
        self.software = software
        self.cluster = cluster
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
/// body. `segmentDone`, the message of every barrier, has a binary body (`SegmentDoneBody`);
/// every other message is JSON (rare, and a snapshot of the cluster's state is a nested
/// structure that is Codable already). A message with another magic, version or encoding, or
/// whose body does not decode, is refused with a reason; the transport logs it and drops it.
public enum WireFormat {
    public static let magic: [UInt8] = Array("HAMN".utf8)
    /// 1: JSON only (no encoding byte). 2: the encoding byte, and binary `segmentDone`.
    public static let version: UInt8 = 2
    public static let software = "hamn-events wire 2"

    /// The byte after the version.
    enum Body: UInt8 {
        case json = 0
        case segmentDone = 1
    }

    public struct DecodingFailure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public static func encode(_ message: WireMessage) -> [UInt8] {
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

    public static func decode(_ bytes: [UInt8]) throws(DecodingFailure) -> WireMessage {
        guard bytes.count >= magic.count + 1, bytes[0..<magic.count].elementsEqual(magic) else {
            throw DecodingFailure(description: "not a hamn-events message (\(bytes.count) bytes, no HAMN header)")
        }
        let received = bytes[magic.count]
        guard received == version else {
            throw DecodingFailure(
                description: "message format version \(received); this engine speaks version \(version)")
        }
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

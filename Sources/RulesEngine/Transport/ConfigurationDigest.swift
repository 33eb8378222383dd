import Crypto
import Foundation

/// A digest of what decides how a node runs events: the rules file, every `.rp` file, and every
/// command file the recovery programs name (an absolute path, or a bundled event script). Each
/// engine announces it on joining; members compare theirs file by file, as PowerHA's
/// verification does.
public struct ConfigurationDigest: Sendable, Hashable, Codable {
    /// SHA-256 of every file, in hex, by path; "missing" or "unreadable" when it could not be read.
    public var files: [String: String]

    public init(files: [String: String]) {
        self.files = files
    }

    /// One SHA-256 over all the files' paths and digests, in hex.
    public var combined: String {
        var bytes: [UInt8] = []
        for (path, digest) in files.sorted(by: { $0.key < $1.key }) {
            bytes += Array(path.utf8) + [0] + Array(digest.utf8) + [10]
        }
        return sha256Hex(bytes)
    }

    /// The paths whose digest differs, or that only one side has, sorted.
    public func differingFiles(_ other: ConfigurationDigest) -> [String] {
        Set(files.keys).union(other.files.keys).filter { files[$0] != other.files[$0] }.sorted()
    }
}

/// SHA-256 of `bytes` in lower-case hex (swift-crypto's), for configuration digests.
package func sha256Hex<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for byte in SHA256.hash(data: bytes) {
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

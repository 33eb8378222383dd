import RulesEngine

// What the CPG tests and their peer process (the `cpg-peer` executable) share: the lines they
// log per event, and the test patterns they send.

/// The peer's environment: the group to join and the log to write.
public enum CPGPeerEnvironment {
    public static let group = "HAMN_CPG_PEER_GROUP"
    public static let log = "HAMN_CPG_PEER_LOG"
}

/// The bytes of the test pattern: every byte value, zeros included, in no simple period.
public func cpgPattern(_ count: Int, seed: UInt32 = 7) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_103_515_245 &+ 12_345
        return UInt8(truncatingIfNeeded: state >> 16)
    }
}

/// FNV-1a, 64 bits.
public func cpgHash(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
}

/// One line per event, the same in the test process and in a peer's log.
public func cpgLine(_ event: CPGEvent) -> String {
    func list(_ addresses: [CPGAddress]) -> String { addresses.map(\.description).joined(separator: ",") }
    switch event {
    case .configuration(let members, let joined, let left):
        return "c m=\(list(members)) j=\(list(joined)) l=\(list(left))"
    case .message(let from, let bytes):
        return "m \(from) \(bytes.count) \(cpgHash(bytes))"
    case .quorum(let quorate):
        return "q \(quorate)"
    case .lost(let reason):
        return "lost \(reason)"
    }
}

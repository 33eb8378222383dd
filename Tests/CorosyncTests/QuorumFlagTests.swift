import Testing

@testable import CorosyncTransport

/// votequorum's flag as a configuration change is delivered (`QuorumReading`), without
/// corosync: a flag votequorum has not yet updated for the new ring is not believed when the
/// ring cannot have quorum. CI once saw the lone node of a 2|1 partition run a takeover
/// segment before its loss of quorum was reported (EngineClusterTests' partition test).
@Suite("quorum flag against the ring")
struct QuorumFlagTests {
    @Test("a stale quorate flag with a ring below the quorum is not quorate; otherwise the flag stands")
    func staleFlag() {
        // Three nodes, quorum 2: the lone node's ring is 1.
        #expect(!QuorumReading(flag: true, quorum: 2).quorate(ring: 1))
        #expect(QuorumReading(flag: true, quorum: 2).quorate(ring: 2))
        #expect(!QuorumReading(flag: false, quorum: 2).quorate(ring: 3))
        // Two nodes with two_node: quorum 1, a lone node is quorate.
        #expect(QuorumReading(flag: true, quorum: 1).quorate(ring: 1))
        // Votes and a quorum device count.
        #expect(QuorumReading(flag: true, quorum: 2, nodeVotes: 2).quorate(ring: 1))
        #expect(QuorumReading(flag: true, quorum: 2, qdeviceVotes: 1).quorate(ring: 1))
        // last_man_standing and auto_tie_breaker make a smaller ring quorate on purpose.
        #expect(QuorumReading(flag: true, quorum: 3, smallerRingMayBeQuorate: true).quorate(ring: 2))
        // No ring known yet: the flag.
        #expect(QuorumReading(flag: true, quorum: 2).quorate(ring: 0))
    }
}

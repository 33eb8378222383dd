import Testing

/// The torture run's checker on hand-made histories (no cluster: runs anywhere).
@Suite("Torture checker: histories that violate and that do not")
struct TortureCheckerTests {
    private func record(_ node: String, _ action: TortureRecord.Action, _ at: Int64) -> TortureRecord {
        TortureRecord(node: node, action: action, monotonic: at, wall: 1_000 + at)
    }

    @Test("a handover: release before the acquire, one owner at the end")
    func handover() {
        let history = [
            record("n1", .acquire, 10), record("n1", .release, 20), record("n2", .acquire, 21),
        ]
        #expect(TortureChecker.check(history) == [])
    }

    @Test("the records of several files in any order are replayed by their monotonic time")
    func anyOrder() {
        let history = [
            record("n2", .acquire, 21), record("n1", .release, 20), record("n1", .acquire, 10),
            record("n3", .acquire, 40), record("n2", .release, 30),
        ]
        #expect(TortureChecker.check(history) == [])
    }

    @Test("an acquire while another node holds the resource: two owners")
    func overlap() {
        let history = [
            record("n1", .acquire, 10), record("n2", .acquire, 15), record("n1", .release, 20),
        ]
        #expect(TortureChecker.check(history) == [.twoOwners(first: "n1", since: 10, second: "n2", at: 15)])
    }

    @Test("a power-off ends what the node held: a takeover after it is no overlap, one before it is")
    func powerOff() {
        let fencedFirst = [
            record("n1", .acquire, 10), record("n1", .poweroff, 30), record("n2", .acquire, 31),
        ]
        #expect(TortureChecker.check(fencedFirst) == [])
        let takenTooEarly = [
            record("n1", .acquire, 10), record("n2", .acquire, 29), record("n1", .poweroff, 30),
        ]
        #expect(TortureChecker.check(takenTooEarly) == [.twoOwners(first: "n1", since: 10, second: "n2", at: 29)])
    }

    @Test("at one instant a release or power-off comes before an acquire")
    func sameInstant() {
        #expect(
            TortureChecker.check([record("n2", .acquire, 20), record("n1", .acquire, 10), record("n1", .release, 20)])
                == [])
        #expect(
            TortureChecker.check([record("n1", .acquire, 10), record("n2", .acquire, 20), record("n1", .poweroff, 20)])
                == [])
    }

    @Test("a power-off of a node that held nothing changes nothing; nobody at the end is a violation")
    func noOwnerAtTheEnd() {
        let history = [record("n3", .poweroff, 5), record("n1", .acquire, 10), record("n1", .poweroff, 20)]
        #expect(TortureChecker.check(history) == [.settledOwners([])])
        #expect(TortureChecker.check(history, settled: false) == [])
    }

    @Test("two owners at the end: the overlap and the settled count")
    func twoAtTheEnd() {
        let history = [record("n1", .acquire, 10), record("n3", .acquire, 50)]
        #expect(
            TortureChecker.check(history) == [
                .twoOwners(first: "n1", since: 10, second: "n3", at: 50), .settledOwners(["n1", "n3"]),
            ])
    }

    @Test(
        "an acquire by an event that knew of the owner (a member, or the node taken over) is two owners; by one that did not, an owner outside the cluster"
    )
    func outsideTheCluster() {
        let owner = TortureRecord(
            node: "n1", action: .acquire, monotonic: 10, why: "TE_JOIN_NODE 0 n1 event 1 members n1")
        let takeover = TortureRecord(
            node: "n2", action: .acquire, monotonic: 20, why: "TE_FAIL_NODE 0 n1 event 3 members n2,n3")
        let failback = TortureRecord(
            node: "n2", action: .acquire, monotonic: 20, why: "TE_JOIN_NODE 0 n2 event 2 members n1,n2")
        let founder = TortureRecord(
            node: "n3", action: .acquire, monotonic: 20, why: "TE_JOIN_NODE 0 n3 event 1 members n3")
        #expect(
            TortureChecker.check([owner, takeover], settled: false) == [
                .twoOwners(first: "n1", since: 10, second: "n2", at: 20)
            ])
        #expect(
            TortureChecker.check([owner, failback], settled: false) == [
                .twoOwners(first: "n1", since: 10, second: "n2", at: 20)
            ])
        let outside = TortureChecker.check([owner, founder], settled: false)
        #expect(outside == [.ownerOutsideTheCluster(first: "n1", since: 10, second: "n3", at: 20)])
        #expect(outside.allSatisfy(TortureChecker.isKnownGap))
        #expect(!TortureChecker.isKnownGap(.twoOwners(first: "n1", since: 10, second: "n2", at: 20)))
        // After the outsider's power-off, nothing.
        let fenced = TortureRecord(node: "n1", action: .poweroff, monotonic: 15, why: "fenced")
        #expect(TortureChecker.check([owner, fenced, founder]) == [])
    }

    @Test("an acquire of what the node holds, a release of what it does not: inconsistent records")
    func inconsistent() {
        let twice = [record("n1", .acquire, 10), record("n1", .acquire, 20)]
        #expect(TortureChecker.check(twice) == [.inconsistent(record("n1", .acquire, 20))])
        let stray = [record("n1", .acquire, 10), record("n2", .release, 20)]
        #expect(TortureChecker.check(stray) == [.inconsistent(record("n2", .release, 20))])
    }

    @Test("lines: fields, an optional reason, torn and foreign lines skipped")
    func parse() {
        let text = "n1 acquire 100 200\nn2 poweroff 300 400 fenced by n1\nn3 acq\n\nn1 release x 5\n"
        #expect(
            TortureChecker.parse([text]) == [
                TortureRecord(node: "n1", action: .acquire, monotonic: 100, wall: 200),
                TortureRecord(node: "n2", action: .poweroff, monotonic: 300, wall: 400, why: "fenced by n1"),
            ])
    }
}

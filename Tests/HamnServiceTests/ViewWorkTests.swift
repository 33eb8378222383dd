import Foundation
import Testing

@testable import HamnService

#if canImport(Glibc)
    import Glibc
#endif

/// The web view's rendering runs at the lowest CPU priority, on one thread of its own, so that
/// an open view never takes a core from the service or from a recovery command being started.
@Suite("the web view's work")
struct ViewWorkTests {
    @Test("runs at nice 19 on one thread, not the caller's, and in the order given")
    func lowestPriority() async {
        let caller = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let (nice, name) = await ViewWork.shared.run {
            (getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), Thread.current.name)
        }
        #expect(nice == 19)
        #expect(name == "hamn-view")
        #expect(caller != 19)
        var order: [Int] = []
        for index in 0..<5 { order.append(await ViewWork.shared.run { index }) }
        #expect(order == [0, 1, 2, 3, 4])
    }
}

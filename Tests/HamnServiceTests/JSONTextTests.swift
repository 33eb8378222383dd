import Foundation
import Testing

@testable import HamnService

/// `status --format json` and the web view's state are written by `JSONText`, not by
/// `JSONEncoder` (17 ms for 1,000 instances): the bytes must be the ones `JSONEncoder` wrote.
@Suite struct JSONTextTests {
    private static func encoded(_ document: StatusJSON) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }

    /// Every byte below 0x20, quotes, backslashes, slashes, DEL and characters beyond ASCII.
    private static let awkward =
        String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }) + #"a"b\c/d"# + "\u{7F}é→😀\u{2028}"

    private static func document(
        instances: [StatusJSON.Instance], optionals: Bool, text: String = awkward
    ) -> StatusJSON {
        StatusJSON(
            node: "n1" + text, number: 1, transport: "corosync", synchronised: true, members: ["n1", text, "n3"],
            quorate: false, waitingForQuorum: 2, wireVersion: 3,
            engines: [
                .init(node: "n1", number: 1, address: "127.0.0.1:5405", configuration: text, wire: [2, 3]),
                .init(node: "n2", number: 2, address: "r(0) ip(10.0.0.2)", configuration: "abc", wire: []),
            ],
            configurationDifferences: optionals ? [text, "two"] : [], recoveryOff: optionals ? ["n2", "n3"] : [],
            running: [
                .init(
                    id: 7, name: "node_down" + text, state: 0, node: "n2", displayName: "node_down n2", segment: 1,
                    segments: 3, waitingFor: ["n1", "n3"], failedOn: optionals ? "n3" : nil)
            ],
            queue: optionals ? [.init(id: 8, name: "db2_paging", state: 1, node: "n1")] : [],
            instances: instances,
            monitorFailures: optionals ? ["PagingSpace": text, "db2sysc_count": "exit 1", "a10": "x", "a9": "y"] : [:],
            fencingWarning: optionals ? text : nil, journalProblem: optionals ? "disk full" : nil, queueLimit: 100,
            rulesTrees: optionals ? ["n1": "abc", "N2": text, "n10": "d"] : [:],
            web: optionals
                ? .init(listening: true, url: "http://127.0.0.1:9665/", reason: nil)
                : .init(listening: false, url: nil, reason: "port 9665 in use"),
            fencing: [
                .init(
                    node: "n2", reason: "left", fencer: optionals ? "n1" : nil, failures: 3,
                    lastError: optionals ? text : nil, waitsForAdministrator: true)
            ])
    }

    private static let samples: [Double] = [
        0, -0.0, 1, -1, 40, 0.1, 1.0 / 3, 2.5e-8, 1e20, 1.7976931348623157e308, 123_456_789_012, -273.15, 5e-324,
    ]

    @Test(arguments: [true, false])
    func writesTheBytesJSONEncoderWrites(optionals: Bool) throws {
        let instances: [StatusJSON.Instance] = (0..<40).map { index in
            .init(
                event: index % 3 == 0 ? "db2_paging" : "fs_full" + Self.awkward, state: index % 2,
                instance: "NodeNum=\(index % 5)", armed: index % 4 != 0, last: index % 6 == 0 ? nil : "\(index)",
                recent: index % 7 == 0 ? nil : Array(Self.samples.prefix(index % Self.samples.count)))
        }
        let document = Self.document(instances: instances, optionals: optionals)
        #expect(document.text == (try Self.encoded(document)))
    }

    @Test func writesEmptyDocuments() throws {
        let document = Self.document(instances: [], optionals: false, text: "")
        #expect(document.text == (try Self.encoded(document)))
    }

    /// `JSONEncoder` refuses a value that is not a number, and `status` then showed `{}`: the
    /// document stays whole, the value is `null`.
    @Test func writesNullForValuesThatAreNotNumbers() {
        let instances: [StatusJSON.Instance] = [
            .init(event: "e", state: 0, instance: "i", armed: true, last: "nan", recent: [1, .nan, .infinity, 2])
        ]
        let text = Self.document(instances: instances, optionals: false).text
        #expect(text.contains(#""recent":[1,null,null,2]"#))
    }

    /// A sparkline several instances share is written once and copied: the copies are whole.
    @Test func copiesSharedSparklinesWhole() {
        let shared: [Double] = [1, 2.5, 3]
        let instances: [StatusJSON.Instance] = (0..<3).map {
            .init(event: "e\($0)", state: 0, instance: "i", armed: true, last: nil, recent: shared)
        }
        let text = Self.document(instances: instances, optionals: false).text
        let instancesPart = text.components(separatedBy: #""instances":"#)[1].components(separatedBy: #","members""#)[0]
        #expect(
            instancesPart
                == #"[{"armed":true,"event":"e0","instance":"i","recent":[1,2.5,3],"state":0},{"armed":true,"event":"e1","instance":"i","recent":[1,2.5,3],"state":0},{"armed":true,"event":"e2","instance":"i","recent":[1,2.5,3],"state":0}]"#
        )
    }
}

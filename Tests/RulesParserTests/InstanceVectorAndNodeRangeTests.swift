import RulesParser
import Testing

@Suite("instance vectors and node ranges")
struct InstanceVectorAndNodeRangeTests {
    @Test("instance vectors parse and match")
    func instanceVector() {
        let (vector, problems) = InstanceVector.parse("NodeNum=*;ProgName=nfsd; UserName = root ;")
        #expect(problems.isEmpty)
        #expect(vector.description == "NodeNum=*;ProgName=nfsd;UserName=root")
        #expect(vector.matches(["NodeNum": "3", "ProgName": "nfsd", "UserName": "root"]))
        #expect(!vector.matches(["NodeNum": "3", "ProgName": "db2sysc", "UserName": "root"]))
        #expect(vector["NodeNum"] == .any)
    }

    @Test("malformed elements are reported at their offset")
    func instanceVectorProblems() {
        #expect(InstanceVector.parse("NodeNum=*;;Name=/").1.map(\.offset) == [10])
        #expect(InstanceVector.parse("NodeNum=*;NodeNum=1").1.map(\.offset) == [10])
        #expect(InstanceVector.parse("9x=1").1.map(\.offset) == [0])
        #expect(InstanceVector.parse("Name=/var", allowedNames: ["NodeNum"]).1.count == 1)
    }

    let nodes = (1...8).map { NodeRange.Node(name: "aixmn\($0)", number: $0) }

    @Test(
        "node ranges of every documented form",
        arguments: [
            ("1-16", [1, 2, 3, 4, 5, 6, 7, 8]),
            ("1,2,3,4", [1, 2, 3, 4]),
            ("1-4,7", [1, 2, 3, 4, 7]),
            ("aixmn1,aixmn2", [1, 2]),
            ("aixmn3-aixmn5", [3, 4, 5]),
            ("all", [1, 2, 3, 4, 5, 6, 7, 8]),
            ("2, 2 ,aixmn2", [2]),
        ])
    func nodeRange(_ text: String, _ expected: [Int]) throws {
        let range = try NodeRange.parse(text)
        #expect(range.resolve(in: nodes).selected.map(\.number) == expected)
    }

    @Test("node range errors and unmatched nodes")
    func nodeRangeErrors() throws {
        #expect(throws: NodeRange.SyntaxError.self) { try NodeRange.parse("4-1") }
        #expect(throws: NodeRange.SyntaxError.self) { try NodeRange.parse("1,,2") }
        #expect(throws: NodeRange.SyntaxError.self) { try NodeRange.parse("a b") }
        #expect(try NodeRange.parse("7,9,nosuch").resolve(in: nodes).unmatched == ["9", "nosuch"])
    }
}

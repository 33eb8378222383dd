/// An instance vector (rules field 7): `name=value` elements joined by `;`, where a value of
/// `*` matches every instance, e.g. `NodeNum=*;ProgName=nfsd`.
public struct InstanceVector: Sendable, Hashable, CustomStringConvertible {
    public enum Value: Sendable, Hashable {
        case any
        case exactly(String)
    }

    public struct Element: Sendable, Hashable {
        public var name: String
        public var value: Value

        public init(name: String, value: Value) {
            self.name = name
            self.value = value
        }
    }

    public var elements: [Element]

    public init(_ elements: [Element]) {
        self.elements = elements
    }

    /// What an empty field 7 means: every node.
    public static let everyNode = InstanceVector([Element(name: "NodeNum", value: .any)])

    public subscript(name: String) -> Value? {
        elements.first { $0.name == name }?.value
    }

    /// Whether an instance, given as its element values, is selected by this vector.
    /// An element the instance does not have selects nothing unless it is `*`.
    public func matches(_ instance: [String: String]) -> Bool {
        elements.allSatisfy { element in
            switch element.value {
            case .any: true
            case .exactly(let wanted): instance[element.name] == wanted
            }
        }
    }

    public var description: String {
        elements.map { element in
            switch element.value {
            case .any: "\(element.name)=*"
            case .exactly(let value): "\(element.name)=\(value)"
            }
        }.joined(separator: ";")
    }

    /// A malformed element: its byte offset in the text and what is wrong.
    public struct Problem: Sendable, Hashable {
        public var offset: Int
        public var message: String
    }

    /// Parses the text of field 7. Elements for which `allowedNames` (when given) has no place
    /// are problems too. One trailing `;` is accepted.
    public static func parse(_ text: String, allowedNames: [String]? = nil) -> (InstanceVector, [Problem]) {
        parse(bytes: Array(text.utf8), allowedNames: allowedNames)
    }

    /// Parses UTF-8 bytes; problem offsets are byte offsets, whatever the bytes are.
    public static func parse(bytes: [UInt8], allowedNames: [String]? = nil) -> (InstanceVector, [Problem]) {
        var elements: [Element] = []
        var problems: [Problem] = []
        var start = 0
        var seen: Set<String> = []
        while start <= bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x3B { end += 1 }
            defer { start = end + 1 }
            var lo = start
            var hi = end
            while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo += 1 }
            while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 { hi -= 1 }
            if lo == hi {
                if end == bytes.count, start > 0 { break }  // one trailing ';'
                problems.append(Problem(offset: lo, message: "empty element (expected name=value)"))
                continue
            }
            let piece = String(decoding: bytes[lo..<hi], as: UTF8.self)
            guard let eq = bytes[lo..<hi].firstIndex(of: 0x3D) else {
                problems.append(Problem(offset: lo, message: "element \(piece.quotedForMessage()) is not name=value"))
                continue
            }
            var nameEnd = eq
            while nameEnd > lo, bytes[nameEnd - 1] == 0x20 || bytes[nameEnd - 1] == 0x09 { nameEnd -= 1 }
            var valueStart = eq + 1
            while valueStart < hi, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            let name = String(decoding: bytes[lo..<nameEnd], as: UTF8.self)
            let value = String(decoding: bytes[valueStart..<hi], as: UTF8.self)
            guard isIdentifier(bytes[lo..<nameEnd]) else {
                problems.append(Problem(offset: lo, message: "element name \(name.quotedForMessage()) is not a name"))
                continue
            }
            guard !value.isEmpty else {
                problems.append(
                    Problem(offset: eq, message: "element \(name.quotedForMessage()) has no value (use * for any)"))
                continue
            }
            if let allowedNames, !allowedNames.contains(name) {
                problems.append(
                    Problem(
                        offset: lo,
                        message:
                            "no instance element \(name.quotedForMessage()) for this variable (it has \(allowedNames.joined(separator: ", ")))"
                    ))
                continue
            }
            guard seen.insert(name).inserted else {
                problems.append(Problem(offset: lo, message: "element \(name.quotedForMessage()) given twice"))
                continue
            }
            elements.append(Element(name: name, value: value == "*" ? .any : .exactly(value)))
        }
        return (InstanceVector(elements), problems)
    }

    private static func isIdentifier(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, first == 0x5F || (first | 0x20 >= 0x61 && first | 0x20 <= 0x7A) else {
            return false
        }
        return bytes.allSatisfy { b in
            b == 0x5F || (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
        }
    }
}

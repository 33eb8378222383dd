/// Whether corosync authenticates and encrypts its traffic: `hamn-events sync` requires it
/// (README, "sync"). The tree it sends carries commands that every node runs as root; without
/// `crypto_cipher` and `crypto_hash` in `totem { }`, anyone who can send to corosync's port
/// could put their own commands in one.
public enum CorosyncCrypto {
    /// nil when `totem { }` of `text` (the contents of `file`) sets both `crypto_cipher` and
    /// `crypto_hash` to something other than `none`; else why not, as `FILE:LINE:COLUMN: ...`
    /// at the setting (or at `totem {`, or the file's first line, when it is missing).
    public static func problem(in text: String, file: String) -> String? {
        var path: [String] = []
        var totem: (line: Int, column: Int)?
        var settings: [String: (value: String, line: Int, column: Int)] = [:]
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            let indent = line.prefix { $0 == " " || $0 == "\t" }.count
            var content = line.dropFirst(indent)
            while let last = content.last, last == " " || last == "\t" { content.removeLast() }
            if content.isEmpty || content.hasPrefix("#") { continue }
            if content.hasSuffix("{") {
                path.append(content.dropLast().trimmingCharacters(in: " \t"))
                if path == ["totem"], totem == nil { totem = (lineNumber, indent + 1) }
            } else if content == "}" {
                _ = path.popLast()
            } else if path == ["totem"], let colon = content.firstIndex(of: ":") {
                let key = content[..<colon].trimmingCharacters(in: " \t")
                let value = content[content.index(after: colon)...].trimmingCharacters(in: " \t")
                let column = indent + 1 + content.distance(from: content.startIndex, to: colon) + 2
                settings[key] = (value, lineNumber, column)
            }
        }
        let why = "sync sends commands that run as root on every node, so corosync must authenticate its traffic"
        guard let totem else {
            return "\(file):1:1: no totem { } block, so crypto_cipher and crypto_hash are none: \(why)"
        }
        for key in ["crypto_cipher", "crypto_hash"] {
            guard let setting = settings[key] else {
                return
                    "\(file):\(totem.line):\(totem.column): totem sets no \(key) (corosync's default is none): \(why)"
            }
            if setting.value.isEmpty || setting.value == "none" {
                return "\(file):\(setting.line):\(setting.column): \(key): \(setting.value): \(why)"
            }
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in blanks: String) -> String {
        String(drop { blanks.contains($0) }.reversed().drop { blanks.contains($0) }.reversed())
    }
}

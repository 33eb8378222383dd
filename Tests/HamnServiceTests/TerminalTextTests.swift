import Foundation
import Testing

@testable import HamnService

/// What reaches a terminal: control characters as escapes (issue 16, finding 15).
@Suite("terminal text")
struct TerminalTextTests {
    @Test(
        "one line: every control character escaped, line breaks included",
        arguments: [
            ("plain", "plain"),
            ("red\u{1b}[31m", "red\\x1b[31m"),
            ("title\u{1b}]0;pwned\u{07}", "title\\x1b]0;pwned\\x07"),
            ("a\nforged line", "a\\nforged line"),
            ("cr\rover", "cr\\rover"),
            ("tab\there", "tab\\there"),
            ("del\u{7f}", "del\\x7f"),
            ("csi\u{9b}2J", "csi\\u009b2J"),
            ("rtl\u{202e}txt.exe", "rtl\\u202etxt.exe"),
            ("nul\u{0}", "nul\\x00"),
            ("ünïcödé ✓", "ünïcödé ✓"),
        ])
    func line(_ text: String, _ shown: String) {
        #expect(TerminalText.line(text) == shown)
    }

    @Test("several lines keep their breaks and tabs, nothing else")
    func lines() {
        #expect(TerminalText.lines("a\n\tb\u{1b}[2J\r\n") == "a\n\tb\\x1b[2J\\r\n")
    }

    @Test("JSON keeps its value: raw C1 and bidi controls become \\u escapes")
    func json() throws {
        let text = "{\"name\":\"a\u{9b}b\u{202e}c\u{7f}\"}"
        let shown = TerminalText.json(text)
        #expect(shown == "{\"name\":\"a\\u009bb\\u202ec\\u007f\"}")
        let before = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        let after = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: String]
        #expect(before == after)
    }
}

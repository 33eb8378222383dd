import Foundation

extension ServiceHarness {
    /// A service whose paging variable is read by `/bin/cat` from `file` every `interval`, and
    /// a rule, `db2_paging`, that records each value over 70 in `paged` (rearmed below 60).
    /// `file` nil: the file `paging` of the output folder, holding 40.
    static func paging(from file: String? = nil, interval: String = "0.2s") throws -> (
        harness: ServiceHarness, file: String
    ) {
        let harness = try ServiceHarness(
            definitions: [],
            extraConfiguration: """
                variables:
                  - name: IBM.PSSP.aixos.PagSp.%totalused
                    command: /bin/cat PAGING
                    interval: \(interval)
                """)
        let path = file ?? harness.outputDirectory + "/paging"
        let configuration = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        try harness.write(harness.configPath, configuration.replacingOccurrences(of: "PAGING", with: path))
        if file == nil { try harness.write(path, "40\n") }
        try harness.writeRules([
            (
                "db2_paging", 0,
                "all \"/bin/sh -c 'echo $HAMN_RV_VALUE >> \(harness.outputDirectory)/paged'\" 0 NULL\n",
                ["IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70", "X < 60"]
            )
        ])
        return (harness, path)
    }
}

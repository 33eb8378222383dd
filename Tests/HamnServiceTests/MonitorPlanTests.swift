import HamnConfiguration
import HamnService
import RulesEngine
import RulesParser
import Testing

private func definition(_ name: String, _ variable: String, _ instances: String, line: Int) throws -> EventDefinition {
    EventDefinition(
        trigger: .init(name: name, state: 0), displayName: name, recoveryProgram: "/rp/\(name).rp", recoveryType: 0,
        recoveryLevel: 0,
        monitoring: .init(
            variable: variable, instances: InstanceVector.parse(instances).0,
            predicate: try PredicateParser.parse("X > 1"),
            rearmPredicate: nil),
        line: line, recoveryProgramLine: line + 2)
}

private func configuration() -> ServiceConfiguration {
    var configuration = ServiceConfiguration(
        node: ClusterNode(name: "aixmn1", number: 1),
        nodes: [ClusterNode(name: "aixmn1", number: 1), ClusterNode(name: "aixmn2", number: 2)],
        rules: "/etc/hamn/rules.hacmprd", journal: "/var/lib/hamn/journal.db", socket: "/run/hamn.sock")
    configuration.defaultInterval = 10
    configuration.monitors = [
        ServiceConfiguration.Monitor(variable: "IBM.PSSP.Prog.pcount", interval: 5),
        ServiceConfiguration.Monitor(variable: "HAMN.DB2.HADR", interval: 60, command: "/opt/ibm/db2/bin/db2pd"),
        ServiceConfiguration.Monitor(variable: "IBM.PSSP.aixos.CPU.glidle", interval: 30),
    ]
    configuration.variables = [
        ServiceConfiguration.Variable(
            name: "APP.queue", command: "/usr/local/bin/queue-depth", interval: 15, timeout: 3)
    ]
    return configuration
}

@Suite("monitor plan")
struct MonitorPlanTests {
    @Test("one entry per variable, instances the union of the definitions', intervals from the configuration")
    func plan() throws {
        let definitions = [
            try definition("nfsd_down", "IBM.PSSP.Prog.pcount", "NodeNum=*;ProgName=nfsd;UserName=root", line: 1),
            try definition("db2_down", "IBM.PSSP.Prog.pcount", "ProgName=db2sysc", line: 10),
            try definition("nfsd_again", "IBM.PSSP.Prog.pcount", "ProgName=nfsd;UserName=root", line: 20),
            try definition("var_full", "IBM.PSSP.aixos.FS.%totused", "NodeNum=*;Name=/var", line: 30),
            try definition("tmp_full", "IBM.PSSP.aixos.FS.%totused", "Name=/tmp", line: 40),
            try definition("stale_sync", "HAMN.File.Age", "Name=/var/lib/hamn/sync.stamp", line: 50),
            try definition("hadr", "HAMN.DB2.HADR", "Database=XCATDB", line: 60),
            try definition("paging", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", line: 70),
            try definition("queue", "APP.queue", "NodeNum=*", line: 80),
            try definition("other_node", "HAMN.File.Age", "NodeNum=2;Name=/only/on/two", line: 90),
        ]
        let plan = MonitorPlan(definitions: definitions, configuration: configuration())
        #expect(plan.warnings.isEmpty)
        let byVariable = Dictionary(plan.entries.map { ($0.variable, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(
            plan.entries.map(\.variable) == [
                "IBM.PSSP.Prog.pcount", "IBM.PSSP.aixos.FS.%totused", "HAMN.File.Age", "HAMN.DB2.HADR",
                "IBM.PSSP.aixos.PagSp.%totalused", "APP.queue", "IBM.PSSP.aixos.CPU.glidle",
            ])
        #expect(
            byVariable["IBM.PSSP.Prog.pcount"]?.target
                == .programs([.init(name: "nfsd", user: "root"), .init(name: "db2sysc")]))
        #expect(byVariable["IBM.PSSP.Prog.pcount"]?.interval == .seconds(5))
        #expect(
            byVariable["IBM.PSSP.aixos.FS.%totused"]?.target
                == .fileSystems(mountPoints: ["/var", "/tmp"], everyRealFileSystem: false))
        #expect(byVariable["IBM.PSSP.aixos.FS.%totused"]?.interval == .seconds(10))
        #expect(byVariable["HAMN.File.Age"]?.target == .files(["/var/lib/hamn/sync.stamp"]))
        #expect(byVariable["HAMN.DB2.HADR"]?.target == .databases(["XCATDB"]))
        #expect(byVariable["HAMN.DB2.HADR"]?.interval == .seconds(60))
        let hadr = try #require(byVariable["HAMN.DB2.HADR"]?.sampler as? HADRSampler)
        #expect(hadr.program == "/opt/ibm/db2/bin/db2pd")
        #expect(hadr.timeout == .seconds(30))
        #expect(byVariable["IBM.PSSP.aixos.PagSp.%totalused"]?.target == .node)
        #expect(byVariable["IBM.PSSP.aixos.PagSp.%totalused"]?.sampler is PagingSpaceSampler)
        // A configured variable: its own interval; a command sampler.
        #expect(byVariable["APP.queue"]?.interval == .seconds(15))
        #expect(byVariable["APP.queue"]?.sampler is CommandVariableSampler)
        #expect(byVariable["APP.queue"]?.deadline == .seconds(8))
        // A configured monitor no rule uses, for a node-wide variable: sampled at its interval.
        #expect(byVariable["IBM.PSSP.aixos.CPU.glidle"]?.target == .node)
        #expect(byVariable["IBM.PSSP.aixos.CPU.glidle"]?.interval == .seconds(30))
    }

    @Test("Name=* means every real file system, plus the named ones")
    func everyFileSystem() throws {
        let plan = MonitorPlan(
            definitions: [
                try definition("any_full", "IBM.PSSP.aixos.FS.%totused", "NodeNum=*", line: 1),
                try definition("tmp_full", "IBM.PSSP.aixos.FS.%totused", "Name=/tmp", line: 10),
            ],
            configuration: configuration())
        #expect(plan.entries.first?.target == .fileSystems(mountPoints: ["/tmp"], everyRealFileSystem: true))
    }

    @Test("unknown variables and instances that cannot be enumerated are warnings, not entries")
    func warnings() throws {
        var configuration = configuration()
        configuration.variables = []
        configuration.monitors = [ServiceConfiguration.Monitor(variable: "HAMN.File.Age", interval: 5)]
        let plan = MonitorPlan(
            definitions: [
                try definition("mystery", "ACME.Widget.count", "NodeNum=*", line: 1),
                try definition("any_prog", "IBM.PSSP.Prog.pcount", "ProgName=*", line: 10),
                try definition("any_db", "HAMN.DB2.HADR", "NodeNum=*", line: 20),
                try definition("cpu", "IBM.PSSP.aixos.CPU.glidle", "NodeNum=*", line: 30),
            ],
            configuration: configuration)
        #expect(plan.entries.map(\.variable) == ["IBM.PSSP.aixos.CPU.glidle"])
        try #require(plan.warnings.count == 4)
        #expect(plan.warnings[0].contains("ACME.Widget.count") && plan.warnings[0].contains("mystery"))
        #expect(plan.warnings[1].contains("any_prog") && plan.warnings[1].contains("ProgName"))
        #expect(plan.warnings[2].contains("any_db") && plan.warnings[2].contains("Database"))
        #expect(plan.warnings[3].contains("HAMN.File.Age"))
    }

    @Test("a configured variable replaces a built-in one of the same name")
    func configuredReplacesBuiltIn() throws {
        var configuration = configuration()
        configuration.variables = [
            ServiceConfiguration.Variable(name: "IBM.PSSP.aixos.Mem.Real.%free", command: "/bin/echo 50", interval: 2)
        ]
        configuration.monitors = []
        let plan = MonitorPlan(
            definitions: [try definition("low_mem", "IBM.PSSP.aixos.Mem.Real.%free", "NodeNum=*", line: 1)],
            configuration: configuration)
        try #require(plan.entries.count == 1)
        #expect(plan.entries[0].sampler is CommandVariableSampler)
        #expect(plan.entries[0].interval == .seconds(2))
    }
}

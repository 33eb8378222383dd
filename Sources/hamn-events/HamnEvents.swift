import ArgumentParser
import RulesEngine

#if canImport(Glibc)
    import Glibc
#endif

@main
struct HamnEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hamn-events",
        abstract: "An HACMP ES-style cluster event manager for Linux.",
        discussion: """
            Administrators write a rules.hacmprd file of nine-line event definitions and .rp \
            recovery programs; hamn-events checks them and runs them across the cluster nodes.
            """,
        version:
            "hamn-events \(hamnEventsVersion) (wire formats \(WireFormat.versions.map(String.init).joined(separator: ", ")))",
        subcommands: [
            Validate.self, Simulate.self, Test.self, Run.self, Status.self, History.self, Resume.self, Trigger.self,
            Recovery.self, Maintenance.self, HaCmd.self, Mon.self, WaitEvent.self, Fence.self, Sync.self, Cluster.self,
        ]
    )

    /// As ParsableCommand's, but a usage error exits 2 (SPEC section 8), not 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

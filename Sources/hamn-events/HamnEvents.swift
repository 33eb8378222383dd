import ArgumentParser

@main
struct HamnEvents: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hamn-events",
        abstract: "An HACMP ES-style cluster event manager for Linux.",
        discussion: """
            Administrators write a rules.hacmprd file of nine-line event definitions and .rp
            recovery programs; hamn-events checks them and runs them across the cluster nodes.
            """,
        subcommands: [Validate.self]
    )
}

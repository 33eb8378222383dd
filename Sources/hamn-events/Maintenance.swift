import ArgumentParser
import HamnService
import RulesEngine

#if canImport(Glibc)
    import Glibc
#endif

/// The child of `maintenance`, for the signal handler: 0 when there is none.
nonisolated(unsafe) private var maintenanceChild: pid_t = 0

extension HamnEvents {
    struct Maintenance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold recovery off for nodes while a command runs.",
            discussion: """
                Turns recovery off for NODERANGE, runs CMD, and turns recovery back on only when \
                CMD has ended. An interrupt (Ctrl-C, SIGINT, SIGTERM, SIGHUP) is passed to CMD and \
                waited for: it never ends the window early. Exits with CMD's status.
                """)

        @OptionGroup var service: ServiceOptions
        @Argument(help: "NODERANGE.") var nodes: String
        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String]

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("give the command after --") }
        }

        func run() throws {
            try service.send(.recovery(setting: .off, nodes: nodes))
            let status = runHoldingSignals(command)
            do {
                try service.send(.recovery(setting: .on, nodes: nodes))
            } catch {
                printError(
                    "hamn-events: recovery is still OFF for \(nodes): turn it on with `hamn-events recovery on \(nodes)`"
                )
                throw ExitCode(1)
            }
            if status != 0 { throw ExitCode(status) }
        }

        /// Runs `arguments` and waits for it, passing SIGINT, SIGQUIT, SIGTERM and SIGHUP sent
        /// to this process on to it. One the terminal sends (Ctrl-C) already reaches it, since it
        /// shares our process group, so those are not passed twice.
        private func runHoldingSignals(_ arguments: [String]) -> Int32 {
            let signals = [SIGINT, SIGQUIT, SIGTERM, SIGHUP]
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in signals { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            var empty = sigset_t()
            sigemptyset(&empty)
            posix_spawnattr_setsigmask(&attributes, &empty)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
            var action = sigaction()
            action.sa_flags = SA_SIGINFO | SA_RESTART
            action.__sigaction_handler.sa_sigaction = { signal, info, _ in
                // Sent by a process (kill), not by the terminal: pass it on.
                if let info, info.pointee.si_code <= 0, maintenanceChild > 0 { kill(maintenanceChild, signal) }
            }
            for signal in signals { sigaction(signal, &action, nil) }
            // Whoever started us may have blocked them (a test runner does): we must see them.
            pthread_sigmask(SIG_UNBLOCK, &defaults, nil)
            var argv = arguments.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            let spawned = posix_spawnp(&pid, arguments[0], nil, &attributes, &argv, environ)
            guard spawned == 0 else {
                printError("hamn-events: cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
                return 127
            }
            maintenanceChild = pid
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                if errno != EINTR { return 1 }
            }
            maintenanceChild = 0
            let exited = status & 0x7F == 0
            return exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        }
    }
}

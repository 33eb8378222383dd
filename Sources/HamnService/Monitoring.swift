import HamnConfiguration
import RulesEngine
import RulesParser

/// Runs the monitors the rules need (and those configured) into a node's service: samples to
/// be evaluated, failures to be reported, network interface changes to be raised.
public enum Monitoring {
    public static func run(
        service: NodeService, rules: RuleBook, catalogue: VariableCatalogue, configuration: ServiceConfiguration
    ) async {
        let plan = MonitorPlan(rules: rules, configuration: configuration)
        for warning in plan.warnings { await service.monitorFailed(variable: "monitors", message: warning) }
        let scheduler = MonitorScheduler(plan: plan, node: configuration.node, metrics: service.metrics)
        let watcher = NetworkWatcher(configuration: configuration)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await scheduler.run { report in
                    switch report {
                    case .observations(_, let observations):
                        await service.observe(observations)
                    case .failed(let variable, let instance, let message):
                        await service.monitorFailed(variable: label(variable, instance), message: message)
                    case .notInstalled(let variable, let instance, let message):
                        await service.monitorFailed(
                            variable: label(variable, instance), message: message, notInstalled: true)
                    case .recovered(let variable, let instance):
                        await service.monitorRecovered(variable: label(variable, instance))
                    }
                }
            }
            if !configuration.networks.isEmpty {
                group.addTask {
                    await watcher.run { request in await service.raise(request) }
                }
            }
        }
    }

    private static func label(_ variable: String, _ instance: String?) -> String {
        instance.map { "\(variable) \($0)" } ?? variable
    }
}

/// The monitors' task, restarted with the new rules after a reload.
actor MonitorSupervisor {
    private var task: Task<Void, Never>?

    func restart(_ body: @escaping @Sendable () async -> Void) {
        task?.cancel()
        task = Task { await body() }
    }

    func stop() async {
        task?.cancel()
        await task?.value
        task = nil
    }
}

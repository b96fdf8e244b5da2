import ArgumentParser

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Run provision across the hosts of an Ansible inventory over OpenSSH, with a central audit copy.",
        discussion: """
            Each host runs provision on its own root (provision_root, default /) and keeps its own history, so it can be \
            rolled back alone, offline. The controller connects with the system ssh client (one ControlMaster connection \
            per host, BatchMode, the fleet's own known_hosts in the state directory), copies its own build to \
            /var/lib/provision/bin/ on hosts that lack it (provision_path names one already installed), sends the recipe \
            and the host's variables (every inventory variable the recipe declares; --var overrides), prints a line per \
            host as it finishes and a recap, and fetches every host's history into STATE/fleet.git under refs/hosts/HOST/ \
            with a record of the fleet run (git --git-dir STATE/fleet.git log --all spans the fleet).

            Exit codes: 0 every host ok; 1 a host failed or was unreachable (or an error before any host ran); 2 plan \
            --detailed-exitcode and some host has changes; 3 status found drift or a pending recovery.
            """,
        subcommands: [
            FleetPlanCommand.self, FleetApplyCommand.self, FleetRollbackCommand.self, FleetHistoryCommand.self, FleetBlameCommand.self, FleetStatusCommand.self,
        ])
}

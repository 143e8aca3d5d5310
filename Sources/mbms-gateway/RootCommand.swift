import ArgumentParser

// Minimal root for the `keymgmt` branch only; the root command on main (MBMSGateway with all
// subcommands) replaces this file at merge time. KeysCommand is self-contained.
@main
struct MBMSGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbms-gateway",
        abstract: "MBMS BM-SC data plane (TS 33.246).",
        subcommands: [KeysCommand.self])
}

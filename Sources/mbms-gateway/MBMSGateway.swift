import ArgumentParser
import CryptoCore

/// The `mbms-gateway` command: a TS 33.246 BM-SC media protection data plane.
@main
struct MBMSGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbms-gateway",
        abstract: "MBMS media protection gateway (3GPP TS 33.246 BM-SC data plane).",
        discussion: """
            Takes plain RTP/RTCP (and, later, FLUTE) in and sends protected streams out:
            SRTP/SRTCP keyed by the current MTK with MKI = MSK ID || MTK ID (6 octets) and
            the ROC carried in RFC 4771 tags.

            Start with `mbms-gateway demo`: it generates an RTP stream, protects it with two
            MTKs, receives it as a UE would, and prints what happened.
            """,
        version: "0.1.0",
        subcommands: [DemoCommand.self, ReplayCommand.self, RunCommand.self, ReceiveCommand.self, InspectCommand.self, KeysCommand.self, BenchCommand.self])
}

/// Every command calls this first: a too-old OpenSSL fails with a message naming the fix.
func checkRuntime() throws {
    do { try OpenSSLRuntime.check() } catch {
        throw ValidationError(error.description)
    }
}

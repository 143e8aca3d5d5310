import ArgumentParser
import CryptoCore

/// The `mbms-gateway` command: a TS 33.246 BM-SC media protection data plane.
@main
struct MBMSGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbms-gateway",
        abstract: "MBMS media protection gateway (3GPP TS 33.246 BM-SC data plane).",
        discussion: """
            Plain RTP/RTCP and FLUTE in; protected streams out: SRTP/SRTCP keyed by the current MTK (MKI = MSK ID || MTK ID, the ROC in RFC 4771 tags) with MIKEY MTK messages on UDP 2269, and FLUTE objects wrapped in OMA DRM DCFs with a DCF-wrapped FDT and a MIKEY object.

            Start with `mbms-gateway demo`: it makes sample RTP, a key store, protects the stream and decrypts it again as a UE would. Then: `keys init` (key store), `replay` (pcap in, pcap out) or `run` (live UDP), and `receive` / `inspect` to check the result.
            """,
        version: "0.1.0",
        subcommands: [DemoCommand.self, ReplayCommand.self, RunCommand.self, ReceiveCommand.self, InspectCommand.self, KeysCommand.self, UECommand.self, KeyServerCommand.self, BenchCommand.self])
}

/// Every command calls this first: a too-old OpenSSL fails with a message naming the fix.
func checkRuntime() throws {
    do { try OpenSSLRuntime.check() } catch {
        throw ValidationError(error.description)
    }
}

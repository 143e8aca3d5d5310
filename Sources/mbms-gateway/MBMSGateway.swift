import ArgumentParser
import CryptoCore
import Foundation
import Gateway
import KeyManagement
import PacketIO
import Receiver

/// The `mbms-gateway` command: a TS 33.246 BM-SC media protection data plane.
@main
struct MBMSGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbms-gateway",
        abstract: "MBMS media protection gateway (3GPP TS 33.246 BM-SC data plane).",
        discussion: """
            Plain RTP/RTCP and FLUTE in; protected streams out: SRTP/SRTCP keyed by the current MTK (MKI = MSK ID || MTK ID, the ROC in RFC 4771 tags) with MIKEY MTK messages on UDP 2269, and FLUTE objects wrapped in OMA DRM DCFs with a DCF-wrapped FDT and a MIKEY object.

            Start with `mbms-gateway demo`: it makes sample RTP, a key store, protects the stream and decrypts it again as a UE would. Then: `keys init` (key store), `replay` (pcap in, pcap out) or `run` (live UDP), and `receive` / `inspect` to check the result.

            \(ExitStatus.table)
            """,
        version: "0.1.0",
        subcommands: [DemoCommand.self, ReplayCommand.self, RunCommand.self, ReceiveCommand.self, InspectCommand.self, KeysCommand.self, UECommand.self, KeyServerCommand.self, BenchCommand.self])

    /// ArgumentParser's `main`, with the errors that mean "an input cannot be used" given the
    /// same exit status in every command (`ExitStatus`).
    static func main() {
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            if let status = ExitStatus.of(error) {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(status.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// The exit status of every command, one meaning each (issue 19 finding 10). The table is the
/// `mbms-gateway --help` text and README.md "Exit status".
enum ExitStatus: Int32, CaseIterable {
    /// Done; for `receive` and `demo`: everything checked and verified.
    case ok = 0
    /// The command ran but what it checked failed (`receive`, `demo`: FAILED), or it could not
    /// finish (the key store refused: missing, corrupt, another Key Domain; a socket or a peer
    /// failed; an output could not be written).
    case failed = 1
    /// An input file the command was given cannot be used: the configuration (--config), a
    /// capture (--input, --plain, `inspect FILE`: missing, not pcap/pcapng, truncated or
    /// corrupt), key material (--msk-message, --ue-export, --muk-file). One line names the
    /// file and the fix.
    case badInput = 2
    /// Command-line usage: an unknown option, a missing or malformed value (EX_USAGE; the usage
    /// text follows).
    case usage = 64
    /// `run`: a second SIGINT/SIGTERM ended it without draining.
    case interrupted = 130

    /// The status an error means when it is not ArgumentParser's to decide (`ExitCode`,
    /// `ValidationError` and parse errors are; anything else not listed here exits 1).
    static func of(_ error: any Error) -> ExitStatus? {
        switch error {
        case is ConfigurationError, is GatewaySetupError, is ReceiverInputError:
            return .badInput
        case let e as KeysFailure:
            return e.status
        case let e as CaptureError:
            switch e {
            case .cannotOpen, .readFailed: return .badInput
            case .cannotCreate, .writeFailed: return .failed
            }
        default:
            return nil
        }
    }

    static let table = """
        Exit status (every command):
          0    done; receive and demo: everything checked verified
          1    failed: a check failed (receive, demo: FAILED), or the command could not finish
               (key store missing, corrupt or of another Key Domain; a socket, peer or write failed)
          2    bad input: a file given to the command cannot be used (--config; a capture given
               with --input or --plain, or to inspect: missing, not pcap/pcapng, truncated or
               corrupt; --msk-message, --ue-export, --muk-file); one line names the file and the fix
          64   usage: unknown option, missing or malformed value (the usage text follows)
          130  run: a second SIGINT/SIGTERM stopped it without draining
        """
}

/// Every command calls this first: a too-old OpenSSL fails with a message naming the fix.
func checkRuntime() throws {
    do { try OpenSSLRuntime.check() } catch {
        throw ValidationError(error.description)
    }
}

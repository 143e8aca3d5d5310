import ArgumentParser
import Foundation
import Receiver

/// `mbms-gateway inspect`: the security fields of every packet of a capture, no keys needed.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Decode the security fields of a capture: MIKEY headers, key IDs, SP; SRTP/SRTCP MKI, ROC, tag.",
        discussion: """
            One line per frame (or, with --json, one JSON object per line):
              MIKEY (UDP 2269, or any payload that decodes as MIKEY): HDR (data type, V, PRF,
                CSB ID, #CS, CS ID map), EXT Key IDs (Key Domain ID, MSK ID = Key Group/Key
                Number, MTK ID), timestamp, SP parameters by name, KEMAC algorithms.
              SRTP: SSRC, SEQ, PT, MKI (Key Group / Key Number / MTK ID), carried ROC, MAC. The
                tag length is not in the packet: the layout whose MKI an MTK message of the same
                capture announced wins; otherwise the last 16 octets are shown.
              SRTCP: SSRC, E flag, SRTCP index, MKI, tag.
            Malformed frames and payloads are shown as such; nothing is decrypted.
            """)

    @Argument(help: ArgumentHelp("Capture to decode (pcap or pcapng).", valueName: "file"))
    var file: String

    @Option(name: .long, help: "Decode at most this many frames.")
    var limit: Int?

    @Flag(name: .long, help: "One JSON object per line instead of text.")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1 (got \(limit))") }
    }

    func run() throws {
        let packets: [InspectedPacket]
        let damage: ReceiverInputError?
        do { (packets, damage) = try CaptureInspector.inspectPartially(path: file, limit: limit) } catch {
            throw ReceiveFailure(error.description).exit()
        }
        for p in packets { print(json ? p.jsonLine() : p.line) }
        if let damage { throw ReceiveFailure("\(damage.description) (after frame \(packets.count))").exit() }
    }
}

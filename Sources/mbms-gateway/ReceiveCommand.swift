import ArgumentParser
import CryptoCore
import Foundation
import KeyManagement
import Receiver

/// `mbms-gateway receive`: the UE side over a capture (thin wrapper over `Receiver`).
struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Decrypt and verify a protected capture as a UE would (MIKEY MTK messages, SRTP/SRTCP, TS 33.246 rule checks).",
        discussion: """
            Key material, either:
              --muk HEX --ue-id B-TID [--naf-id FQDN | --config gateway.yaml] --msk-message FILE…
                  (MSK messages written by `mbms-gateway keys deliver --output FILE`), or
              --ue-export FILE.json …  (output of `mbms-gateway keys export-ue`, one per key group).
            Both may be combined.

            Sessions are found in the capture: the destination IP of MIKEY messages (UDP 2269) names a session; UDP flows to that IP carrying RTP version 2 are SRTP, or SRTCP when the second octet is 200…204. MTK messages go through the MGV-F checks (TS 33.246 6.4.6/6.5); repeats of an MTK already held are counted, not errors. SRTP is unprotected with RFC 4771 late join (packets before the first ROC-carrying packet are dropped as roc_unknown, which is not a failure).

            --output writes the plaintext capture: SRTP/SRTCP frames with their plaintext payload (IP/UDP lengths and checksums fixed), MIKEY frames left out, packets that did not decrypt left out, everything else copied.

            --plain INPUT compares, payload by payload, what came out with the plain capture the gateway was given, per flow (destination, RTP or RTCP, SSRC): matched, altered, missing, extra. RTP pairs by sequence number, RTCP by content. Any altered or missing payload fails the run (a packet the gateway altered or dropped still authenticates).

            --objects DIR also recovers FLUTE downloads (TS 33.246 6.6.3): MTKs from application/mikey objects, the DCF-wrapped FDT checked by its signature, every DCF verified and decrypted into DIR.

            --report writes JSON with the derived MTKs and salts IN CLEAR (debugging only; the file is created with mode 0600), per-flow counters and every rule violation with frame number and time: mtk_used_before_announcement, unknown_mki, roc_tag_missing, roc_tag_unexpected, mikey_wrong_port, mikey_wrong_address, srtcp_e_flag_mismatch (the SRTCP E flag against the SRTCP-encryption parameter of the SP); with --objects: fdt_unprotected (an FDT sent as plain XML; --allow-plain-fdt accepts it), content_md5_mismatch (the FDT's Content-MD5 against the object received), mtk_object_after_dcf (a DCF on the channel before the MIKEY object that keys it).

            Exit status: 0 when something was verified, every SRTP/SRTCP packet decrypted, every FLUTE object was recovered, no rule was broken and (--plain) every payload came back unaltered; 1 when not (a packet failed to decrypt, a violation, a MIKEY message rejected for a reason that breaks key delivery, an altered or missing payload, or nothing verified at all); 2 for an input that cannot be used: a capture that is missing, not a capture, truncated or corrupt, or key material that cannot be read (one line naming the file and the fix); 64 for bad options. The same table holds for every command (mbms-gateway --help).
            """)

    @Option(name: .long, help: ArgumentHelp("Protected capture (pcap or pcapng).", valueName: "file"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Write the plaintext capture here (classic pcap).", valueName: "file"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Write the JSON report here (contains MTKs: mode 0600).", valueName: "file"))
    var report: String?

    @Option(name: .long, help: ArgumentHelp("The UE's MUK, hex (from GBA). Visible in process listings: prefer --muk-file.", valueName: "hex"))
    var muk: String?

    @Option(name: .customLong("muk-file"), help: ArgumentHelp("File holding the UE's MUK as hex.", valueName: "file"))
    var mukFile: String?

    @Option(name: .customLong("ue-id"), help: ArgumentHelp("The UE's B-TID (IDr of the MSK messages).", valueName: "B-TID"))
    var ueID: String?

    @Option(name: .customLong("naf-id"), help: ArgumentHelp("NAF-ID (IDi of the MSK messages); default: bmscFQDN of --config.", valueName: "FQDN"))
    var nafID: String?

    @Option(name: .long, help: ArgumentHelp("Gateway configuration (YAML), for the NAF-ID.", valueName: "file"))
    var config: String?

    @Option(name: .customLong("msk-message"), parsing: .upToNextOption,
            help: ArgumentHelp("MIKEY MSK message(s) from `keys deliver --output`.", valueName: "file"))
    var mskMessages: [String] = []

    @Option(name: .customLong("ue-export"), help: ArgumentHelp("JSON from `keys export-ue` (repeat for several key groups).", valueName: "file"))
    var ueExports: [String] = []

    @Option(name: .long, help: ArgumentHelp("FLUTE: write the recovered files (DCFs verified and decrypted) under this folder.", valueName: "dir"))
    var objects: String?

    @Option(name: .long, help: ArgumentHelp("The plain capture the gateway was given: compare every RTP/RTCP payload with it, per flow.", valueName: "file"))
    var plain: String?

    @Flag(name: .customLong("allow-plain-fdt"), help: "Accept an FDT sent as plain XML (gateway --plain-fdt) instead of naming it a rule violation (TS 33.246 6.6.3.2 protects the FDT).")
    var allowPlainFDT = false

    @Flag(name: .long, help: "Print only the final OK/FAILED line.")
    var quiet = false

    func validate() throws {
        if mskMessages.isEmpty && ueExports.isEmpty {
            throw ValidationError("no key material: give --muk HEX --ue-id B-TID --naf-id FQDN --msk-message FILE, or --ue-export FILE.json")
        }
        if !mskMessages.isEmpty {
            guard muk != nil || mukFile != nil else { throw ValidationError("--msk-message needs --muk-file FILE or --muk HEX (the UE's MUK)") }
            guard muk == nil || mukFile == nil else { throw ValidationError("give either --muk or --muk-file, not both") }
            guard ueID != nil else { throw ValidationError("--msk-message needs --ue-id B-TID (the IDr the MSK message names)") }
            guard nafID != nil || config != nil else {
                throw ValidationError("--msk-message needs --naf-id FQDN, or --config gateway.yaml to read bmscFQDN")
            }
        }
    }

    func run() throws {
        try checkRuntime()
        do { try receive() } catch let e as ReceiveFailure { throw e.exit() }
    }

    func receive() throws {
        let keys = try loadKeys()
        if let plain, !FileManager.default.isReadableFile(atPath: plain) {
            throw ReceiveFailure("\(plain): cannot read the plain capture; give the capture the gateway was given with --plain")
        }
        // --plain compares the plaintext output, so there is one: --output, or a file of our own.
        let temporaryOutput = plain != nil && output == nil
            ? FileManager.default.temporaryDirectory.appendingPathComponent("mbms-receive-\(getpid())-\(UUID().uuidString).pcap").path : nil
        defer { if let temporaryOutput { try? FileManager.default.removeItem(atPath: temporaryOutput) } }
        let result: ReceiveReport
        do {
            result = try CaptureReceiver.run(inputPath: input, outputPath: output ?? temporaryOutput, keys: keys)
        } catch {
            throw ReceiveFailure(error.description)
        }
        // FLUTE sessions: a second pass with the same key material (ReceiveObjects.swift).
        let download = try objects.map { dir throws -> DownloadReceiveReport in try receiveObjects(input: input, keys: keys, directory: dir) }
        var comparison: PlainComparison? = nil
        if let plain, let received = output ?? temporaryOutput {
            do { comparison = try PlainComparison.compare(plain: plain, received: received, protectedFlows: result.flows) } catch {
                throw ReceiveFailure(error.description)
            }
        }
        if let report {
            do { try writeFile(report, Array(try combinedReportJSON(result, download, comparison).utf8) + [0x0A]) } catch {
                throw ReceiveFailure("\(report): cannot write the report (\(error)); choose a writable --report path")
            }
        }
        // Nothing checked is not a pass: a capture with no packet decrypted and no object
        // recovered fails, whatever else it holds (issue 19 finding 10).
        let verified = result.totals.srtpOK + result.totals.srtcpOK + (download?.recovered ?? 0)
        let ok = result.ok && (download?.ok ?? true) && (comparison?.ok ?? true) && verified > 0
        if quiet {
            print(ok ? "OK" : "FAILED")
        } else {
            print(result.summary())
            if let download { print(download.summary()) }
            if let comparison { print(comparison.summary()) }
        }
        if verified == 0 {
            FileHandle.standardError.write(Data("receive: nothing was verified: no SRTP/SRTCP packet decrypted and no FLUTE object recovered; check --input (a protected capture) and the key material (--msk-message / --ue-export), or add --objects DIR for a download session\n".utf8))
        }
        // A damaged capture is bad input, as in every command (exit status 2), after the report
        // of the frames before the damage.
        if let damage = result.inputError {
            throw ReceiveFailure("\(input): the capture is damaged (\(damage)); the frames before the damage were checked; give an undamaged capture with --input")
        }
        if !ok { throw ExitCode.failure }
    }

    func loadKeys() throws -> UEKeyState {
        var state: UEKeyState
        let muk: String?
        do { muk = try SecretInput.mukHex(self.muk, file: mukFile) } catch { throw ReceiveFailure("\(error)") }
        if let muk {
            let secret: SecretBytes
            do { secret = try SecretInput.muk(muk) } catch { throw ReceiveFailure("\(error)") }
            var naf = nafID
            if naf == nil, let config {
                do { naf = try GatewayConfiguration.load(path: config).bmscFQDN } catch {
                    throw ReceiveFailure("\(error)")
                }
            }
            state = UEKeyState(muk: secret, nafID: naf ?? "", bTID: ueID ?? "")
        } else {
            state = UEKeyState()
        }
        for file in mskMessages {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ReceiveFailure("\(file): cannot read the MSK message; check the path (write it with `mbms-gateway keys deliver --output FILE`)")
            }
            do { try state.loadMSKMessage(Array(data), source: file) } catch { throw ReceiveFailure(error.description) }
        }
        for file in ueExports {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ReceiveFailure("\(file): cannot read the export; check the path (write it with `mbms-gateway keys export-ue --key-group N > FILE.json`)")
            }
            do { _ = try state.loadUEExport(data, source: file) } catch { throw ReceiveFailure(error.description) }
        }
        return state
    }
}

/// A one-line error naming the file and the fix; printed to stderr, exit status 2
/// (`ExitStatus.badInput`).
struct ReceiveFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }

    func exit() -> ExitCode {
        FileHandle.standardError.write(Data("Error: \(description)\n".utf8))
        return ExitCode(ExitStatus.badInput.rawValue)
    }
}

import ArgumentParser
import Foundation
import Gateway
import KeyManagement
import PacketIO

/// `mbms-gateway replay`: pcap in, protected pcap out, deterministic.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Protect a capture: RTP/RTCP and FLUTE in (pcap/pcapng); SRTP/SRTCP, MIKEY and DCF-protected FLUTE out (pcap).",
        discussion: """
            The capture's own timestamps are the clock: every packet is protected with the MTK the key schedule has in force at its time (MKI = MSK ID || MTK ID), and MIKEY MTK messages for each session go to its destination address on UDP 2269, every `repeat` and `announceLead` before each MTK switch (and `announceLead` before the session's first packet), for as long as the session's stream lasts: a message due at time T goes out while packets of the session with times T or later are still to come. Packets are matched to sessions by destination address and port (RTCP: port + 1 or `rtcpDestination`); other traffic passes through untouched unless --drop-unmatched.

            FLUTE sessions (kind: flute): every complete object is wrapped in an OMA DRM v2 DCF (AES-128-CBC with keys from the MTK, `obki` naming it, `odfs` HMAC-SHA1) and sent on the channel again (FLUTE v1), after a new FDT Instance (itself a signed, NULL-encrypted DCF unless --plain-fdt) and the MIKEY MTK message object (application/mikey).

            A classic pcap capture in which every session starts within its first 16 MiB is read once: the sessions' starts are found first, and where each stream ends is looked up ahead in the file as replay goes. Otherwise (pcapng, or a session that starts later or never) a first pass reads the whole capture. A run that fails (a damaged capture, say) removes its partial output.

            Key state follows the wall clock, never a capture's timestamps. The key store must exist (`mbms-gateway keys init --config F`); replay reads its MSKs and never moves its high-water mark, retires an MSK or deletes a secret because of a packet's time. MSKs the capture needs beyond the store are made in memory and forgotten at the end (replay names them: receivers cannot get them) unless --commit-keys adds them to the store — for a capture protected ahead of its broadcast, whose receivers get their MSKs from the store. A capture older than the store's MSKs cannot be protected with them: re-time it with --start-time, or use a store made with `keys init --at <capture time>`.

            The capture's clock: it starts at the median time of the first frames and moves forward with the capture; a frame more than --time-jump-limit seconds behind or ahead of it (t = 0 in a capture of today, the year 2100) is passed through untouched (dropped with --drop-unmatched) and counted as implausible_timestamp, and its time is used for nothing — no key, no MIKEY message, no FLUTE pacing. A capture with a real pause longer than the limit needs a larger limit.

            Every MTK's packet indices (RTP ROC, SRTCP index) come from blocks this run reserves in the key store first (reservations are written even when keys are not), so no two runs — nor a replay and a live `run` on the same store — ever encrypt two packets with one keystream. The first replay on a fresh store and every --key-store-readonly replay give the same bytes for the same input and --start-time; a later replay on a used store gets higher ROCs and SRTCP indices (receivers follow them: RFC 4771).

            Example:
              mbms-gateway keys init --config gateway.yaml
              mbms-gateway replay --config gateway.yaml --input plain.pcap --output protected.pcap
            """)

    @Option(name: .long, help: "Gateway configuration (YAML).")
    var config: String

    @Option(name: .long, help: "Input capture (pcap or pcapng).")
    var input: String

    @Option(name: .long, help: "Output capture (classic pcap).")
    var output: String

    @Flag(name: .long, help: "Drop traffic that matches no session instead of passing it through.")
    var dropUnmatched = false

    @Option(name: .long, help: "UDP checksum of rewritten datagrams: recompute, or zero (IPv4 only; IPv6 always recomputes).")
    var udpChecksum: String = "recompute"

    @OptionGroup(title: "FLUTE channels (download protection)") var flute: FLUTEFlags

    @Option(name: .long, help: ArgumentHelp("Re-time the capture to start at this time (RFC 3339, e.g. 2026-11-23T12:00:00Z); frames keep their spacing. Default: the capture's own timestamps.", valueName: "time"))
    var startTime: String?

    @Option(name: .long, help: "Also write the summary as JSON to this file.")
    var summaryJSON: String?

    @Flag(name: .long, help: "Add the MSKs the capture needs beyond the key store to it (nothing else: no high-water mark, no purge), so receivers can be given them (`keys deliver`, `keys export-ue`). Default: they are made in memory and forgotten.")
    var commitKeys = false

    @Option(name: .long, help: ArgumentHelp("A frame more than this many seconds behind or ahead of the capture's running clock is implausible: passed through (dropped with --drop-unmatched), counted, never used for keys or timing. 1 to 2592000 (30 days).", valueName: "seconds"))
    var timeJumpLimit: Int64 = CaptureClock.defaultBoundSeconds

    @Flag(name: .long, help: "Read the key store, write nothing to it: MSKs the capture needs beyond the store's are made in memory, and every MTK's packet indices start at 0, so the same input gives the same bytes on every run. The output then shares keystreams with anything else protected from this store under the same MTKs (a live `run`): use it for tests, never on the air.")
    var keyStoreReadonly = false

    @Flag(name: .long, help: "No progress bar even on a terminal.")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("Threads. 1: everything on one thread. 2 to 4: each thread reads, protects (with MIKEY and FLUTE) and writes every second (third, fourth) batch of frames, taking turns in capture order through lock-free rings for the steps that need one thread at a time (reading, flows and keys, writing); the output is the same bytes either way. More threads than CPUs only wait for one another. Default: one per CPU, up to 4.", valueName: "1-4"))
    var threads: Int = ReplayJob.defaultThreads

    func validate() throws {
        guard UDPFrameEditor.ChecksumPolicy(rawValue: udpChecksum) != nil else {
            throw ValidationError("--udp-checksum must be recompute or zero (got \(udpChecksum))")
        }
        guard (1...ReplayJob.maximumThreads).contains(threads) else { throw ValidationError("--threads must be 1 to \(ReplayJob.maximumThreads) (got \(threads))") }
        guard input != output else { throw ValidationError("--output must differ from --input") }
        guard (1...2_592_000).contains(timeJumpLimit) else { throw ValidationError("--time-jump-limit must be 1 to 2592000 seconds (got \(timeJumpLimit))") }
        guard !(commitKeys && keyStoreReadonly) else { throw ValidationError("--commit-keys and --key-store-readonly contradict each other: choose one") }
        if let s = startTime, ISO8601DateFormatter().date(from: s) == nil {
            throw ValidationError("--start-time \(s) is not an RFC 3339 time (e.g. 2026-11-23T12:00:00Z)")
        }

    }

    func run() throws {
        try checkRuntime()
        let configuration = try GatewayConfiguration.load(path: config)
        let sessions = try StreamingSession.sessions(of: configuration)
        let downloads = try DownloadSession.sessions(of: configuration)
        guard !sessions.isEmpty || !downloads.isEmpty else { throw GatewaySetupError.noSessions(file: config) }
        let manager: KeyManager
        do {
            manager = try KeyManager.openSQLiteFromProcessEnvironment(configuration: configuration, create: false)
        } catch {
            // A run-time failure, as in `run`: the message and exit status 1, no usage text.
            throw RunFailure.keyStore(error, config: config)
        }
        // Key state never moves because of a capture's time (`KeyStatePolicy.extendOnly`): MSKs
        // missing for the capture go to an in-memory overlay unless --commit-keys.
        let keySource: KeySource
        let overlay: KeyStoreOverlay?
        do {
            if keyStoreReadonly {
                overlay = try KeyStoreOverlay(over: manager.store)
                keySource = try KeySource(manager: KeyManager(configuration: configuration, store: overlay!),
                                          senderIndices: .unreserved, keyState: .extendOnly)
                FileHandle.standardError.write(Data("replay: --key-store-readonly: nothing is written to \(configuration.keyStore.path); packet indices start at 0 under every MTK, so this output shares keystreams with any other traffic protected from this store — keep it off the air\n".utf8))
            } else if commitKeys {
                overlay = nil
                keySource = try KeySource(manager: manager, keyState: .extendOnly)
            } else {
                overlay = try KeyStoreOverlay(over: manager.store, reservesInBase: true)
                keySource = try KeySource(manager: KeyManager(configuration: configuration, store: overlay!), keyState: .extendOnly)
            }
        } catch {
            throw RunFailure.keyStore(error, config: config)
        }
        var options = ReplayJob.Options(input: input, output: output)
        options.dropUnmatched = dropUnmatched
        options.threads = threads
        options.checksum = UDPFrameEditor.ChecksumPolicy(rawValue: udpChecksum) ?? .recompute
        if let s = startTime, let d = ISO8601DateFormatter().date(from: s) {
            options.startNanoseconds = UInt64(max(0, d.timeIntervalSince1970)) * 1_000_000_000
        }
        options.download = flute.options
        options.timeJumpLimitSeconds = timeJumpLimit
        let job = ReplayJob(sessions: sessions, downloads: downloads, keySource: keySource, options: options)
        let bar = ProgressBar(enabled: !quiet && isatty(2) != 0, label: "replay")
        let report: ReplayJob.Report
        do {
            report = try job.run { bar.update(fraction: $0.fractionRead, frames: $0.frames) }
        } catch let e as KeyScheduleError {
            bar.finish()
            throw ReplayFailure.keys(e, store: configuration.keyStore.path)
        }
        bar.finish()
        print(SummaryTable.render(report))
        if let n = report.statistics.passedThrough["implausible_timestamp"] ?? report.statistics.dropped["implausible_timestamp"] {
            FileHandle.standardError.write(Data("replay: warning: \(n) frame(s) with implausible timestamps (more than \(timeJumpLimit) s from the capture's clock) were \(dropUnmatched ? "dropped" : "passed through unprotected"); see --time-jump-limit\n".utf8))
        }
        if let overlay, !keyStoreReadonly, case let made = try overlay.mskIDsMadeInMemory(), !made.isEmpty {
            FileHandle.standardError.write(Data("replay: MSK \(made.map(\.hex).joined(separator: ", ")) made in memory for the capture's times and not added to \(configuration.keyStore.path): receivers cannot be given \(made.count == 1 ? "it" : "them"); replay with --commit-keys to add them\n".utf8))
        } else if keyStoreReadonly, let overlay, case let made = try overlay.mskIDsMadeInMemory(), !made.isEmpty {
            FileHandle.standardError.write(Data("replay: MSK \(made.map(\.hex).joined(separator: ", ")) made in memory (--key-store-readonly)\n".utf8))
        }
        if let path = summaryJSON {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: path))
        }
    }
}

/// `replay`'s key failures, with the fix a replay has (a capture is not this host's clock: NTP
/// is not the answer to a capture older than the store).
enum ReplayFailure: Error, CustomStringConvertible {
    case keys(KeyScheduleError, store: String)

    var description: String {
        switch self {
        case let .keys(.schedule(session, t, underlying), store):
            let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(t)))
            let older = underlying.contains("before") || underlying.contains("retired") || underlying.contains("starts at")
            if older {
                return "session \(session): the capture's time \(when) is older than the MSKs of key store \(store) (\(underlying.split(separator: ";").first ?? "")); fix: re-time the capture with --start-time (e.g. --start-time \(ISO8601DateFormatter().string(from: Date()))), or use a key store made for its time: mbms-gateway keys init --config FILE --at \(when)"
            }
            return "session \(session): no key material at \(when) (\(underlying))"
        }
    }
}

/// FLUTE output options shared by `replay` and `run`.
struct FLUTEFlags: ParsableArguments {
    @Flag(name: .long, help: "Send the FDT unwrapped (for receivers that cannot read a DCF-wrapped FDT).")
    var plainFDT = false

    @Option(name: .long, help: "Output rate per FLUTE channel in bit/s.")
    var fluteRate: Double = 20_000_000

    @Option(name: .long, help: "FDT Expires = send time + this many seconds.")
    var fdtLifetime: Int64 = 3600

    @Option(name: .long, help: "FLUTE version emitted: 1 (RFC 3926, as TS 26.346 uses) or 2 (RFC 6726).")
    var fluteVersion: Int = 1

    func validate() throws {
        guard fluteVersion == 1 || fluteVersion == 2 else { throw ValidationError("--flute-version must be 1 or 2") }
        guard fluteRate > 0 else { throw ValidationError("--flute-rate must be positive (bit/s)") }
        guard fdtLifetime > 0 else { throw ValidationError("--fdt-lifetime must be positive (seconds)") }
    }

    var options: DownloadEngine.Options {
        var o = DownloadEngine.Options()
        o.plainFDT = plainFDT
        o.bitsPerSecond = fluteRate
        o.fdtLifetime = fdtLifetime
        o.fluteVersion = fluteVersion == 2 ? .v2 : .v1
        return o
    }
}

/// A one-line progress bar on stderr, only on a terminal.
final class ProgressBar {
    let enabled: Bool
    let label: String
    var lastPercent = -1
    init(enabled: Bool, label: String) { self.enabled = enabled; self.label = label }
    /// `fraction`: the share of the input read (0...1); `frames`: frames done so far.
    func update(fraction: Double, frames: Int) {
        guard enabled else { return }
        let percent = Int(min(1, max(0, fraction)) * 100)
        guard percent != lastPercent else { return }
        lastPercent = percent
        let width = 30, filled = width * percent / 100
        let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(percent)%  \(frames) frames"
        FileHandle.standardError.write(Data(line.utf8))
    }
    func finish() { if enabled && lastPercent >= 0 { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// The end-of-run table: per session packets and bytes in/out, MTKs, MIKEY, drops by reason.
enum SummaryTable {
    static func render(_ r: ReplayJob.Report) -> String {
        var out = "replay \(r.input) -> \(r.output)  (\(r.linkType), \(r.statistics.framesIn) frames in, \(r.statistics.framesOut) out, \(String(format: "%.2f", r.seconds)) s)\n"
        // Where the time went: the scan, then each thread of pass 2 (the busiest bounds it).
        out += "scan \(String(format: "%.2f", r.scanSeconds)) s (\(r.scannedWholeCapture ? "the whole capture" : "to every session's first packet")); then CPU per thread: "
            + r.threads.map { "\($0.stages) \(String(format: "%.2f", $0.cpuSeconds)) s (waiting \(String(format: "%.2f", $0.waitSeconds)) s)" }.joined(separator: ", ") + "\n"
        // The steps done in turn, summed over the threads: the longest bounds pass 2 however many
        // CPUs and threads there are.
        let s = r.steps
        out += "steps: read \(String(format: "%.2f", s.read)) s, work \(String(format: "%.2f", s.work)) s, protect \(String(format: "%.2f", s.protect)) s, lay-out \(String(format: "%.2f", s.layOut)) s, write \(String(format: "%.2f", s.write)) s"
            + " (read, work and write are done in turn: pass 2 takes at least \(String(format: "%.2f", r.turnBound)) s on any number of CPUs)\n\n"
        let header = ["session", "RTP", "RTCP", "bytes in", "bytes out", "MTK IDs used", "MIKEY sent", "dropped"]
        var rows: [[String]] = [header]
        for s in r.statistics.sessions {
            let drops = s.drops.isEmpty ? "0" : s.drops.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            rows.append([s.name, "\(s.rtpPackets)", "\(s.rtcpPackets)", "\(s.bytesIn)", "\(s.bytesOut)",
                         s.mtksUsed.isEmpty ? "-" : s.mtksUsed.map(String.init).joined(separator: ","), "\(s.mikeySent)", drops])
        }
        if rows.count > 1 { out += table(rows, left: [0, 5, 7]) }
        if !r.download.isEmpty { out += "\n" + downloadTable(r.download) }
        if !r.statistics.passedThrough.isEmpty {
            out += "\npassed through untouched: " + r.statistics.passedThrough.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        if !r.statistics.dropped.isEmpty {
            out += "dropped frames: " + r.statistics.dropped.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        // Bounded however many SSRCs came (issue 19 finding 11); the JSON summary has every flow.
        out += FlowSummary.lines(rollover: r.rollover.map { ($0.session, $0.ssrc, $0.roc) }, statistics: r.statistics)
        return out
    }

    /// Per FLUTE channel: packets and objects in/out, FDTs, MIKEY objects, MTKs, refusals.
    static func downloadTable(_ stats: [DownloadStatistics]) -> String {
        let dh = ["FLUTE channel", "packets in", "objects in", "bytes in", "objects out", "bytes out", "FDTs", "MIKEY objects", "MTK IDs used", "refused", "no FDT entry"]
        var rows: [[String]] = [dh]
        for d in stats {
            rows.append([d.name, "\(d.packetsIn)", "\(d.objectsIn)", "\(d.objectBytesIn)", "\(d.objectsOut)", "\(d.objectBytesOut)",
                         "\(d.fdtInstancesSent)", "\(d.mikeyObjectsSent)", d.mtksUsed.isEmpty ? "-" : d.mtksUsed.map(String.init).joined(separator: ","),
                         d.rejected.isEmpty ? "0" : d.rejected.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                         "\(d.objectsWithoutFDTEntry)"])
        }
        return table(rows, left: [0, 8, 9])
    }

    static func table(_ rows: [[String]], left: Set<Int>) -> String {
        guard let header = rows.first else { return "" }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = ""
        for (n, row) in rows.enumerated() {
            out += row.enumerated().map { c, v in left.contains(c) ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  ") + "\n"
            if n == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        return out
    }
}

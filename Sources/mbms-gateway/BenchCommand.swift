import ArgumentParser
import CBenchFloor
import CryptoCore
import Foundation

/// `mbms-gateway bench`: what the data plane costs on this machine, every figure from one run.
struct BenchCommand: ParsableCommand {
    static let allCases = ["crypto", "replay", "live", "workers", "reservation", "distribution"]

    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the data plane on this machine: SRTP protect, replay, live relay, workers, allocations per packet.",
        discussion: """
            Every figure comes from this one run (build with -c release for figures
            worth quoting). Throughput: ns/packet, packets/s and Gbit/s of RTP
            payload (headers and SRTP tail not counted). Cases (--cases):

            crypto: SRTP protect on one core, 160 and 1200 B payloads, AES-128-CM +
              HMAC-SHA1-80 + 6-octet MKI. Our single-packet protect; our batch
              protect (32 packets per call, multi-message HMAC-SHA1); Debian's
              libsrtp2 (loaded with dlopen, measured only once it gives our bytes;
              a note instead when libsrtp2.so.1 is absent); the OpenSSL floor
              (AES-128-CTR + HMAC-SHA1 called directly from C, three ways, the
              fastest counts). Same buffer, interleaved rounds, median round.
              Ratios: ours / floor (1.0 = no overhead over plain OpenSSL), batch
              speed-up over single, libsrtp2 / ours (above 1.0: we are faster).
            replay: `replay` end to end on a synthetic capture (2 RTP streams,
              160-1200 B; --packets, default 1000000, --quick 100000) with a fresh
              configuration and key store in /dev/shm (in memory, so the disk is
              not what is measured; else the temporary folder; --workdir to
              choose), against a plain copy of the same capture (CaptureReader ->
              CaptureWriter, no crypto), a read-only pass and the write floor
              (the output's bytes written to a new file in the same folder
              with plain 64 KiB write(2) calls, right after replay's output
              is removed, as before each replay row: what the file system
              allows).
              Replay runs on its default thread count (one per CPU, up to 4),
              and also on 1 (and 3 where the default is fewer). Every row runs
              once per round, 5 interleaved rounds (--quick 1), median counts.
              Ratios: replay / plain copy (what protection adds to pcap I/O);
              replay / crypto stage (batch protect over the same payload mix
              on one core: the stage replay runs; the throughput issue asks
              for >= 0.8); replay / write floor; write floor / crypto stage
              (below 0.8: the folder, not the gateway, bounds replay); the
              bound of the turns (crypto stage over the longest step done in
              turn, read, work or write, summed over the lanes: what replay
              could reach on any number of CPUs as its steps are now).
            live: LiveGateway in process on 127.0.0.1; a sender thread sends RTP
              to its RTP port, a receiver thread counts what comes out; then the
              same recvmmsg/sendmmsg loop without protection. 3 s each in 3
              interleaved rounds of 1 s, median round (--quick: 1 s, one round).
              Ratio: protected / unprotected packets/s (1.0 = protection is free
              at the socket rate).
            workers: 1 vs 2 threads batch-protecting (64 per call, as run's workers
              do), each its own stream with its own
              SRTPSessionKeys.copy(). Ratio: 2 workers / 1 worker (2.0 = perfect
              scaling; bounded by the CPU count printed).
            reservation: reserving a block of packet indices in an SQLite key
              store (the per-MTK RTP ROC and SRTCP index blocks every process
              takes before an MTK's first packet, so no keystream is ever
              reused): ns per reservation in the bench folder and in the
              temporary folder, and what that adds per packet at 1000
              packets/s for 10 s and 1 h MTK periods.
            distribution: the Key Distribution function's MSK push on one core:
              100 000 registered UEs in a key store in the bench folder (--quick
              10 000), one rollover delivery queued per UE; MIKEY MSK messages
              built, sealed under each UE's MUK and committed (the UE's TS
              counter and the delivery state, synchronous = FULL) by
              MSKDistributor.tick (20 000, --quick 2 000), then sent one
              datagram a call to 127.0.0.1; messages/s for each and combined,
              and the same tick on a small store in the temporary folder.
            mallocs (always): heap allocations per packet in the measured loops,
              counted by the executable's own malloc (forwarding to glibc); null
              ("n/a") when that counter is not the malloc in use.

            The header names the CPU and its aes/sha_ni/avx2/vaes flags, the cores,
            OpenSSL, libsrtp2 and the multi-hash implementation
            (MBMS_MULTIHASH=scalar|openssl|shani forces one).

            Examples:
              mbms-gateway bench                  # everything, under a minute
              mbms-gateway bench --quick --json   # small and fast, machine-readable
              mbms-gateway bench --cases crypto,workers
            """)

    @Flag(help: "Print the figures as JSON (same numbers as the table) instead of the table.")
    var json = false

    @Flag(help: "Small and fast (fewer rounds, 100000-packet replay, 1 s live): for tests and smoke runs, not for quoting.")
    var quick = false

    @Option(help: "Packets in the replay capture (2 streams; default 1000000, --quick 100000).")
    var packets: Int?

    @Option(help: "Cases to run, comma-separated: crypto, replay, live, workers, reservation, distribution (default: all).")
    var cases: String = BenchCommand.allCases.joined(separator: ",")

    @Option(help: "Rounds of the crypto case (median taken; default 15, --quick 3).")
    var rounds: Int?

    @Option(help: "Folder for the replay capture and key stores (default: a new folder in /dev/shm when it has room, else in the temporary folder; removed afterwards). A folder given here is kept, with replay/input.pcap, replay/protected.pcap and replay/gateway.yaml for tshark or a `replay` run of your own.")
    var workdir: String?

    var selected: [String] { cases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty } }

    func validate() throws {
        let unknown = selected.filter { !Self.allCases.contains($0) }
        guard unknown.isEmpty, !selected.isEmpty else {
            throw ValidationError("--cases: unknown case \(unknown.joined(separator: ", ")) (use a comma-separated list of \(Self.allCases.joined(separator: ", ")))")
        }
        if let p = packets, !(1_000...20_000_000).contains(p) { throw ValidationError("--packets must be 1000...20000000 (got \(p))") }
        if let r = rounds, !(1...1000).contains(r) { throw ValidationError("--rounds must be 1...1000 (got \(r))") }
    }

    func run() throws {
        try checkRuntime()
        let report = try Self.measure(cases: selected, quick: quick, packets: packets, rounds: rounds, workdir: workdir) { line in
            if !json { FileHandle.standardError.write(Data("bench: \(line)\n".utf8)) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.table(report))
        }
    }

    static func measure(cases: [String], quick: Bool, packets: Int?, rounds: Int?, workdir: String?,
                        progress: (String) -> Void) throws -> BenchReport {
        let (model, flags) = MachineInfo.cpu()
        var why = [CChar](repeating: 0, count: 256)
        let libsrtpOK = bench_libsrtp_open(&why, why.count) == 0
        let libsrtp = libsrtpOK ? String(cString: bench_libsrtp_version())
            : "not measured: " + String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (or see `make bench`: srtp-bench)"
        let machine = BenchReport.Machine(cpu: model, cpuFlags: flags, cores: MachineInfo.cores, openssl: OpenSSLRuntime.versionText,
                                          libsrtp: libsrtp, multiHash: MultiHash.implementation,
                                          batchAES: AESCounterModeBatch.implementationName, mallocCounter: MallocCounter.description)
        let fm = FileManager.default
        // Three captures of ~0.8 KB per packet at most live at once (input, copy or output).
        let parent = BenchFilesystem.defaultParent(bytesNeeded: UInt64(3 * 800 * (packets ?? 1_000_000)))
        let dir = workdir ?? (parent as NSString).appendingPathComponent("mbms-gateway-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? fm.removeItem(atPath: dir) } }
        func sub(_ name: String) throws -> String {
            let p = (dir as NSString).appendingPathComponent(name)
            try fm.createDirectory(atPath: p, withIntermediateDirectories: true)
            return p
        }

        var out: [BenchReport.Case] = []
        var mallocs = BenchReport.Case(name: "mallocs")
        if cases.contains("crypto") {
            progress("crypto: single, batch, libsrtp2, OpenSSL floor at 160 and 1200 B")
            let (c, m) = try CryptoBench.run(rounds: rounds ?? (quick ? 3 : 15), quick: quick, libsrtp: libsrtpOK)
            out.append(c)
            mallocs.rows += m.rows
            mallocs.notes += m.notes
        }
        if cases.contains("replay") {
            let n = packets ?? (quick ? 100_000 : 1_000_000)
            let replayRounds = quick ? 1 : 5
            progress("replay: writing a \(n)-packet capture; plain copy, read, replay and the write floor, \(replayRounds) round(s)")
            let c = try ReplayBench.run(packets: n, directory: try sub("replay"), rounds: replayRounds, keep: workdir != nil)
            out.append(c)
            for r in c.rows where r.mallocsPerPacket != nil { mallocs.rows.append(Self.mallocRow("replay", r)) }
        }
        if cases.contains("live") {
            let seconds = quick ? 1.0 : 3.0
            progress("live: LiveGateway and the copy loop on 127.0.0.1, \(seconds) s each")
            let c = try LiveBench.run(seconds: seconds, directory: try sub("live"))
            out.append(c)
            for r in c.rows where r.mallocsPerPacket != nil { mallocs.rows.append(Self.mallocRow("live (packet thread)", r)) }
        }
        if cases.contains("workers") {
            progress("workers: 1 and 2 threads")
            out.append(try WorkersBench.run(quick: quick))
        }
        if cases.contains("reservation") {
            progress("reservation: index blocks reserved in an SQLite key store")
            out.append(try ReservationBench.run(directory: try sub("reservation"), quick: quick))
        }
        if cases.contains("distribution") {
            progress("distribution: MSK messages built, sealed, committed and sent")
            out.append(try DistributionBench.run(directory: try sub("distribution"), quick: quick, progress: progress))
        }
        if !MallocCounter.isActive { mallocs.notes.append(MallocCounter.description) }
        out.append(mallocs)
        return BenchReport(machine: machine, quick: quick, cases: out)
    }

    static func mallocRow(_ prefix: String, _ r: BenchReport.Row) -> BenchReport.Row {
        var m = r
        m.name = "\(prefix): \(r.name)"
        return m
    }

    static func table(_ r: BenchReport) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        var lines: [String] = []
        let m = r.machine
        lines.append("mbms-gateway bench\(r.quick ? " --quick (small samples: not for quoting)" : "")")
        lines.append("CPU: \(m.cpu) [\(m.cpuFlags.joined(separator: " "))], \(m.cores) core(s)")
        lines.append("\(m.openssl); libsrtp2: \(m.libsrtp); multi-hash: \(m.multiHash); batch AES-CM: \(m.batchAES)")
        lines.append("mallocs: \(m.mallocCounter)")
        for c in r.cases {
            lines.append("")
            lines.append("== \(c.name)")
            if c.name == "mallocs" {
                lines.append(pad("measured loop", 72) + lpad("packets", 10) + lpad("allocations", 13) + lpad("allocs/packet", 15))
                for row in c.rows {
                    let total = row.mallocsPerPacket.map { String(Int(($0 * Double(row.packets)).rounded())) } ?? "n/a"
                    lines.append(pad(row.name + " \(row.payloadBytes) B", 72) + lpad("\(row.packets)", 10) + lpad(total, 13)
                                 + lpad(row.mallocsPerPacket.map { String(format: "%.4f", $0) } ?? "n/a", 15))
                }
            } else {
                lines.append(pad("implementation", 54) + pad("payload", 10) + lpad("packets", 10) + lpad("ns/packet", 11)
                             + lpad("Mpkt/s", 9) + lpad("Gbit/s", 9))
                for row in c.rows {
                    lines.append(pad(row.name, 54) + pad(row.payloadBytes + " B", 10) + lpad("\(row.packets)", 10)
                                 + lpad(String(format: "%.1f", row.nsPerPacket), 11)
                                 + lpad(String(format: "%.3f", row.packetsPerSecond / 1e6), 9)
                                 + lpad(String(format: "%.2f", row.gbitPerSecond), 9))
                }
            }
            for ratio in c.ratios {
                lines.append("  " + pad(ratio.name, 44) + lpad(String(format: "%.3f", ratio.value), 8) + "   " + ratio.meaning)
            }
            for note in c.notes { lines.append("  note: " + note) }
        }
        return lines.joined(separator: "\n")
    }
}

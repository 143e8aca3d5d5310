import CryptoCore
import Foundation
import KeyManagement
import KeyServer
import PacketIO

/// `bench --cases distribution`: the Key Distribution function's MSK push (issue 18, DESIGN.md
/// §11) — MIKEY MSK messages built, sealed under each UE's MUK and sent per second on one core,
/// with 100 000 registered UEs in the store (--quick: 10 000). `MSKDistributor.tick` reads the
/// due deliveries, each UE's MUK (unsealed with the KEK), builds the message (MUK-derived
/// keys, AES-CM KEMAC + HMAC-SHA-1-160, TS 33.246 6.4.5) and commits, per message, the UE's TS counter and the
/// delivery's new state (two SQLite write transactions, synchronous = FULL) before it returns
/// them; the UDP send is what `MSKDistributionService` does with them (one datagram per call).
enum DistributionBench {
    static func run(directory: String, quick: Bool, progress: (String) -> Void) throws -> BenchReport.Case {
        var c = BenchReport.Case(name: "MSK distribution")
        let ues = quick ? 10_000 : 100_000
        let messages = quick ? 2_000 : 20_000
        let now = Int64(Date().timeIntervalSince1970)

        progress("distribution: \(ues) registered UEs in a key store in \(directory) (setup, not measured)")
        let setup = benchClock()
        let main = try Fixture(folder: directory, ues: ues, now: now)
        let setupSeconds = Double(benchClock() - setup) / 1e9

        // Build + seal + commit: the distributor's tick, in slices of 1000 (its default push rate a second).
        progress("distribution: \(messages) MSK messages through MSKDistributor.tick")
        let (sent, buildNanoseconds) = try main.tick(count: messages, now: now)
        let bytes = sent.map(\.bytes.count).reduce(0, +)
        let meanSize = sent.isEmpty ? 0 : bytes / sent.count
        func row(_ name: String, _ n: Int, _ ns: UInt64) -> BenchReport.Row {
            let per = n > 0 ? Double(ns) / Double(n) : 0
            let rate = per > 0 ? 1e9 / per : 0
            return BenchReport.Row(name: name, payloadBytes: "\(meanSize)", packets: n, nsPerPacket: per, packetsPerSecond: rate,
                                   gbitPerSecond: rate * Double(meanSize) * 8 / 1e9)
        }
        c.rows.append(row("build + seal + commit (tick), \(ues) UEs", sent.count, buildNanoseconds))

        // Send: one datagram per call to a sink socket on 127.0.0.1 that nobody reads.
        progress("distribution: UDP send of the \(sent.count) datagrams to 127.0.0.1")
        let sendNanoseconds = try send(sent)
        c.rows.append(row("UDP send, one datagram a call (127.0.0.1)", sent.count, sendNanoseconds))
        c.rows.append(row("build + seal + commit + send", sent.count, buildNanoseconds + sendNanoseconds))

        // The same on a small store in the temporary folder: the commits reach a disk there.
        let tmp = FileManager.default.temporaryDirectory.path
        var diskPer: Double?
        let benchOnTmpfs = isTmpfs(directory)
        if benchOnTmpfs, !isTmpfs(tmp) {
            let n = quick ? 200 : 2_000
            let folder = (tmp as NSString).appendingPathComponent("mbms-distribution-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            progress("distribution: \(n) messages on a \(n)-UE store in \(tmp)")
            let disk = try Fixture(folder: folder, ues: n, now: now)
            let (diskSent, diskNanoseconds) = try disk.tick(count: n, now: now)
            c.rows.append(row("build+seal+commit, \(n) UEs, temporary folder", diskSent.count, diskNanoseconds))
            diskPer = diskSent.isEmpty ? nil : Double(diskNanoseconds) / Double(diskSent.count)
        }

        let buildPer = sent.isEmpty ? 0 : Double(buildNanoseconds) / Double(sent.count)
        let sendPer = sent.isEmpty ? 0 : Double(sendNanoseconds) / Double(sent.count)
        // The table's Mpkt/s column rounds these rates away: messages/s as ratios.
        for (name, per) in [("build+seal+commit", buildPer), ("send", sendPer), ("combined", buildPer + sendPer)] where per > 0 {
            c.ratios.append(BenchReport.Ratio(name: "MSK messages/s, \(name)", value: 1e9 / per,
                                              meaning: "one core, \(ues) registered UEs in the store"))
        }
        if let d = diskPer, d > 0 {
            c.ratios.append(BenchReport.Ratio(name: "MSK messages/s, build+seal+commit on disk", value: 1e9 / d,
                                              meaning: "the same tick on a store in \(tmp)"))
        }
        c.ratios.append(BenchReport.Ratio(name: "ms per MSK message (build+seal+commit)", value: buildPer / 1e6,
                                          meaning: "one message, its TS and delivery state committed (\(benchOnTmpfs ? "bench folder, tmpfs" : "bench folder"))"))
        c.ratios.append(BenchReport.Ratio(name: "ms per MSK message (send)", value: sendPer / 1e6, meaning: "one sendmsg to 127.0.0.1"))
        if let d = diskPer {
            c.ratios.append(BenchReport.Ratio(name: "ms per MSK message, store on disk", value: d / 1e6,
                                              meaning: "the same tick on a store in \(tmp) (commits reach the disk)"))
        }
        c.ratios.append(BenchReport.Ratio(name: "s for a rollover wave to \(ues) UEs", value: Double(ues) * (buildPer + sendPer) / 1e9,
                                          meaning: "build+seal+commit+send of one MSK message to every registered UE on one core (store in the bench folder)"))
        c.notes.append("Rows: one MIKEY MSK message per row unit (packets = messages, ns/packet = ns per message, payload = mean message size). Setup (the \(ues) UEs' MUKs and registrations written in chunks of 5 000 changes, one rollover delivery queued per UE by MSKDistributor.scheduleRollovers) is not measured: \(String(format: "%.1f", setupSeconds)) s.")
        c.notes.append("Each message: the due delivery row read, the UE's MUK read and unsealed, encryption/authentication/salt keys derived from the MUK (RFC 3830 PRF), the KEMAC encrypted with AES-CM-128 and the message's HMAC-SHA-1-160 (TS 33.246 6.4.5); then two SQLite write transactions with synchronous = FULL: the UE's TS counter (committed before the value is used, DESIGN.md §7) and the delivery's state (awaiting verification, next retransmission).")
        c.notes.append("Store: \(directory)\(benchOnTmpfs ? " (tmpfs: fsync costs nothing there; the temporary-folder row shows a store whose commits reach a disk)" : ""). The service sends at most keyServer.pushRate (default 1000) messages a second, spread over mskPushLead.")
        return c
    }

    /// Whether `path` is on a tmpfs (in memory: fsync costs nothing there).
    static func isTmpfs(_ path: String) -> Bool {
        // The mount whose point is the longest prefix of the path (/proc/mounts: device, mount point, type …).
        let full = (path as NSString).resolvingSymlinksInPath
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return full.hasPrefix("/dev/shm") }
        var best: (point: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3 else { continue }
            let point = String(f[1])
            let inside = point == "/" || full == point || full.hasPrefix(point + "/")
            if inside, point.count > (best?.point.count ?? -1) { best = (point, String(f[2])) }
        }
        return best?.type == "tmpfs"
    }

    /// A key store with `ues` registered UEs and one due rollover delivery each.
    struct Fixture {
        let store: SQLiteKeyStore
        let distributor: MSKDistributor

        init(folder: String, ues: Int, now: Int64) throws {
            let yaml = """
                keyDomain: { mcc: "001", mnc: "01" }
                bmscFQDN: bmsc.example.org
                keyStore: { path: distribution.sqlite }
                schedule:
                  epoch: 2026-01-01T00:00:00Z
                  mtk: { period: 10s, announceLead: 2s, repeat: 1s }
                  msk: { period: 1d }
                sessions:
                  - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1, protection: { auth: rccm2, rocRate: 1 } }
                keyServer: { listen: 127.0.0.1:18080 }
                userServices:
                  - { id: "urn:svc:tv", sessions: [video] }
                """
            let configPath = (folder as NSString).appendingPathComponent("distribution.yaml")
            try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
            let configuration = try GatewayConfiguration.load(path: configPath)
            store = try SQLiteKeyStore.openOrCreate(path: configuration.keyStore.path, kek: try SecretBytes.random(count: 32))
            let manager = KeyManager(configuration: configuration, store: store)
            try manager.initialize(at: Date(timeIntervalSince1970: TimeInterval(now)))
            var changes: [KeyServerStoreChange] = []
            changes.reserveCapacity(5_000)
            for k in 0..<ues {
                let btid = "ue\(k)@bsf.example.org"
                changes.append(.putUserKey(UserKeyRow(btid: btid, impi: "impi-\(k)", location: "me", muk: try SecretBytes.random(count: 32),
                                                      expiresAt: now + 86_400)))
                changes.append(.register(impi: "impi-\(k)", btid: btid, ueAddress: "127.0.0.1", serviceIDs: ["urn:svc:tv"], at: now))
                if changes.count >= 5_000 {
                    try store.apply(changes)
                    changes.removeAll(keepingCapacity: true)
                }
            }
            if !changes.isEmpty { try store.apply(changes) }
            // The next MSK (a day away) is within the lead: one rollover delivery per UE, all due now.
            distributor = MSKDistributor(manager: manager, keyStore: store, queue: store,
                                         policy: MSKDistributionPolicy(verify: true, pushRate: 1_000_000, pushLead: 2 * 86_400))
            let queued = try distributor.scheduleRollovers(at: now)
            guard queued == ues else { throw BenchDistributionError.setup("queued \(queued) rollover deliveries for \(ues) UEs") }
        }

        /// `count` messages through `tick`, 1000 per call; the time of the calls only.
        func tick(count: Int, now: Int64) throws -> ([OutgoingMIKEY], UInt64) {
            var out: [OutgoingMIKEY] = []
            out.reserveCapacity(count)
            var elapsed: UInt64 = 0
            while out.count < count {
                let t0 = benchClock()
                let batch = try distributor.tick(now: now, limit: min(1_000, count - out.count))
                elapsed += benchClock() - t0
                guard !batch.isEmpty else { break }
                out += batch
            }
            guard out.count == count else { throw BenchDistributionError.setup("tick returned \(out.count) of \(count) messages (\(distributor.statistics.gaveUp))") }
            return (out, elapsed)
        }
    }

    /// What `MSKDistributionService.send` does per message: one `sendmsg` of one datagram.
    static func send(_ messages: [OutgoingMIKEY]) throws -> UInt64 {
        let loopback = TransportAddress(.v4(0x7F00_0001), 0)
        let sink = try UDPBatchSocket(bind: loopback, options: UDPSocketOptions(), maxBatch: 16)
        let sender = try UDPBatchSocket(bind: loopback, options: UDPSocketOptions(), maxBatch: 16)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 1)
        defer { slots.deallocate() }
        // `localAddress` is the address asked for (port 0); the kernel's port is `boundPort`.
        let destination = TransportAddress(.v4(0x7F00_0001), sink.boundPort)
        var copies = messages.map(\.bytes)
        var failed = 0
        var lastError: String?
        let t0 = benchClock()
        for i in copies.indices {
            let ok: Bool = copies[i].withUnsafeMutableBytes { b in
                guard let base = b.baseAddress else { return false }
                slots[0] = DatagramSlot(bytes: base, capacity: b.count)
                slots[0].length = b.count
                slots[0].peer = destination
                do { return try sender.send(slots) == 1 } catch { lastError = "\(error)"; return false }
            }
            if !ok { failed += 1 }
        }
        let elapsed = benchClock() - t0
        guard failed == 0 else { throw BenchDistributionError.setup("\(failed) of \(messages.count) datagrams not sent (\(lastError ?? "?"))") }
        return elapsed
    }
}

enum BenchDistributionError: Error, CustomStringConvertible {
    case setup(String)
    var description: String {
        switch self { case .setup(let s): return "bench distribution: \(s)" }
    }
}

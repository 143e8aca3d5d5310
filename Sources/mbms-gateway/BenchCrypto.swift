import CBenchFloor
import CMallocCounter
import CryptoCore
import Foundation
import SRTP
#if canImport(Glibc)
import Glibc
#endif

/// Heap allocation counting (CMallocCounter: the executable's own malloc, forwarding to glibc).
enum MallocCounter {
    /// Whether the interposed malloc is the one Swift's runtime calls: a Swift allocation must move the counter.
    static let isActive: Bool = {
        let before = mbms_malloc_thread_count()
        let probe = UnsafeMutableRawPointer.allocate(byteCount: 100, alignment: 8)   // swift_slowAlloc → malloc
        probe.deallocate()
        let array = [Int](repeating: 7, count: 1000)   // a Swift heap object
        return mbms_malloc_thread_count() > before && array.count == 1000
    }()

    static var description: String {
        isActive ? "interposed malloc/calloc/realloc/posix_memalign/aligned_alloc (executable's own, forwarding to glibc __libc_*); per-thread counts, process-wide for replay (all its threads)"
                 : "not active (the executable's malloc is not the one in use): allocation figures are omitted"
    }

    /// Allocations on this thread so far (nil when counting is not active).
    static var thread: UInt64? { isActive ? mbms_malloc_thread_count() : nil }

    /// Allocations of every thread so far: for loops that run on several threads (the replay
    /// pipeline), measured while nothing else runs.
    static var process: UInt64? { isActive ? mbms_malloc_count() : nil }
}

/// Packet buffers with an RTP header (SSRC fixed, SEQ set per use) and room for the SRTP tail.
final class BenchPackets {
    static let capacity = 2048
    let count: Int
    let base: UnsafeMutableRawPointer
    let lengths: [Int]
    let payloadOctets: Int

    /// `sizes`: RTP payload sizes, one buffer each.
    init(sizes: [Int], ssrc: UInt32) {
        count = sizes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity * max(1, sizes.count), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0x5A, count: Self.capacity * max(1, sizes.count))
        for i in 0..<sizes.count {
            let b = base + i * Self.capacity
            b.storeBytes(of: UInt8(0x80), toByteOffset: 0, as: UInt8.self)
            b.storeBytes(of: UInt8(96), toByteOffset: 1, as: UInt8.self)
            b.storeBytes(of: UInt32(0x000A_0000).bigEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
        }
        lengths = sizes.map { 12 + $0 }
        payloadOctets = sizes.reduce(0, +)
    }

    @inline(__always) func buffer(_ i: Int) -> UnsafeMutableRawPointer { base + i * Self.capacity }

    @inline(__always) func setSequence(_ i: Int, _ seq: Int) {
        buffer(i).storeBytes(of: UInt16(truncatingIfNeeded: seq).bigEndian, toByteOffset: 2, as: UInt16.self)
    }

    deinit { base.deallocate() }

    /// The replay capture's payload mix: sizes spread evenly over 160...1200 (mean 680), in a
    /// scrambled order (position i holds the (37 i mod n)-th size) as the capture's random
    /// sizes come — not ascending, which would hand the multi-message HMAC neighbours of
    /// nearly equal length for free.
    static func mixSizes(_ n: Int) -> [Int] {
        let m = max(1, n)
        return (0..<n).map { 160 + ((($0 * 37) % m) * 1041 / m) % 1041 }
    }
}

/// Keys and policy shared by the crypto measurements: AES-128-CM, HMAC-SHA1-80, 6-octet MKI.
struct BenchKeys {
    static let masterKey: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }
    static let masterSalt: [UInt8] = (0..<14).map { UInt8(0xB0 + $0) }
    static let mki = MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 5)
    static let ssrc: UInt32 = 0x1234_5678

    let protector: SRTPProtector
    let keys: SRTPSessionKeys
    // Session keys derived the RFC 3711 way, for the floor.
    let ke: [UInt8], ka: [UInt8], ks: [UInt8]

    init() throws {
        protector = try SRTPProtector(policy: SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80))
        keys = try SRTPSessionKeys(masterKey: Self.masterKey, masterSalt: Self.masterSalt, mki: Self.mki, cipher: .aesCM128)
        let prf = try AESCounterMode(key: Self.masterKey)
        ke = try SRTPKeyDerivation.derive(prf: prf, masterSalt: Self.masterSalt, label: .srtpEncryption, length: 16)
        ka = try SRTPKeyDerivation.derive(prf: prf, masterSalt: Self.masterSalt, label: .srtpAuthentication, length: 20)
        ks = try SRTPKeyDerivation.derive(prf: prf, masterSalt: Self.masterSalt, label: .srtpSalt, length: 14)
    }
}

@inline(never)
func benchClock() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s[s.count / 2]
}

/// A measured implementation: `round()` protects `packets` packets and returns (seconds, allocations or nil).
struct BenchRunner {
    var name: String
    var packets: Int
    var round: () -> (seconds: Double, mallocs: UInt64?)
}

/// Case a: the crypto stage at 160 and 1200 octets, and e: its allocations per packet.
enum CryptoBench {
    static func run(rounds: Int, quick: Bool, libsrtp: Bool) throws -> (BenchReport.Case, BenchReport.Case) {
        var crypto = BenchReport.Case(name: "crypto")
        var mallocs = BenchReport.Case(name: "mallocs")
        let k = try BenchKeys()
        crypto.notes.append("AES-128-CM + HMAC-SHA1-80 + 6-octet MKI, one core; libsrtp2 is measured only after it produced the same SRTP bytes as ours for the same packet; every implementation protects the same buffer in place (SEQ advancing); rounds alternate between implementations; median of \(rounds) rounds.")
        for payload in [160, 1200] {
            let packets = (payload <= 200 ? 40_000 : 12_000) / (quick ? 4 : 1)
            let single = BenchPackets(sizes: [payload], ssrc: BenchKeys.ssrc)
            var runners: [BenchRunner] = []

            // Ours, one packet per call (what replay and live call per packet).
            var stream = SRTPSenderStream()
            var seq = 0
            runners.append(BenchRunner(name: "mbms-gateway single", packets: packets) {
                let m0 = MallocCounter.thread
                let t0 = benchClock()
                for _ in 0..<packets {
                    seq &+= 1
                    single.setSequence(0, seq)
                    _ = try? k.protector.protectRTP(single.buffer(0), length: single.lengths[0], capacity: BenchPackets.capacity,
                                                    keys: k.keys, stream: &stream)
                }
                let t1 = benchClock()
                return (Double(t1 - t0) / 1e9, MallocCounter.thread.flatMap { m1 in m0.map { m1 - $0 } })
            })

            // Ours, 32 packets (own buffers) per protectRTP(batch:) call: multi-message HMAC-SHA1.
            let batchSize = 32
            let batch = BenchPackets(sizes: Array(repeating: payload, count: batchSize), ssrc: BenchKeys.ssrc)
            let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: batchSize)
            defer { slots.deallocate() }
            for i in 0..<batchSize {
                slots.initializeElement(at: i, to: SRTPPacketSlot(bytes: batch.buffer(i), length: batch.lengths[i], capacity: BenchPackets.capacity))
            }
            var batchStream = SRTPSenderStream()
            var bseq = 0
            let calls = packets / batchSize
            runners.append(BenchRunner(name: "mbms-gateway batch", packets: calls * batchSize) {
                let m0 = MallocCounter.thread
                let t0 = benchClock()
                for _ in 0..<calls {
                    for i in 0..<batchSize {
                        bseq &+= 1
                        batch.setSequence(i, bseq)
                        slots[i].length = batch.lengths[i]
                    }
                    k.protector.protectRTP(batch: slots, keys: k.keys, stream: &batchStream)
                }
                let t1 = benchClock()
                return (Double(t1 - t0) / 1e9, MallocCounter.thread.flatMap { m1 in m0.map { m1 - $0 } })
            })

            // Debian libsrtp2 (dlopen).
            var session: UnsafeMutableRawPointer? = nil
            if libsrtp {
                var status: Int32 = 0
                let material = BenchKeys.masterKey + BenchKeys.masterSalt
                session = material.withUnsafeBufferPointer { m in
                    BenchKeys.mki.bytes.withUnsafeBufferPointer { id in
                        bench_libsrtp_create(BenchKeys.ssrc, m.baseAddress, id.baseAddress, Int32(id.count), &status)
                    }
                }
                if let s = session, let problem = libsrtpAgrees(s, k, payload: payload) {
                    crypto.notes.append("libsrtp2: \(problem); not measured")
                    bench_libsrtp_dealloc(s)
                    session = nil
                }
                if let s = session {
                    var lseq = 0
                    runners.append(BenchRunner(name: "libsrtp2 (Debian, dlopen)", packets: packets) {
                        let m0 = MallocCounter.thread
                        let t0 = benchClock()
                        for _ in 0..<packets {
                            lseq &+= 1
                            single.setSequence(0, lseq)
                            var len = Int32(single.lengths[0])
                            _ = bench_libsrtp_protect(s, single.buffer(0), &len, 1)
                        }
                        let t1 = benchClock()
                        return (Double(t1 - t0) / 1e9, MallocCounter.thread.flatMap { m1 in m0.map { m1 - $0 } })
                    })
                } else {
                    crypto.notes.append("libsrtp2: srtp_create failed (status \(status)); not measured")
                }
            }
            defer { bench_libsrtp_dealloc(session) }

            // The OpenSSL floor, three ways to drive OpenSSL; the fastest is the floor.
            let salt = UnsafeMutablePointer<UInt8>.allocate(capacity: 14)
            defer { salt.deallocate() }
            salt.initialize(from: k.ks, count: 14)
            var floors: [OpaquePointer?] = []
            defer { for f in floors { bench_floor_free(f) } }
            for (mode, name) in [(Int32(0), "OpenSSL floor (HMAC_CTX)"), (1, "OpenSSL floor (EVP_MAC)"), (2, "OpenSSL floor (SHA1 states)")] {
                let f = k.ke.withUnsafeBufferPointer { e in k.ka.withUnsafeBufferPointer { a in bench_floor_new(e.baseAddress, a.baseAddress, mode) } }
                guard let f else { crypto.notes.append("\(name): bench_floor_new failed"); continue }
                floors.append(f)
                var fseq = 0
                runners.append(BenchRunner(name: name, packets: packets) {
                    let t0 = benchClock()
                    for _ in 0..<packets {
                        fseq &+= 1
                        single.setSequence(0, fseq)
                        _ = bench_floor_protect(f, single.buffer(0).assumingMemoryBound(to: UInt8.self), single.lengths[0], 12, salt, 0)
                    }
                    let t1 = benchClock()
                    return (Double(t1 - t0) / 1e9, nil)
                })
            }

            var seconds = [[Double]](repeating: [], count: runners.count)
            var allocations = [UInt64?](repeating: 0, count: runners.count)
            for r in runners { _ = r.round() }   // warm-up
            for _ in 0..<rounds {
                for (i, r) in runners.enumerated() {
                    let (s, m) = r.round()
                    seconds[i].append(s)
                    allocations[i] = m.flatMap { m in allocations[i].map { $0 + m } }
                }
            }
            var ns: [String: Double] = [:]
            for (i, r) in runners.enumerated() {
                let s = median(seconds[i])
                ns[r.name] = s * 1e9 / Double(r.packets)
                crypto.rows.append(BenchReport.Row(name: r.name, payloadBytes: "\(payload)", packets: r.packets, seconds: s,
                                                   payloadOctets: Double(payload * r.packets)))
                if r.name.hasPrefix("mbms-gateway") || r.name.hasPrefix("libsrtp2") {
                    let total = r.packets * rounds
                    mallocs.rows.append(BenchReport.Row(name: "crypto: \(r.name)", payloadBytes: "\(payload)", packets: total,
                                                        seconds: seconds[i].reduce(0, +), payloadOctets: Double(payload * total),
                                                        mallocs: allocations[i]))
                }
            }
            if let ours = ns["mbms-gateway single"], let batchNs = ns["mbms-gateway batch"] {
                let floor = ns.filter { $0.key.hasPrefix("OpenSSL floor") }.map(\.value).min()
                if let floor {
                    crypto.ratios.append(.init(name: "\(payload) B: single / OpenSSL floor", value: ours / floor,
                                               meaning: "time per packet of our single-packet protect over the fastest plain-OpenSSL C loop (1.0 = no overhead over the floor)"))
                    crypto.ratios.append(.init(name: "\(payload) B: batch / OpenSSL floor", value: batchNs / floor,
                                               meaning: "the same for our batch protect (below 1.0: faster than OpenSSL's one-packet-at-a-time MAC)"))
                }
                crypto.ratios.append(.init(name: "\(payload) B: batch speed-up over single", value: ours / batchNs,
                                           meaning: "single ns/packet over batch ns/packet (multi-message HMAC-SHA1 gain)"))
                if let l = ns["libsrtp2 (Debian, dlopen)"] {
                    crypto.ratios.append(.init(name: "\(payload) B: single speed-up over libsrtp2", value: l / ours,
                                               meaning: "libsrtp2 ns/packet over ours (above 1.0: we are faster)"))
                }
            }
        }
        mallocs.notes.append("Counted on the measuring thread over every round (warm-up excluded). \(MallocCounter.description).")
        return (crypto, mallocs)
    }

    /// Protects one packet with ours and with libsrtp2: nil when both give the same bytes
    /// (so both loops do the same work), else what differs.
    static func libsrtpAgrees(_ session: UnsafeMutableRawPointer, _ k: BenchKeys, payload: Int) -> String? {
        let a = BenchPackets(sizes: [payload], ssrc: BenchKeys.ssrc), b = BenchPackets(sizes: [payload], ssrc: BenchKeys.ssrc)
        a.setSequence(0, 7)
        b.setSequence(0, 7)
        var stream = SRTPSenderStream()
        let ours: Int
        do { ours = try k.protector.protectRTP(a.buffer(0), length: a.lengths[0], capacity: BenchPackets.capacity, keys: k.keys, stream: &stream) } catch {
            return "our protect failed: \(error)"
        }
        var len = Int32(b.lengths[0])
        let rc = bench_libsrtp_protect(session, b.buffer(0), &len, 1)
        guard rc == 0 else { return "srtp_protect_mki returned \(rc)" }
        guard Int(len) == ours, memcmp(a.buffer(0), b.buffer(0), ours) == 0 else {
            return "its output differs from ours (\(len) vs \(ours) octets): struct layout or policy mismatch"
        }
        return nil
    }

    /// Single-packet protect over the replay capture's payload mix (160...1200): the crypto
    /// stage of replay, for the "replay >= 0.8x crypto stage" ratio. Returns (seconds, packets, payload octets).
    static func mixStage(packets: Int) throws -> BenchReport.Row {
        let k = try BenchKeys()
        let mix = BenchPackets(sizes: BenchPackets.mixSizes(64), ssrc: BenchKeys.ssrc)
        var stream = SRTPSenderStream()
        var best = Double.infinity
        var octets = 0
        for _ in 0..<3 {
            octets = 0
            let t0 = benchClock()
            for n in 0..<packets {
                let i = n & 63
                mix.setSequence(i, n)
                _ = try? k.protector.protectRTP(mix.buffer(i), length: mix.lengths[i], capacity: BenchPackets.capacity, keys: k.keys, stream: &stream)
                octets &+= mix.lengths[i] - 12
            }
            best = min(best, Double(benchClock() - t0) / 1e9)
        }
        return BenchReport.Row(name: "crypto stage (single protect, same mix)", payloadBytes: "160-1200", packets: packets,
                               seconds: best, payloadOctets: Double(octets))
    }

    /// Batch protect (64 packets per call, as replay's work stage and `run`'s workers call it)
    /// over the same 160...1200 mix: the crypto stage replay actually runs.
    static func mixStageBatch(packets: Int) throws -> BenchReport.Row {
        let k = try BenchKeys()
        let size = 64
        let mix = BenchPackets(sizes: BenchPackets.mixSizes(size), ssrc: BenchKeys.ssrc)
        let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: size)
        defer { slots.deallocate() }
        for i in 0..<size { slots.initializeElement(at: i, to: SRTPPacketSlot(bytes: mix.buffer(i), length: mix.lengths[i], capacity: BenchPackets.capacity)) }
        var stream = SRTPSenderStream()
        var best = Double.infinity
        var octets = 0
        let calls = max(1, packets / size)
        var seq = 0
        for _ in 0..<3 {
            octets = 0
            let t0 = benchClock()
            for _ in 0..<calls {
                for i in 0..<size {
                    mix.setSequence(i, seq)
                    seq += 1
                    slots[i].length = mix.lengths[i]
                    octets &+= mix.lengths[i] - 12
                }
                k.protector.protectRTP(batch: slots, keys: k.keys, stream: &stream)
            }
            best = min(best, Double(benchClock() - t0) / 1e9)
        }
        return BenchReport.Row(name: "crypto stage (batch protect, 64/call, same mix)", payloadBytes: "160-1200", packets: calls * size,
                               seconds: best, payloadOctets: Double(octets))
    }
}

/// Case d: N threads, each protecting its own stream with its own `SRTPSessionKeys.copy()`.
enum WorkersBench {
    final class Worker: @unchecked Sendable {
        let protector: SRTPProtector
        let keys: SRTPSessionKeys
        let packets: BenchPackets
        let seconds: Double
        var done = 0
        var octets = 0
        var elapsed = 0.0
        init(_ k: BenchKeys, ssrc: UInt32, seconds: Double) {
            protector = k.protector
            keys = k.keys.copy()
            packets = BenchPackets(sizes: BenchPackets.mixSizes(64), ssrc: ssrc)
            self.seconds = seconds
        }
        /// Batch protect, 64 packets per call, as `run`'s workers and replay's work stage do.
        func run() {
            var stream = SRTPSenderStream()
            let size = 64
            let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: size)
            defer { slots.deallocate() }
            for i in 0..<size {
                slots.initializeElement(at: i, to: SRTPPacketSlot(bytes: packets.buffer(i), length: packets.lengths[i], capacity: BenchPackets.capacity))
            }
            let t0 = benchClock()
            let end = t0 + UInt64(seconds * 1e9)
            var n = 0, octets = 0
            var now = t0
            while now < end {
                for _ in 0..<16 {
                    for i in 0..<size {
                        packets.setSequence(i, n)
                        slots[i].length = packets.lengths[i]
                        octets &+= packets.lengths[i] - 12
                        n += 1
                    }
                    protector.protectRTP(batch: slots, keys: keys, stream: &stream)
                }
                now = benchClock()
            }
            done = n
            self.octets = octets
            elapsed = Double(now - t0) / 1e9
        }
    }

    static func measure(threads: Int, seconds: Double) throws -> BenchReport.Row {
        let k = try BenchKeys()
        let workers = (0..<threads).map { Worker(k, ssrc: 0x1000 + UInt32($0), seconds: seconds) }
        let group = DispatchGroup()
        for w in workers {
            group.enter()
            let t = Thread { w.run(); group.leave() }
            t.start()
        }
        group.wait()
        let packets = workers.map(\.done).reduce(0, +)
        let elapsed = workers.map(\.elapsed).max() ?? seconds
        return BenchReport.Row(name: "\(threads) worker\(threads == 1 ? "" : "s") (batch protect, own keys.copy())", payloadBytes: "160-1200",
                               packets: packets, seconds: elapsed, payloadOctets: Double(workers.map(\.octets).reduce(0, +)))
    }

    static func run(quick: Bool) throws -> BenchReport.Case {
        var c = BenchReport.Case(name: "workers")
        let seconds = quick ? 0.5 : 2.0
        let one = try measure(threads: 1, seconds: seconds)
        let two = try measure(threads: 2, seconds: seconds)
        c.rows = [one, two]
        c.ratios.append(.init(name: "2 workers / 1 worker", value: two.packetsPerSecond / one.packetsPerSecond,
                              meaning: "total packets/s of 2 threads over 1 (2.0 = perfect scaling; bounded by the \(MachineInfo.cores) CPU(s) and whatever else runs)"))
        c.notes.append("Each worker: its own SSRC, SRTPSenderStream and SRTPSessionKeys.copy() (own AES contexts), batch protect (64 per call) over the 160-1200 B mix, \(seconds) s. CPUs available: \(MachineInfo.cores).")
        return c
    }
}

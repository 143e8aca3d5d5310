import CryptoCore
import Foundation
import TestSupport
import XCTest

/// Differential and known-answer tests of `HMACSHA1Batch` (multi-message HMAC-SHA1, RFC 2104
/// over FIPS 180-4 SHA-1) against OpenSSL's HMAC-SHA1 (`HMACSHA1`, the one-lane path the
/// product used before), for every implementation this CPU can run: SHA-NI interleaved lanes,
/// the portable scalar fallback and the OpenSSL fallback. The SHA-NI path has two kernels (one
/// block per step, and the multi-block kernel for stretches of >= 9 in-place blocks, 1-4 lanes)
/// plus the whole-HMAC kernel (1-4 lanes) taken when every lane of a call has the same block
/// count; the mixed-length tests reach the first two and the RFC 2202 lane-count test and the
/// random tests reach every width of the third (checked by corrupting each width's output on
/// purpose: every width made testRFC2202KnownAnswersThroughEveryLaneCount and
/// testRandomMixedLanesSHANI fail).
///
/// Case counts (per run; a "case" is one message compared byte for byte):
///  - testEveryTotalLength…: 0…4096 total bytes × 4 splits (b = 0, 4, random, a = 0) per
///    implementation: 16,388 × 3 ≈ 49k.
///  - testRandomMixedLanes…: 4M (SHA-NI) + 1M (scalar) + 1M (OpenSSL) = 6M cases, lane
///    counts 1…16 mixed in one call, lengths mostly ≤ 1500 with a tail to 4096, random splits,
///    both parts offset by 0…15 bytes, a fresh random key (0…200 bytes) every 64 calls.
///  - testEnvironmentVariable…: 20k cases per implementation forced through MBMS_MULTIHASH.
///  - RFC 2202's seven vectors through every lane count, whole and split between a and b.
///  - testSharedInstanceFromManyThreads: 4 threads × 500 calls × 8 lanes on one instance.
/// The C code is built with -O3 even in debug builds; the Swift loop is kept to pointer
/// arithmetic so the suite stays well under a minute in a debug build (about 20 s measured on
/// a shared two-core x86-64 box).
final class MultiHashTests: XCTestCase {
    override func tearDown() {
        unsetenv("MBMS_MULTIHASH")
        MultiHash.select(nil)
        super.tearDown()
    }

    var implementations: [MultiHash.Implementation] { MultiHash.Implementation.allCases.filter(MultiHash.isAvailable) }

    // MARK: - Known answers

    func testRFC2202KnownAnswersThroughEveryLaneCount() throws {
        // RFC 2202 section 3, test cases 1-7.
        let cases: [(key: [UInt8], data: [UInt8], digest: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            ((1...25).map { UInt8($0) }, [UInt8](repeating: 0xcd, count: 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            ([UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
            ([UInt8](repeating: 0xaa, count: 80), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
            ([UInt8](repeating: 0xaa, count: 80),
             Array("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".utf8),
             "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
        ]
        for impl in implementations {
            XCTAssertTrue(MultiHash.select(impl))
            XCTAssertEqual(MultiHash.implementation, impl.rawValue)
            for c in cases {
                let mac = HMACSHA1Batch(key: c.key)
                let expected = try Hex.decode(c.digest)
                // The same message in 1…8 lanes, split between a and b at every lane index.
                for lanes in 1...8 {
                    let messages = (0..<lanes).map { _ in c.data }
                    XCTAssertEqual(mac.authenticate(messages), Array(repeating: expected, count: lanes), "\(impl) lanes \(lanes)")
                    let digests = try twoPart(mac, (0..<lanes).map { i in (Array(c.data.prefix(i * 3)), Array(c.data.dropFirst(i * 3))) })
                    XCTAssertEqual(digests, Array(repeating: expected, count: lanes), "\(impl) split lanes \(lanes)")
                }
            }
            // All seven keys differ, so mix them only via separate instances; mixed data in one call:
            let mac = HMACSHA1Batch(key: cases[5].key)
            XCTAssertEqual(mac.authenticate([cases[5].data, cases[6].data, cases[5].data]),
                           [try Hex.decode(cases[5].digest), try Hex.decode(cases[6].digest), try Hex.decode(cases[5].digest)])
        }
    }

    // MARK: - Differential

    func testEveryTotalLengthUpTo4096AgainstOpenSSL() throws {
        for impl in implementations {
            XCTAssertTrue(MultiHash.select(impl))
            var rng = SplitMix64(seed: 0x5EED_0001)
            let harness = try Harness(keyLength: 20, rng: &rng)
            var pending: [Harness.Lane] = []
            for total in 0...4096 {
                var splits = [total, total / 2 + Int(rng.next() % UInt64(total / 2 + 1)), 0]   // b = 0, random, a = 0
                if total >= 4 { splits.append(total - 4) }                                        // SRTP: b = ROC
                else { splits.append(total) }
                for split in splits {
                    pending.append(Harness.Lane(aOffset: Int(rng.next() % 16), aLength: split,
                                                bOffset: Int(rng.next() % 16), bLength: total - split))
                    if pending.count == 8 {
                        try harness.check(pending, impl: impl)
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !pending.isEmpty { try harness.check(pending, impl: impl) }
            XCTAssertGreaterThanOrEqual(harness.cases, 4 * 4097)
        }
    }

    /// One-part messages of one length through the pointer API (every b empty: what the SRTP
    /// batch passes, its ROC staged behind each packet), the fast path of the SHA-NI
    /// implementation from 64 bytes up to its block limit: every length 0...2700 (below, at and
    /// above the limits), 1...13 lanes, unaligned starts, against OpenSSL's one-lane HMAC.
    func testEqualLengthOnePartMessagesAgainstOpenSSL() throws {
        var rng = SplitMix64(seed: 0x5EED_0004)
        let key = (0..<20).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let batch = HMACSHA1Batch(key: key)
        let reference = try HMACSHA1(key: key)
        let laneCounts = [1, 2, 3, 4, 5, 8, 13]
        let stride = 2720
        let arena = UnsafeMutableRawPointer.allocate(byteCount: stride * 13, alignment: 64)
        defer { arena.deallocate() }
        for i in Swift.stride(from: 0, to: stride * 13, by: 8) { arena.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self) }
        var messages = [UnsafeRawPointer?](repeating: nil, count: 13)
        var lengths = [Int](repeating: 0, count: 13)
        var got = [UInt8](repeating: 0, count: 20 * 13)
        for impl in implementations {
            XCTAssertTrue(MultiHash.select(impl))
            var mismatches = 0
            for length in 0...2700 {
                let n = laneCounts[length % laneCounts.count]
                for l in 0..<n {
                    messages[l] = UnsafeRawPointer(arena + l * stride + Int(rng.next() % 16))
                    lengths[l] = length
                }
                got.withUnsafeMutableBytes { o in
                    if let base = o.baseAddress { batch.authenticate(count: n, messages: messages, lengths: lengths, digests: base) }
                }
                for l in 0..<n where Array(got[(20 * l)..<(20 * l + 20)]) != reference.authenticate(Array(UnsafeRawBufferPointer(start: messages[l], count: length))) {
                    mismatches += 1
                }
            }
            XCTAssertEqual(mismatches, 0, "\(impl)")
        }
    }

    func testRandomMixedLanesSHANI() throws {
        guard MultiHash.isAvailable(.shani) else { throw XCTSkip("CPU without the SHA extensions") }
        try randomMixedLanes(.shani, cases: 4_000_000, seed: 0x5EED_0002)
    }

    /// Calls of 4…16 packets of SRTP sizes (12-byte header + 160…1200-byte payload + 4-byte
    /// ROC, one part or with the ROC apart): neighbours in length order differ by a block or
    /// two, so most sets of four go through the ragged whole-HMAC kernel (outer blocks inside
    /// the loop), some (a long and three short) through the scheduler; against OpenSSL.
    func testMixedSRTPSizesThroughTheRaggedKernel() throws {
        guard MultiHash.isAvailable(.shani) else { throw XCTSkip("CPU without the SHA extensions") }
        XCTAssertTrue(MultiHash.select(.shani))
        var rng = SplitMix64(seed: 0x5EED_0005)
        var harness = try Harness(keyLength: 20, rng: &rng)
        var lanes: [Harness.Lane] = []
        for call in 0..<20_000 {
            lanes.removeAll(keepingCapacity: true)
            let count = 4 + Int(rng.next() % 13)
            for _ in 0..<count {
                let r = rng.next()
                let total = 12 + 160 + Int((r >> 8) % 1041) + 4
                let split = (r >> 40) % 2 == 0 ? total : total - 4
                lanes.append(Harness.Lane(aOffset: Int((r >> 4) & 15), aLength: split, bOffset: 0, bLength: total - split))
            }
            if call % 997 == 0 { harness = try Harness(keyLength: Int(rng.next() % 80), rng: &rng, reusing: harness) }
            try harness.check(lanes, impl: .shani, label: "ragged")
        }
    }

    func testRandomMixedLanesScalarFallback() throws {
        try randomMixedLanes(.scalar, cases: 1_000_000, seed: 0x5EED_0003)
    }

    func testRandomMixedLanesOpenSSLFallback() throws {
        try randomMixedLanes(.openssl, cases: 1_000_000, seed: 0x5EED_0004)
    }

    /// The environment variable forces the fallback (read on first use, or on `select(nil)`).
    func testEnvironmentVariableForcesImplementation() throws {
        let automatic = MultiHash.isAvailable(.shani) ? "shani" : "openssl"
        for impl in MultiHash.Implementation.allCases where MultiHash.isAvailable(impl) {
            setenv("MBMS_MULTIHASH", impl.rawValue, 1)
            XCTAssertTrue(MultiHash.select(nil))
            XCTAssertEqual(MultiHash.implementation, impl.rawValue)
            try randomMixedLanes(nil, cases: 20_000, seed: 0x5EED_0005)
        }
        setenv("MBMS_MULTIHASH", "no-such-implementation", 1)
        MultiHash.select(nil)
        XCTAssertEqual(MultiHash.implementation, automatic)
        unsetenv("MBMS_MULTIHASH")
        MultiHash.select(nil)
        XCTAssertEqual(MultiHash.implementation, automatic)
    }

    /// More than eight messages in one call (processed in groups), and zero.
    func testLargeAndZeroCounts() throws {
        for impl in implementations {
            XCTAssertTrue(MultiHash.select(impl))
            var rng = SplitMix64(seed: 0x5EED_0006)
            let key = (0..<20).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let batch = HMACSHA1Batch(key: key)
            let one = try HMACSHA1(key: key)
            let messages = (0..<37).map { i in (0..<(i * 41 % 1500)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            XCTAssertEqual(batch.authenticate(messages), messages.map { one.authenticate($0) }, "\(impl)")
            XCTAssertEqual(batch.authenticate([]), [])
        }
    }

    /// One keyed instance shared by several threads (it is read-only after init); every
    /// thread checks 500 eight-lane calls against OpenSSL.
    func testSharedInstanceFromManyThreads() throws {
        let key = (0..<20).map { UInt8(0x40 + $0) }
        let batch = HMACSHA1Batch(key: key)
        let reference = try HMACSHA1(key: key)
        let mismatches = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            var rng = SplitMix64(seed: 0x5EED_0100 + UInt64(thread))
            for _ in 0..<500 {
                let messages = (0..<8).map { _ in (0..<Int(rng.next() % 600)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
                if batch.authenticate(messages) != messages.map({ reference.authenticate($0) }) { mismatches.add() }
            }
        }
        XCTAssertEqual(mismatches.value, 0)
    }

    // MARK: - Helpers

    private func twoPart(_ mac: HMACSHA1Batch, _ parts: [([UInt8], [UInt8])]) throws -> [[UInt8]] {
        let n = parts.count
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 16)
        defer { storage.deallocate() }
        var a: [UnsafeRawPointer?] = [], b: [UnsafeRawPointer?] = [], al: [Int] = [], bl: [Int] = []
        var at = 0
        for (x, y) in parts {
            x.withUnsafeBytes { if let s = $0.baseAddress { (storage + at).copyMemory(from: s, byteCount: x.count) } }
            a.append(UnsafeRawPointer(storage + at)); al.append(x.count); at += x.count + 1
            y.withUnsafeBytes { if let s = $0.baseAddress { (storage + at).copyMemory(from: s, byteCount: y.count) } }
            b.append(UnsafeRawPointer(storage + at)); bl.append(y.count); at += y.count + 1
        }
        var out = [UInt8](repeating: 0, count: 20 * n)
        out.withUnsafeMutableBytes { o in
            if let base = o.baseAddress { mac.authenticate(count: n, a: a, aLengths: al, b: b, bLengths: bl, digests: base) }
        }
        return (0..<n).map { Array(out[(20 * $0)..<(20 * $0 + 20)]) }
    }

    /// `cases` messages in calls of 1…16 lanes with mixed lengths; nil impl: keep the current one.
    private func randomMixedLanes(_ impl: MultiHash.Implementation?, cases: Int, seed: UInt64) throws {
        if let impl { XCTAssertTrue(MultiHash.select(impl)) }
        let name = impl?.rawValue ?? MultiHash.implementation
        var rng = SplitMix64(seed: seed)
        var harness = try Harness(keyLength: 20, rng: &rng)
        var lanes: [Harness.Lane] = []
        lanes.reserveCapacity(16)
        var call = 0
        while harness.cases < cases {
            if call % 64 == 0 {
                // Keys of 0…200 bytes: shorter than, equal to and longer than the 64-byte block.
                harness = try Harness(keyLength: Int(rng.next() % 201), rng: &rng, reusing: harness)
            }
            call += 1
            lanes.removeAll(keepingCapacity: true)
            let count = 1 + Int(rng.next() % 16)
            for _ in 0..<count {
                let r = rng.next()
                // 1/16 of messages up to 4096 bytes, the rest up to 1500 (RTP sizes).
                let total = (r & 15) == 0 ? Int((r >> 8) % 4097) : Int((r >> 8) % 1501)
                let split: Int
                switch (r >> 40) % 4 {
                case 0: split = max(total - 4, 0)           // SRTP: b is the 4-byte ROC
                case 1: split = total                        // b empty
                default: split = Int((r >> 44) % UInt64(total + 1))
                }
                lanes.append(Harness.Lane(aOffset: Int((r >> 4) & 15), aLength: split,
                                          bOffset: Int((r >> 50) & 15), bLength: total - split))
            }
            try harness.check(lanes, impl: impl ?? .scalar, label: name)
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

enum MultiHashTestError: Error, CustomStringConvertible {
    case mismatch(String)
    var description: String { switch self { case .mismatch(let s): s } }
}

/// A random 16 KiB arena, a key, and preallocated pointer/length arrays: one call compares
/// up to eight lanes of the batch path with OpenSSL's one-lane HMAC-SHA1.
final class Harness {
    struct Lane { var aOffset: Int; var aLength: Int; var bOffset: Int; var bLength: Int }
    static let arenaSize = 16 * 1024
    let key: [UInt8]
    let batch: HMACSHA1Batch
    let reference: HMACSHA1
    let arena: UnsafeMutableRawPointer
    let a = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: 16)
    let b = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: 16)
    let al = UnsafeMutablePointer<Int>.allocate(capacity: 16)
    let bl = UnsafeMutablePointer<Int>.allocate(capacity: 16)
    let got = UnsafeMutableRawPointer.allocate(byteCount: 16 * 20, alignment: 16)
    let want = UnsafeMutableRawPointer.allocate(byteCount: 20, alignment: 16)
    private(set) var cases = 0

    init(keyLength: Int, rng: inout SplitMix64, reusing old: Harness? = nil) throws {
        key = (0..<keyLength).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        batch = HMACSHA1Batch(key: key)
        reference = try HMACSHA1(key: key)
        if let old {
            arena = old.arena
            cases = old.cases
            old.arenaTransferred = true
        } else {
            arena = .allocate(byteCount: Self.arenaSize, alignment: 64)
            for i in stride(from: 0, to: Self.arenaSize, by: 8) {
                arena.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
            }
        }
    }

    fileprivate var arenaTransferred = false

    deinit {
        if !arenaTransferred { arena.deallocate() }
        a.deallocate(); b.deallocate(); al.deallocate(); bl.deallocate(); got.deallocate(); want.deallocate()
    }

    func check(_ lanes: [Lane], impl: MultiHash.Implementation, label: String? = nil) throws {
        let n = lanes.count
        for (i, l) in lanes.enumerated() {
            // a from the first half of the arena, b from the second; offsets 0…15 misalign both.
            a[i] = l.aLength == 0 && i % 2 == 0 ? nil : UnsafeRawPointer(arena + l.aOffset)
            al[i] = l.aLength
            b[i] = l.bLength == 0 && i % 2 == 1 ? nil : UnsafeRawPointer(arena + 8192 + l.bOffset)
            bl[i] = l.bLength
        }
        batch.authenticate(count: n, a: a, aLengths: al, b: b, bLengths: bl, digests: got)
        for i in 0..<n {
            reference.authenticate(a[i], al[i], b[i], bl[i], into: want)
            if memcmp(got + 20 * i, want, 20) != 0 {
                throw MultiHashTestError.mismatch("\(label ?? impl.rawValue): lane \(i) of \(n), a \(al[i]) bytes, b \(bl[i]) bytes, key \(key.count) bytes, after \(cases) cases")
            }
        }
        cases += n
    }
}

import CryptoCore
import TestSupport
import XCTest

/// `AESCounterModeBatch` (counter blocks of many packets through one AES-ECB call, or the VAES
/// kernel; RFC 3711 4.1.1 / NIST SP 800-38A 6.5) against OpenSSL's own CTR mode
/// (`AESCounterMode`), packet by packet: every length 0...2048, random batches of 1...64 packets
/// at unaligned addresses, key sizes 16/24/32, IVs whose counter carries across the 16-, 32- and
/// 64-bit boundaries and wraps mod 2^128, batches larger than one ECB chunk (packets straddling
/// chunks), every AES x XOR implementation pair this CPU can run; and RFC 3711 B.2 through the
/// batch API. Expected values always come from OpenSSL's CTR, never from the code under test.
final class AESCounterModeBatchTests: XCTestCase {
    override func tearDown() {
        AESCounterModeBatch.select(nil)
        AESCounterModeBatch.select(implementation: nil)
        super.tearDown()
    }

    /// Runs `body` once per (AES, XOR) implementation pair this CPU can run, with that pair
    /// selected. The XOR loop only matters on the OpenSSL path; the pairs are kept anyway so
    /// that the VAES path is also shown not to depend on it.
    private func forEachImplementation(_ body: (String) throws -> Void) rethrows {
        var ran = 0
        for aes in AESCounterModeBatch.Implementation.allCases where AESCounterModeBatch.isAvailable(aes) {
            for xor in AESCounterModeBatch.XORImplementation.allCases where AESCounterModeBatch.isAvailable(xor) {
                XCTAssertTrue(AESCounterModeBatch.select(implementation: aes))
                XCTAssertTrue(AESCounterModeBatch.select(xor))
                XCTAssertEqual(AESCounterModeBatch.implementation, aes)
                try body("\(aes)/\(xor)")
                ran += 1
            }
        }
        XCTAssertGreaterThanOrEqual(ran, 1)   // OpenSSL with the portable XOR runs everywhere
    }

    private func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16) ?? 0)
            i = j
        }
        return out
    }

    /// RFC 3711 B.2: keystream blocks 0...2 and 0xFEFF...0xFF01 from salt F0F1...FCFD.
    func testRFC3711AppendixB2KeystreamThroughBatch() throws {
        let batch = try AESCounterModeBatch(key: hex("2B7E151628AED2A6ABF7158809CF4F3C"))
        let iv0 = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        let ivFEFF = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF")
        let first = hex("E03EAD0935C95E80E166B16DD92B4EB4" + "D23513162B02D0F72A43A2FE4A5F97AB" + "41E95B3BB0A2E8DD477901E4FCA894C0")
        let last = hex("EC8CDF7398607CB0F2D21675EA9EA1E4" + "362B7C3C6773516318A077D7FC5073AE" + "6A2CC3787889374FBEB4C81B17BA6C44")
        try forEachImplementation { impl in
            let out = try batch.apply(ivs: [iv0, ivFEFF], to: [[UInt8](repeating: 0, count: 48), [UInt8](repeating: 0, count: 48)])
            XCTAssertEqual(out, [first, last], "\(impl)")
            // One packet of 65282 blocks (over 60 ECB chunks): blocks 0...2 and 65279...65281.
            let long = try batch.apply(ivs: [iv0], to: [[UInt8](repeating: 0, count: 16 * 65282)])[0]
            XCTAssertEqual(Array(long[0..<48]), first, "\(impl)")
            XCTAssertEqual(Array(long[(16 * 65279)...]), last, "\(impl)")
        }
    }

    /// IVs around the carry boundaries of the 128-bit counter (NIST SP 800-38A B.1 increment
    /// of the whole block, as OpenSSL's CTR does).
    private func carryIV(_ rng: inout SplitMix64, _ kind: Int) -> [UInt8] {
        var iv = rng.bytes(16)
        let back = UInt8(truncatingIfNeeded: rng.next() % 130)   // blocks before the boundary
        switch kind {
        case 0: break                                            // random
        case 1: iv[14] = 0xFF; iv[15] = 0xFF &- back             // 16-bit
        case 2: for k in 12...14 { iv[k] = 0xFF }; iv[15] = 0xFF &- back   // 32-bit
        case 3: for k in 8...14 { iv[k] = 0xFF }; iv[15] = 0xFF &- back    // 64-bit (into the high word)
        case 4: for k in 0...14 { iv[k] = 0xFF }; iv[15] = 0xFF &- back    // wraps mod 2^128
        default: iv[14] = 0; iv[15] = 0                          // SRTP shape (RFC 3711 4.1.1)
        }
        return iv
    }

    func testDifferentialAgainstOpenSSLCTR() throws {
        var rng = SplitMix64(seed: 0xAE5C_0001)
        var compared = 0
        for keyLength in [16, 24, 32] {
            let key = rng.bytes(keyLength)
            let reference = try AESCounterMode(key: key)
            let batch = try AESCounterModeBatch(key: key)
            try forEachImplementation { impl in
                // Every length 0...2048 once per key size and implementation, shuffled into random batches.
                var lengths = Array(0...2048)
                lengths.shuffle(using: &rng)
                var start = 0
                while start < lengths.count {
                    let n = Swift.min(lengths.count - start, 1 + Int(rng.next() % 64))
                    compared += try compareBatch(Array(lengths[start..<(start + n)]), reference: reference, batch: batch,
                                                 rng: &rng, label: "key \(keyLength) \(impl)")
                    start += n
                }
            }
        }
        XCTAssertGreaterThan(compared, 3 * 2049)
    }

    /// Encrypts packets of `lengths` at unaligned addresses both ways and compares.
    private func compareBatch(_ lengths: [Int], reference: AESCounterMode, batch: AESCounterModeBatch,
                              rng: inout SplitMix64, label: String) throws -> Int {
        let n = lengths.count
        var offsets: [Int] = []
        var total = 0
        for l in lengths { total += 1 + Int(rng.next() % 63); offsets.append(total); total += l }
        let plain = rng.bytes(total)
        let mine = UnsafeMutableRawPointer.allocate(byteCount: total + 64, alignment: 64)
        let theirs = UnsafeMutableRawPointer.allocate(byteCount: total + 64, alignment: 64)
        defer { mine.deallocate(); theirs.deallocate() }
        plain.withUnsafeBytes { p in
            guard let src = p.baseAddress else { return }
            mine.copyMemory(from: src, byteCount: total)
            theirs.copyMemory(from: src, byteCount: total)
        }
        var ivs: [UInt8] = []
        for _ in 0..<n { ivs += carryIV(&rng, Int(rng.next() % 6)) }
        let pointers: [UnsafeMutableRawPointer?] = (0..<n).map { lengths[$0] == 0 && rng.next() % 2 == 0 ? nil : mine + offsets[$0] }
        let ok = ivs.withUnsafeBytes { v -> Bool in
            guard let base = v.baseAddress else { return false }
            return batch.xorKeystreams(count: n, ivs: base, data: pointers, lengths: lengths)
        }
        XCTAssertTrue(ok, label)
        for i in 0..<n where lengths[i] > 0 {
            let iv = Array(ivs[(16 * i)..<(16 * i + 16)])
            let r = iv.withUnsafeBytes { v in
                v.baseAddress.map { reference.xorKeystream(iv: $0, data: theirs + offsets[i], count: lengths[i]) } ?? false
            }
            XCTAssertTrue(r, label)
        }
        // Whole buffers: the gaps between packets must be untouched too.
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: mine, count: total)),
                       Array(UnsafeRawBufferPointer(start: theirs, count: total)), "\(label) lengths \(lengths)")
        return n
    }

    /// Batches bigger than one ECB chunk: packets straddle chunk boundaries.
    func testBatchesLargerThanOneChunk() throws {
        var rng = SplitMix64(seed: 0xAE5C_0002)
        let key = rng.bytes(16)
        let reference = try AESCounterMode(key: key)
        let batch = try AESCounterModeBatch(key: key)
        let chunkBytes = 16 * AESCounterModeBatch.chunkBlocks
        try forEachImplementation { impl in
            for trial in 0..<6 {
                var lengths = (0..<64).map { _ in Int(rng.next() % 2049) }
                if trial == 0 { lengths = [chunkBytes - 1, 17, chunkBytes + 1, 3 * chunkBytes + 5] }
                if trial == 1 { lengths = [chunkBytes, chunkBytes, 0, 16] }
                _ = try compareBatch(lengths, reference: reference, batch: batch, rng: &rng, label: "\(impl) trial \(trial)")
            }
        }
    }

    /// Counters that carry across the 16-, 32-, 64-bit and 128-bit (wrap) boundaries at every
    /// block position of a packet: the VAES kernel builds counters 16 blocks at a time with
    /// 64-bit adds and switches to the block-by-block carry path near a low-word wrap, so the
    /// boundary is put at each of blocks 0...47 of 760-byte packets (3 groups of 16 and a
    /// partial tail), for every key size (FIPS 197 key expansion for 128/192/256).
    func testCounterCarriesAtEveryBlockPosition() throws {
        var rng = SplitMix64(seed: 0xAE5C_0004)
        for keyLength in [16, 24, 32] {
            let key = rng.bytes(keyLength)
            let reference = try AESCounterMode(key: key)
            let batch = try AESCounterModeBatch(key: key)
            try forEachImplementation { impl in
                for boundaryBytes in [2, 4, 8, 16] {   // carry out of the low 16, 32, 64 bits; 16: wraps mod 2^128
                    var ivs: [[UInt8]] = []
                    for back in 0..<48 {
                        var iv = rng.bytes(16)
                        for k in (16 - boundaryBytes)..<16 { iv[k] = 0xFF }
                        iv[15] = 0xFF &- UInt8(back)   // block `back + 1` is the first after the carry
                        ivs.append(iv)
                    }
                    let messages = ivs.map { _ in rng.bytes(760) }
                    let mine = try batch.apply(ivs: ivs, to: messages)
                    for (i, iv) in ivs.enumerated() {
                        var theirs = messages[i]
                        let ok = iv.withUnsafeBytes { v in
                            theirs.withUnsafeMutableBytes { m in
                                guard let vb = v.baseAddress, let mb = m.baseAddress else { return false }
                                return reference.xorKeystream(iv: vb, data: mb, count: m.count)
                            }
                        }
                        XCTAssertTrue(ok)
                        XCTAssertEqual(mine[i], theirs, "key \(keyLength) \(impl) boundary \(8 * boundaryBytes) bits, carry after block \(i)")
                    }
                }
            }
        }
    }

    /// The select hook (what MBMS_BATCHAES does at start-up) really switches the AES code: the
    /// reported name follows it, an unavailable implementation is refused without changing
    /// anything, and nil returns to the environment/CPUID choice.
    func testSelectSwitchesAESImplementation() throws {
        XCTAssertTrue(AESCounterModeBatch.isAvailable(.openssl))
        XCTAssertTrue(AESCounterModeBatch.select(implementation: .openssl))
        XCTAssertEqual(AESCounterModeBatch.implementation, .openssl)
        XCTAssertEqual(AESCounterModeBatch.implementationName, "openssl")
        if AESCounterModeBatch.isAvailable(.vaes) {
            XCTAssertTrue(AESCounterModeBatch.select(implementation: .vaes))
            XCTAssertEqual(AESCounterModeBatch.implementation, .vaes)
            XCTAssertEqual(AESCounterModeBatch.implementationName, "vaes")
        } else {
            XCTAssertFalse(AESCounterModeBatch.select(implementation: .vaes))
            XCTAssertEqual(AESCounterModeBatch.implementationName, "openssl")
        }
        XCTAssertTrue(AESCounterModeBatch.select(implementation: nil))
        let expected: AESCounterModeBatch.Implementation
        switch ProcessInfo.processInfo.environment["MBMS_BATCHAES"] {
        case "openssl": expected = .openssl
        default: expected = AESCounterModeBatch.isAvailable(.vaes) ? .vaes : .openssl
        }
        XCTAssertEqual(AESCounterModeBatch.implementation, expected)
        // Both paths give the same bytes for a context keyed before the switch.
        var rng = SplitMix64(seed: 0xAE5C_0005)
        let batch = try AESCounterModeBatch(key: rng.bytes(24))
        let ivs = (0..<7).map { _ in rng.bytes(16) }
        let messages = (0..<7).map { _ in rng.bytes(Int(rng.next() % 1500)) }
        var outputs: [[[UInt8]]] = []
        try forEachImplementation { _ in outputs.append(try batch.apply(ivs: ivs, to: messages)) }
        for o in outputs { XCTAssertEqual(o, outputs[0]) }
    }

    func testCopyIsIndependentAndEqual() throws {
        var rng = SplitMix64(seed: 0xAE5C_0003)
        let key = rng.bytes(32)
        let a = try AESCounterModeBatch(key: key)
        let b = try a.copy()
        let ivs = (0..<5).map { _ in rng.bytes(16) }
        let messages = (0..<5).map { _ in rng.bytes(Int(rng.next() % 500)) }
        let reference = try AESCounterMode(key: key)
        try forEachImplementation { impl in
            let x = try a.apply(ivs: ivs, to: messages)
            XCTAssertEqual(try b.apply(ivs: ivs, to: messages), x, impl)   // the copy has the round keys too
            XCTAssertEqual(try a.apply(ivs: ivs, to: x), messages, impl)   // CTR is an involution
            for i in 0..<5 { XCTAssertEqual(x[i], try reference.apply(iv: ivs[i], to: messages[i]), impl) }
        }
        XCTAssertEqual(b.keyLength, 32)
    }

    func testRejectsBadKeysAndIVs() throws {
        XCTAssertThrowsError(try AESCounterModeBatch(key: [UInt8](repeating: 1, count: 20)))
        XCTAssertThrowsError(try AESCounterModeBatch(key: [UInt8]()))
        let c = try AESCounterModeBatch(key: [UInt8](repeating: 1, count: 16))
        XCTAssertThrowsError(try c.apply(ivs: [[0, 1]], to: [[1, 2, 3]]))
        XCTAssertThrowsError(try c.apply(ivs: [], to: [[1, 2, 3]]))
        XCTAssertEqual(try c.apply(ivs: [], to: []), [])
    }
}

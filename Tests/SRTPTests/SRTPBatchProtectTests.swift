import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

/// The batch protect path (encrypt a group, then one multi-message HMAC-SHA1 call) must be
/// byte-identical to protecting the same packets one by one, for every tag layout (RFC 3711
/// HMAC-SHA1-80/32, RFC 4771 RCCm1/2/3), MKI or none, SEQ wraps (ROC changes inside a
/// batch), failures mixed in, and every multi-hash implementation this CPU can run.
final class SRTPBatchProtectTests: XCTestCase {
    override func tearDown() {
        MultiHash.select(nil)
        AESCounterModeBatch.select(nil)
        AESCounterModeBatch.select(implementation: nil)
        super.tearDown()
    }

    /// The batched AES-CM path (one keystream call per group of 16, `AESCounterModeBatch`) for
    /// every key size, the NULL cipher, both AES implementations (OpenSSL ECB with both XOR
    /// loops, VAES) where this CPU has them, batches of up to 100 packets
    /// (several groups, packets of 0...2047 payload bytes) and keys given to another thread by copy().
    func testBatchedCipherEqualsSinglePacketForAllKeySizesAndXORs() throws {
        let policies: [SRTPPolicy] = [
            SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80),
            SRTPPolicy(cipher: .aesCM192, authentication: .hmacSHA1_80),
            SRTPPolicy(cipher: .aesCM256, authentication: .hmacSHA1_80, mkiLength: 0),
            SRTPPolicy(cipher: .aesCM256, authentication: .rccm1, rocTransmissionRate: 5),
            SRTPPolicy(cipher: .null, authentication: .hmacSHA1_32),
        ]
        var rng = SplitMix64(seed: 0xBA7C_0002)
        var packetsCompared = 0
        var pairs: [(AESCounterModeBatch.Implementation, AESCounterModeBatch.XORImplementation)] = []
        for aes in AESCounterModeBatch.Implementation.allCases where AESCounterModeBatch.isAvailable(aes) {
            for xor in AESCounterModeBatch.XORImplementation.allCases where AESCounterModeBatch.isAvailable(xor) {
                pairs.append((aes, xor))
            }
        }
        for (aes, impl) in pairs {
            XCTAssertTrue(AESCounterModeBatch.select(implementation: aes))
            XCTAssertTrue(AESCounterModeBatch.select(impl))
            for policy in policies {
                let protector = try SRTPProtector(policy: policy)
                let mki = policy.mkiLength == 0 ? MasterKeyIdentifier.none : MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 3)
                let original = try SRTPSessionKeys(masterKey: rng.bytes(policy.cipher == .null ? 16 : policy.cipher.sessionKeyLength),
                                                   masterSalt: rng.bytes(14), mki: mki, cipher: policy.cipher)
                for (k, keys) in [original, original.copy()].enumerated() {
                    for trial in 0..<6 {
                        let count = 1 + Int(rng.next() % 100)
                        let firstSeq = UInt16(truncatingIfNeeded: rng.next())
                        packetsCompared += try compare(protector: protector, keys: keys, count: count, firstSeq: firstSeq,
                                                       initialROC: UInt32(truncatingIfNeeded: rng.next() % 5), rng: &rng,
                                                       label: "\(aes)/\(impl) \(policy.cipher) keys \(k) trial \(trial)", maxPayload: 2048)
                    }
                }
            }
        }
        XCTAssertGreaterThan(packetsCompared, 2000)
    }

    /// Every tag layout (HMAC-SHA1-80/32, RFC 4771 RCCm1/2/3) and the NULL cipher.
    static let everyTagLayout: [SRTPPolicy] = [
        SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80),
        SRTPPolicy(cipher: .aesCM256, authentication: .hmacSHA1_32),
        SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 3),
        SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 4),
        SRTPPolicy(cipher: .aesCM192, authentication: .rccm3, rocTransmissionRate: 2),
        SRTPPolicy(cipher: .null, authentication: .hmacSHA1_80, mkiLength: 0),
    ]

    func testBatchEqualsSinglePacketForRandomBatches() throws {
        let policies = Self.everyTagLayout
        var rng = SplitMix64(seed: 0xBA7C_0001)
        var packetsCompared = 0
        for impl in MultiHash.Implementation.allCases where MultiHash.isAvailable(impl) {
            XCTAssertTrue(MultiHash.select(impl))
            for policy in policies {
                let protector = try SRTPProtector(policy: policy)
                let mki = policy.mkiLength == 0 ? MasterKeyIdentifier.none : MasterKeyIdentifier(keyGroup: 7, keyNumber: 3, mtkID: 9)
                let keys = try SRTPSessionKeys(masterKey: rng.bytes(policy.cipher == .null ? 16 : policy.cipher.sessionKeyLength),
                                               masterSalt: rng.bytes(14), mki: mki, cipher: policy.cipher)
                for trial in 0..<25 {
                    let count = 1 + Int(rng.next() % 40)
                    let firstSeq = UInt16(truncatingIfNeeded: 65_535 - Int(rng.next() % 20))   // wraps inside the batch
                    let roc = UInt32(truncatingIfNeeded: rng.next() % 3)
                    packetsCompared += try compare(protector: protector, keys: keys, count: count, firstSeq: firstSeq,
                                                   initialROC: roc, rng: &rng, label: "\(impl) \(policy.authentication) trial \(trial)")
                }
            }
        }
        XCTAssertGreaterThan(packetsCompared, 2000)
    }

    /// Batches of packets of one payload length, so every group's MACs go through the one-part
    /// path (ROC staged behind each packet, RFC 3711 4.2): lengths where the padding needs a
    /// second block or none, messages under 64 bytes and over the whole-HMAC kernel's limit
    /// (fallbacks), and MKIs shorter than the 4 staged bytes under the RFC 4771 ROC field.
    func testEqualLengthBatchesEqualSinglePacket() throws {
        let cases: [(SRTPPolicy, MasterKeyIdentifier)] = [
            (SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80), MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 3)),
            (SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_32, mkiLength: 0), .none),
            (SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 2, mkiLength: 2),
             MasterKeyIdentifier(bytes: [0xAB, 0xCD])),
            (SRTPPolicy(cipher: .aesCM256, authentication: .rccm2, rocTransmissionRate: 3, mkiLength: 1), MasterKeyIdentifier(bytes: [0x5A])),
            (SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 1, mkiLength: 0), .none),
            (SRTPPolicy(cipher: .aesCM192, authentication: .rccm3, rocTransmissionRate: 2, mkiLength: 3), MasterKeyIdentifier(bytes: [1, 2, 3])),
            (SRTPPolicy(cipher: .null, authentication: .hmacSHA1_80, mkiLength: 0), .none),
        ]
        // Message (header ‖ payload ‖ ROC) lengths 16 + payload: < 64, 64, % 64 = 55, 56, 63, 0, 1,
        // and past the kernel's 40 inner blocks.
        let payloads = [0, 40, 48, 103, 104, 111, 112, 113, 160, 1200, 1207, 1208, 2528, 2600]
        var rng = SplitMix64(seed: 0xBA7C_0003)
        var packetsCompared = 0
        for impl in MultiHash.Implementation.allCases where MultiHash.isAvailable(impl) {
            XCTAssertTrue(MultiHash.select(impl))
            for (policy, mki) in cases {
                let protector = try SRTPProtector(policy: policy)
                let keys = try SRTPSessionKeys(masterKey: rng.bytes(policy.cipher == .null ? 16 : policy.cipher.sessionKeyLength),
                                               masterSalt: rng.bytes(14), mki: mki, cipher: policy.cipher)
                for payload in payloads {
                    let count = 1 + Int(rng.next() % 40)
                    let firstSeq = UInt16(truncatingIfNeeded: 65_535 - Int(rng.next() % 40))   // may wrap inside the batch
                    packetsCompared += try compare(protector: protector, keys: keys, count: count, firstSeq: firstSeq,
                                                   initialROC: UInt32(truncatingIfNeeded: rng.next() % 3), rng: &rng,
                                                   label: "\(impl) \(policy.authentication) MKI \(mki.length) payload \(payload)",
                                                   maxPayload: 2600, payloadLength: payload)
                }
            }
        }
        XCTAssertGreaterThan(packetsCompared, 500)
    }

    /// The batch protect with its encryption, MACs and tails left to an `SRTPPendingCrypto`
    /// (replay's lanes run them outside the work turn): after `run` the same bytes, lengths,
    /// results and stream state as packet by packet, for every tag layout and the NULL cipher;
    /// with the work state's own contexts or a copy's (another thread's); with room for one
    /// group only (the rest done at once) or many; and several batches with different keys and
    /// streams left in one store and run together. Before `run` the payloads are still plain.
    func testDeferredCryptoEqualsSinglePacket() throws {
        let policies = Self.everyTagLayout
        var rng = SplitMix64(seed: 0xBA7C_0004)
        var packetsCompared = 0
        for policy in policies {
            let protector = try SRTPProtector(policy: policy)
            let mki = policy.mkiLength == 0 ? MasterKeyIdentifier.none : MasterKeyIdentifier(keyGroup: 7, keyNumber: 3, mtkID: 9)
            let keys = try SRTPSessionKeys(masterKey: rng.bytes(policy.cipher == .null ? 16 : policy.cipher.sessionKeyLength),
                                           masterSalt: rng.bytes(14), mki: mki, cipher: policy.cipher)
            let copy = keys.copy()
            for trial in 0..<12 {
                let pending = SRTPPendingCrypto(groups: trial % 3 == 0 ? 1 : 64)
                let cipherKeys: (SRTPSessionKeys) -> SRTPSessionKeys = trial % 2 == 0 ? { $0 } : { k in k === keys ? copy : k }
                packetsCompared += try compare(protector: protector, keys: keys, count: 1 + Int(rng.next() % 60),
                                               firstSeq: UInt16(truncatingIfNeeded: 65_535 - Int(rng.next() % 30)),
                                               initialROC: UInt32(truncatingIfNeeded: rng.next() % 3), rng: &rng,
                                               label: "deferred \(policy.authentication) \(policy.cipher) trial \(trial)",
                                               deferringTo: pending, cipherKeys: cipherKeys)
                XCTAssertTrue(pending.isEmpty, "run forgets its groups")
            }
        }
        // Two batches, two keys and two streams in one store, one run.
        let protector = try SRTPProtector(policy: SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80))
        let keysA = try SRTPSessionKeys(masterKey: rng.bytes(16), masterSalt: rng.bytes(14), mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: .aesCM128)
        let keysB = try SRTPSessionKeys(masterKey: rng.bytes(16), masterSalt: rng.bytes(14), mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 2), cipher: .aesCM128)
        let pending = SRTPPendingCrypto(groups: 64)
        var a = try Batch(count: 37, firstSeq: 100, maxPayload: 1400, payloadLength: nil, rng: &rng)
        var b = try Batch(count: 21, firstSeq: 65_530, maxPayload: 1400, payloadLength: nil, rng: &rng)
        defer { a.free(); b.free() }
        var streamA = SRTPSenderStream(initialROC: 0), streamB = SRTPSenderStream(initialROC: 4)
        let okA = a.slots.withUnsafeMutableBufferPointer { protector.protectRTP(batch: $0, keys: keysA, stream: &streamA, deferringCryptoTo: pending) }
        let okB = b.slots.withUnsafeMutableBufferPointer { protector.protectRTP(batch: $0, keys: keysB, stream: &streamB, deferringCryptoTo: pending) }
        XCTAssertGreaterThan(pending.groups, 2)
        XCTAssertTrue(pending.run { $0.copy() })
        packetsCompared += a.verify(protector: protector, keys: keysA, initialROC: 0, protected: okA, stream: streamA, label: "store A")
        packetsCompared += b.verify(protector: protector, keys: keysB, initialROC: 4, protected: okB, stream: streamB, label: "store B")
        XCTAssertGreaterThan(packetsCompared, 1000)
    }

    /// Random packets in two copies: `slots` over one for the batch path, the other protected
    /// packet by packet by `verify`.
    private struct Batch {
        let stride: Int
        let batchStorage: UnsafeMutableRawPointer
        let singleStorage: UnsafeMutableRawPointer
        var slots: [SRTPPacketSlot] = []
        var plainLengths: [Int] = []   // the batch overwrites each slot's length
        /// Each packet as it was before protection (deferral checks).
        var plain: [[UInt8]] = []

        init(count: Int, firstSeq: UInt16, maxPayload: Int, payloadLength: Int?, rng: inout SplitMix64) throws {
            stride = maxPayload + 200
            batchStorage = .allocate(byteCount: stride * count, alignment: 64)
            singleStorage = .allocate(byteCount: stride * count, alignment: 64)
            for i in 0..<count {
                let seq = firstSeq &+ UInt16(i)
                let r = rng.next() % 20
                var packet = rtpPacket(seq: seq, payload: rng.bytes(payloadLength ?? Int(rng.next() % UInt64(maxPayload))))
                var capacity = stride
                if r == 0 { packet = Array(packet.prefix(5)) }              // malformed: shorter than a header
                if r == 1 { capacity = packet.count + 1 }                    // too little tailroom for MKI and tag
                // Odd offsets: packets need not be aligned.
                let offset = Int(rng.next() % 16)
                for storage in [batchStorage, singleStorage] {
                    packet.withUnsafeBytes { p in
                        if let src = p.baseAddress { (storage + i * stride + offset).copyMemory(from: src, byteCount: packet.count) }
                    }
                }
                plainLengths.append(packet.count)
                plain.append(packet)
                slots.append(SRTPPacketSlot(bytes: batchStorage + i * stride + offset, length: packet.count,
                                            capacity: min(capacity, stride - offset)))
            }
        }

        func free() { batchStorage.deallocate(); singleStorage.deallocate() }

        /// Protects the second copy packet by packet and checks the batch's slots against it;
        /// returns how many were compared.
        func verify(protector: SRTPProtector, keys: SRTPSessionKeys, initialROC: UInt32, protected: Int,
                    stream batchStream: SRTPSenderStream, label: String) -> Int {
            var singleStream = SRTPSenderStream(initialROC: initialROC)
            var expectedProtected = 0
            for (i, slot) in slots.enumerated() {
                let packet = singleStorage + (slot.bytes - batchStorage)
                let plainLength = plainLengths[i]
                var single: Result<Int, SRTPError>
                do throws(SRTPError) {
                    single = .success(try protector.protectRTP(packet, length: plainLength, capacity: slot.capacity, keys: keys, stream: &singleStream))
                } catch {
                    single = .failure(error)
                }
                switch single {
                case .success(let n):
                    expectedProtected += 1
                    XCTAssertNil(slot.error, label)
                    XCTAssertEqual(slot.length, n, label)
                    XCTAssertEqual(Array(UnsafeRawBufferPointer(start: slot.bytes, count: slot.length)),
                                   Array(UnsafeRawBufferPointer(start: packet, count: n)), "\(label) packet \(i)")
                case .failure(let e):
                    XCTAssertEqual(slot.error, e, label)
                }
            }
            XCTAssertEqual(protected, expectedProtected, label)
            XCTAssertEqual(batchStream, singleStream, label)
            return slots.count
        }
    }

    /// Protects `count` random packets both ways (of `payloadLength` payload bytes each, or
    /// random lengths below `maxPayload`); returns how many were compared. With `pending`, the
    /// batch path defers its crypto there and `run` does it (with `cipherKeys`) before the check;
    /// the first protected packet's payload must still be plain in between.
    private func compare(protector: SRTPProtector, keys: SRTPSessionKeys, count: Int, firstSeq: UInt16, initialROC: UInt32,
                         rng: inout SplitMix64, label: String, maxPayload: Int = 1400, payloadLength: Int? = nil,
                         deferringTo pending: SRTPPendingCrypto? = nil,
                         cipherKeys: (SRTPSessionKeys) -> SRTPSessionKeys = { $0 }) throws -> Int {
        var batch = try Batch(count: count, firstSeq: firstSeq, maxPayload: maxPayload, payloadLength: payloadLength, rng: &rng)
        defer { batch.free() }
        var batchStream = SRTPSenderStream(initialROC: initialROC)
        let protected = batch.slots.withUnsafeMutableBufferPointer {
            protector.protectRTP(batch: $0, keys: keys, stream: &batchStream, deferringCryptoTo: pending)
        }
        if let pending {
            // The first packet laid out is in the first group, which the store always has room
            // for: its payload (after the 12-octet header of `rtpPacket`) is still in the clear.
            if let i = batch.slots.firstIndex(where: { $0.error == nil }), protector.policy.cipher != .null, batch.plain[i].count > 12 {
                XCTAssertEqual(Array(UnsafeRawBufferPointer(start: batch.slots[i].bytes + 12, count: batch.plain[i].count - 12)),
                               Array(batch.plain[i][12...]), "\(label): encrypted before run")
            }
            XCTAssertTrue(pending.run(cipherKeys: cipherKeys), label)
        }
        return batch.verify(protector: protector, keys: keys, initialROC: initialROC, protected: protected, stream: batchStream, label: label)
    }
}

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

    func testBatchEqualsSinglePacketForRandomBatches() throws {
        let policies: [SRTPPolicy] = [
            SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80),
            SRTPPolicy(cipher: .aesCM256, authentication: .hmacSHA1_32),
            SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 3),
            SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 4),
            SRTPPolicy(cipher: .aesCM192, authentication: .rccm3, rocTransmissionRate: 2),
            SRTPPolicy(cipher: .null, authentication: .hmacSHA1_80, mkiLength: 0),
        ]
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

    /// Protects `count` random packets both ways (of `payloadLength` payload bytes each, or
    /// random lengths below `maxPayload`); returns how many were compared.
    private func compare(protector: SRTPProtector, keys: SRTPSessionKeys, count: Int, firstSeq: UInt16, initialROC: UInt32,
                         rng: inout SplitMix64, label: String, maxPayload: Int = 1400, payloadLength: Int? = nil) throws -> Int {
        let stride = maxPayload + 200
        let batchStorage = UnsafeMutableRawPointer.allocate(byteCount: stride * count, alignment: 64)
        let singleStorage = UnsafeMutableRawPointer.allocate(byteCount: stride * count, alignment: 64)
        defer { batchStorage.deallocate(); singleStorage.deallocate() }
        var slots: [SRTPPacketSlot] = []
        var plainLengths: [Int] = []   // the batch overwrites each slot's length
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
            slots.append(SRTPPacketSlot(bytes: batchStorage + i * stride + offset, length: packet.count,
                                        capacity: min(capacity, stride - offset)))
        }
        var batchStream = SRTPSenderStream(initialROC: initialROC)
        var singleStream = SRTPSenderStream(initialROC: initialROC)
        let protected = slots.withUnsafeMutableBufferPointer { protector.protectRTP(batch: $0, keys: keys, stream: &batchStream) }
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
        return count
    }
}

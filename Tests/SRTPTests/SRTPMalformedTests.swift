import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

/// Malformed packets return typed errors (offset + rule), never trap.
final class SRTPMalformedTests: XCTestCase {
    let keys = { () -> SRTPSessionKeys in
        // Fixed test key; the values do not matter here.
        (try? SRTPSessionKeys(masterKey: [UInt8](repeating: 1, count: 16), masterSalt: [UInt8](repeating: 2, count: 14),
                              mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: .aesCM128))!
    }()

    func protect(_ bytes: [UInt8], capacity extra: Int = 40) -> SRTPError? {
        var buffer = bytes + [UInt8](repeating: 0, count: extra)
        var stream = SRTPSenderStream()
        guard let protector = try? SRTPProtector(policy: SRTPPolicy()) else { return .cryptoFailure }
        return buffer.withUnsafeMutableBytes { b -> SRTPError? in
            do throws(SRTPError) {
                _ = try protector.protectRTP(b.baseAddress!, length: bytes.count, capacity: b.count, keys: keys, stream: &stream)
                return nil
            } catch { return error }
        }
    }

    func testTooShort() {
        XCTAssertEqual(protect([0x80, 0x60, 0, 1]), .packetTooShort(length: 4, minimum: 12))
        XCTAssertEqual(protect([]), .packetTooShort(length: 0, minimum: 12))
    }

    func testVersionNotTwo() {
        var p = rtpPacket(seq: 1, payload: [1, 2, 3])
        p[0] = 0x40
        XCTAssertEqual(protect(p), .unsupportedVersion(1))
        XCTAssertEqual(protect(p)?.offset, 0)
    }

    func testCSRCCountRunsPastEnd() {
        var p = rtpPacket(seq: 1, payload: [1, 2, 3, 4])
        p[0] = 0x80 | 0x0F   // 15 CSRCs announced, none present
        XCTAssertEqual(protect(p), .csrcListOverrun(csrcCount: 15, length: 16))
    }

    func testHeaderExtensionRunsPastEnd() {
        var p = rtpPacket(seq: 1, payload: [], extensionWords: [1])
        p[15] = 9   // claims 9 words
        XCTAssertEqual(protect(p), .headerExtensionOverrun(offset: 12, extensionLength: 9, length: 20))
        var q = rtpPacket(seq: 1, payload: [])
        q[0] |= 0x10   // X set, but no room for the extension header
        XCTAssertEqual(protect(q), .headerExtensionOverrun(offset: 12, extensionLength: 0, length: 12))
    }

    func testPaddingLongerThanPayload() {
        var p = rtpPacket(seq: 1, payload: [1, 2, 3, 4])
        p[0] |= 0x20
        p[p.count - 1] = 9
        XCTAssertEqual(protect(p), .paddingOverrun(padCount: 9, payloadLength: 4))
        p[p.count - 1] = 0
        XCTAssertEqual(protect(p), .paddingOverrun(padCount: 0, payloadLength: 4))
    }

    func testNoTailroom() {
        let p = rtpPacket(seq: 1, payload: [1, 2, 3, 4])
        XCTAssertEqual(protect(p, capacity: 5), .insufficientTailroom(needed: p.count + 6 + 14, capacity: p.count + 5))
    }

    func testUnknownMKIAtReceiver() throws {
        let policy = SRTPPolicy(authentication: .hmacSHA1_80)
        var p = rtpPacket(seq: 1, payload: [1, 2, 3, 4])
        var s = SRTPSenderStream()
        try SRTPProtector(policy: policy).protectRTP(&p, keys: keys, stream: &s)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try SRTPSessionKeys(masterKey: [UInt8](repeating: 1, count: 16), masterSalt: [UInt8](repeating: 2, count: 14),
                                                mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 2), cipher: .aesCM128))
        XCTAssertThrowsError(try receiver.unprotectRTP(&p)) { e in
            XCTAssertEqual(e as? SRTPError, .unknownMKI(offset: 16))
            XCTAssertTrue((e as? SRTPError)?.rule.contains("MKI") ?? false)
        }
    }

    func testRTCPRejects() throws {
        var stream = SRTCPSenderStream()
        let protector = try SRTPProtector(policy: SRTPPolicy())
        var short: [UInt8] = [0x80, 200, 0, 1]
        XCTAssertThrowsError(try protector.protectRTCP(&short, keys: keys, stream: &stream)) { XCTAssertEqual($0 as? SRTPError, .packetTooShort(length: 4, minimum: 8)) }
        var rtpLike = rtpPacket(seq: 1, payload: [])   // PT 96 is not RTCP
        XCTAssertThrowsError(try protector.protectRTCP(&rtpLike, keys: keys, stream: &stream)) { XCTAssertEqual($0 as? SRTPError, .invalidRTCPHeader(offset: 1)) }
        var exhausted = SRTCPSenderStream(firstIndex: 0x7FFF_FFFF)
        var sr = rtcpSenderReport()
        XCTAssertNoThrow(try protector.protectRTCP(&sr, keys: keys, stream: &exhausted))
        var sr2 = rtcpSenderReport()
        XCTAssertThrowsError(try protector.protectRTCP(&sr2, keys: keys, stream: &exhausted)) { XCTAssertEqual($0 as? SRTPError, .srtcpIndexExhausted) }
    }

    /// Random garbage and truncations at the receiver: typed errors only, state untouched.
    func testReceiverSurvivesGarbage() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 4)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(keys)
        var rng = SplitMix64(seed: 3)
        var valid = rtpPacket(seq: 8, payload: rng.bytes(40))
        var s = SRTPSenderStream()
        try SRTPProtector(policy: policy).protectRTP(&valid, keys: keys.copy(), stream: &s)
        var rejected = 0
        for i in 0..<20_000 {
            var p: [UInt8]
            switch i % 3 {
            case 0: p = rng.bytes(Int(rng.next() % 80))
            case 1: p = Array(valid.prefix(Int(rng.next() % UInt64(valid.count))))
            default:
                p = valid
                p[Int(rng.next() % UInt64(p.count))] ^= UInt8(1 << (rng.next() % 8))
            }
            do { try receiver.unprotectRTP(&p) } catch { rejected += 1 }
            var q = p
            do { try receiver.unprotectRTCP(&q) } catch { }
        }
        XCTAssertEqual(rejected, 20_000)
        XCTAssertNil(receiver.rolloverState(ssrc: 0x1234_5678))
    }
}

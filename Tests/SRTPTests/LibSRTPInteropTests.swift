import CLibSRTP
import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

/// Interop with Debian's libsrtp2 (cisco/libsrtp 2.5, crypto from NSS): an independent
/// implementation. Both directions, with the 6-octet MBMS MKI, SRTCP with E = 0 and E = 1,
/// and across a ROC wrap. libsrtp has no RFC 4771 support, so ROC-carrying packets are fed
/// to it with the 4 ROC octets removed (`rfc4771.md` 5.1).
final class LibSRTPInteropTests: XCTestCase {
    let mtk: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }
    let salt: [UInt8] = (0..<14).map { UInt8(0xB0 + $0) }
    let mki = MasterKeyIdentifier(keyGroup: 0x0001, keyNumber: 0x0002, mtkID: 0x0005)
    let ssrc: UInt32 = 0x1234_5678

    /// A libsrtp session (one SSRC, one master key with the MKI).
    final class LibSRTP {
        var session: srtp_t?
        init(inbound: Bool, ssrc: UInt32, key: [UInt8], salt: [UInt8], mki: [UInt8], encryptRTP: Bool, encryptRTCP: Bool) throws {
            let material = key + salt
            let rc = material.withUnsafeBufferPointer { m in
                mki.withUnsafeBufferPointer { k in
                    mbms_libsrtp_create(&session, inbound ? 1 : 0, ssrc, m.baseAddress, Int32(key.count),
                                        k.baseAddress, Int32(mki.count), encryptRTP ? 1 : 0, encryptRTCP ? 1 : 0)
                }
            }
            guard rc == 0 else { throw NSError(domain: "libsrtp", code: Int(rc)) }
        }
        deinit { if let session { srtp_dealloc(session) } }

        func setROC(_ ssrc: UInt32, _ roc: UInt32) { _ = srtp_set_stream_roc(session, ssrc, roc) }

        /// Returns libsrtp's status and the resulting bytes.
        func run(_ packet: [UInt8], _ op: (srtp_t?, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32) -> (Int32, [UInt8]) {
            var buffer = packet + [UInt8](repeating: 0, count: 64)
            var len = Int32(packet.count)
            let rc = buffer.withUnsafeMutableBytes { op(session, $0.baseAddress!, &len) }
            return (rc, Array(buffer.prefix(Int(max(len, 0)))))
        }
        func unprotect(_ p: [UInt8]) -> (Int32, [UInt8]) { run(p) { mbms_libsrtp_unprotect($0, $1, $2, 1) } }
        func protect(_ p: [UInt8]) -> (Int32, [UInt8]) { run(p) { mbms_libsrtp_protect($0, $1, $2, 1) } }
        func unprotectRTCP(_ p: [UInt8]) -> (Int32, [UInt8]) { run(p) { mbms_libsrtp_unprotect_rtcp($0, $1, $2, 1) } }
        func protectRTCP(_ p: [UInt8]) -> (Int32, [UInt8]) { run(p) { mbms_libsrtp_protect_rtcp($0, $1, $2, 1) } }
    }

    func keys() throws -> SRTPSessionKeys { try SRTPSessionKeys(masterKey: mtk, masterSalt: salt, mki: mki, cipher: .aesCM128) }

    /// Removes the RFC 4771 ROC octets (right after the MKI) from a ROC-carrying packet.
    func stripROC(_ p: [UInt8], macLength: Int = 10) -> [UInt8] {
        let rocStart = p.count - macLength - 4
        return Array(p[..<rocStart] + p[(rocStart + 4)...])
    }

    /// Our SRTP (each auth mode libsrtp can check), unprotected by libsrtp, across a ROC wrap.
    func testLibSRTPUnprotectsOurSRTPAcrossROCWrap() throws {
        for (auth, rate) in [(SRTPAuthentication.hmacSHA1_80, UInt16(1)), (.rccm2, 1), (.rccm2, 16), (.rccm1, 1)] {
            let policy = SRTPPolicy(authentication: auth, rocTransmissionRate: rate)
            let protector = try SRTPProtector(policy: policy)
            let k = try keys()
            let peer = try LibSRTP(inbound: true, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: true)
            var stream = SRTPSenderStream()
            var rng = SplitMix64(seed: 42)
            var seq: UInt16 = 65_000
            var checked = 0
            for _ in 0..<1_200 {   // 65000 ... 65535, 0 ... 663: one ROC wrap
                let plain = rtpPacket(seq: seq, ssrc: ssrc, payload: rng.bytes(Int(rng.next() % 200)))
                var packet = plain
                try protector.protectRTP(&packet, keys: k, stream: &stream)
                let carries = auth.carriesROC && seq % rate == 0
                let forLibSRTP = carries ? stripROC(packet) : packet
                let (rc, back) = peer.unprotect(forLibSRTP)
                XCTAssertEqual(rc, 0, "\(auth) R=\(rate) seq \(seq)")
                XCTAssertEqual(back, plain, "\(auth) R=\(rate) seq \(seq)")
                if rc != 0 { break }
                checked += 1
                seq &+= 1
            }
            XCTAssertEqual(checked, 1_200)
            XCTAssertEqual(stream.rollover.roc, 1)
        }
    }

    /// RCCm1 non-carrying packets have no tag: libsrtp cannot check them (rfc4771.md 5.1),
    /// so with R = 1 every packet carries (above); here RCCm2 R = 64 non-carrying packets
    /// are standard RFC 3711 packets.
    func testLibSRTPProtectsAndWeUnprotectAcrossROCWrap() throws {
        let policy = SRTPPolicy(authentication: .hmacSHA1_80)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try keys())
        let peer = try LibSRTP(inbound: false, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: true)
        var rng = SplitMix64(seed: 7)
        var seq: UInt16 = 65_400
        for _ in 0..<400 {
            let plain = rtpPacket(seq: seq, ssrc: ssrc, payload: rng.bytes(1 + Int(rng.next() % 300)))
            let (rc, protected) = peer.protect(plain)
            XCTAssertEqual(rc, 0)
            var back = protected
            let info = try receiver.unprotectRTP(&back)
            XCTAssertEqual(back, plain)
            XCTAssertEqual(info.mki, mki)
            seq &+= 1
        }
        XCTAssertEqual(receiver.rolloverState(ssrc: ssrc)?.roc, 1)
    }

    func testSRTCPBothWaysWithEncryptionOnAndOff() throws {
        for encrypt in [true, false] {
            let policy = SRTPPolicy(authentication: .rccm2, srtcpEncryption: encrypt)
            let protector = try SRTPProtector(policy: policy)
            let k = try keys()
            let libIn = try LibSRTP(inbound: true, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: encrypt)
            let libOut = try LibSRTP(inbound: false, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: encrypt)
            let receiver = try SRTPReceiver(policy: policy)
            try receiver.addKey(try keys())
            var stream = SRTCPSenderStream()
            for i in 0..<50 {
                let plain = rtcpSenderReport(ssrc: ssrc, packets: UInt32(i))
                // Ours -> libsrtp.
                var packet = plain
                try protector.protectRTCP(&packet, keys: k, stream: &stream)
                XCTAssertEqual(packet[packet.count - 20] & 0x80, encrypt ? 0x80 : 0, "E bit")
                let (rc, back) = libIn.unprotectRTCP(packet)
                XCTAssertEqual(rc, 0, "E=\(encrypt) #\(i)")
                XCTAssertEqual(back, plain)
                // libsrtp -> ours.
                let (rc2, theirs) = libOut.protectRTCP(plain)
                XCTAssertEqual(rc2, 0)
                var mine = theirs
                let info = try receiver.unprotectRTCP(&mine)
                XCTAssertEqual(mine, plain)
                XCTAssertEqual(info.encrypted, encrypt)
                XCTAssertEqual(info.mki, mki)
            }
        }
    }

    /// A 70 000-packet stream across the ROC wrap, AES-128, every packet through libsrtp.
    func testSeventyThousandPacketStreamThroughLibSRTP() throws {
        let policy = SRTPPolicy(authentication: .hmacSHA1_80)
        let protector = try SRTPProtector(policy: policy)
        let k = try keys()
        let peer = try LibSRTP(inbound: true, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: true)
        var stream = SRTPSenderStream()
        var seq: UInt16 = 1_000
        var failures = 0
        var buffer = [UInt8](repeating: 0, count: 256)
        let payload = [UInt8](repeating: 0x5A, count: 160)
        for _ in 0..<70_000 {
            let plain = rtpPacket(seq: seq, ssrc: ssrc, payload: payload)
            buffer.replaceSubrange(0..<plain.count, with: plain)
            let n = try buffer.withUnsafeMutableBytes { (b) throws(SRTPError) -> Int in
                try protector.protectRTP(b.baseAddress!, length: plain.count, capacity: b.count, keys: k, stream: &stream)
            }
            let (rc, back) = peer.unprotect(Array(buffer[0..<n]))
            if rc != 0 || back != plain { failures += 1 }
            seq &+= 1
        }
        XCTAssertEqual(failures, 0)
        XCTAssertEqual(stream.rollover.roc, 1)
    }

    /// libsrtp rejects a tampered packet of ours and a packet with another MKI: the interop is not vacuous.
    func testLibSRTPRejectsTamperedAndForeignMKI() throws {
        let protector = try SRTPProtector(policy: SRTPPolicy(authentication: .hmacSHA1_80))
        var stream = SRTPSenderStream()
        var packet = rtpPacket(seq: 10, ssrc: ssrc, payload: [1, 2, 3, 4])
        try protector.protectRTP(&packet, keys: try keys(), stream: &stream)
        var tampered = packet
        tampered[13] ^= 1
        let peer = try LibSRTP(inbound: true, ssrc: ssrc, key: mtk, salt: salt, mki: mki.bytes, encryptRTP: true, encryptRTCP: true)
        XCTAssertNotEqual(peer.unprotect(tampered).0, 0)
        let other = try SRTPSessionKeys(masterKey: mtk, masterSalt: salt, mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 6), cipher: .aesCM128)
        var p2 = rtpPacket(seq: 11, ssrc: ssrc, payload: [1, 2, 3, 4])
        try protector.protectRTP(&p2, keys: other, stream: &stream)
        XCTAssertNotEqual(peer.unprotect(p2).0, 0)
    }
}

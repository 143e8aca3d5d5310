import CLibSRTP
import CryptoCore
import Foundation
import SRTP
import XCTest
@testable import Receiver

/// Debian's libsrtp2 (an independent SRTP implementation) authenticates and decrypts the
/// protected capture's SRTP and SRTCP using only the MTKs and salts of the receive report.
/// libsrtp has no RFC 4771: the 4 ROC octets of ROC-carrying packets are removed first
/// (`rfc4771.md` 5.1), and each libsrtp session (one master key = one MTK) is told the ROC
/// once, from the SEQ wraps the test counts itself.
final class LibSRTPReportTests: XCTestCase {
    /// libsrtp is initialised once per process, but the CLibSRTP shim keeps its "initialised"
    /// flag per test module, and a second `srtp_init` fails (duplicate debug module). So this
    /// test creates its sessions itself and, when it did the initialisation, shuts libsrtp down
    /// again at the end, leaving the SRTPTests' shim free to initialise it.
    nonisolated(unsafe) static var ownsInit = false

    override class func setUp() {
        super.setUp()
        ownsInit = srtp_init() == srtp_err_status_ok
    }

    override class func tearDown() {
        if ownsInit { _ = srtp_shutdown() }
        super.tearDown()
    }

    final class Session {
        var session: srtp_t?
        init(ssrc: UInt32, key: [UInt8], salt: [UInt8], mki: [UInt8], encryptRTCP: Bool) throws {
            var material = key + salt
            var mkiBytes = mki
            var policy = srtp_policy_t()
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            if encryptRTCP { srtp_crypto_policy_set_rtcp_default(&policy.rtcp) } else { srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtcp) }
            policy.ssrc.type = ssrc_specific
            policy.ssrc.value = ssrc
            policy.window_size = 1024
            policy.allow_repeat_tx = 1
            let rc = material.withUnsafeMutableBufferPointer { m in
                mkiBytes.withUnsafeMutableBufferPointer { k -> srtp_err_status_t in
                    var master = srtp_master_key_t(key: m.baseAddress, mki_id: k.baseAddress, mki_size: UInt32(k.count))
                    return withUnsafeMutablePointer(to: &master) { mp -> srtp_err_status_t in
                        var list: [UnsafeMutablePointer<srtp_master_key_t>?] = [mp]
                        return list.withUnsafeMutableBufferPointer { l -> srtp_err_status_t in
                            policy.keys = l.baseAddress
                            policy.num_master_keys = 1
                            return srtp_create(&session, &policy)
                        }
                    }
                }
            }
            guard rc == srtp_err_status_ok else { throw NSError(domain: "libsrtp", code: Int(rc.rawValue)) }
        }
        deinit { if let session { srtp_dealloc(session) } }

        func run(_ packet: [UInt8], rtcp: Bool) -> (Int32, [UInt8]) {
            var buffer = packet + [UInt8](repeating: 0, count: 64)
            var len = Int32(packet.count)
            let rc = buffer.withUnsafeMutableBytes { b -> Int32 in
                guard let base = b.baseAddress else { return -1 }
                return rtcp ? mbms_libsrtp_unprotect_rtcp(session, base, &len, 1) : mbms_libsrtp_unprotect(session, base, &len, 1)
            }
            return (rc, Array(buffer.prefix(Int(max(len, 0)))))
        }
    }

    func testLibSRTPDecryptsWithTheReportedMTKs() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let rate: UInt16 = 16
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: rate))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("libsrtp.pcap"))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: nil, keys: keys)
        XCTAssertTrue(report.ok, report.summary())
        // Round trip the report through JSON: only what `--report` writes is used below.
        let decoded = try JSONDecoder().decode(ReceiveReport.self, from: Data(try report.json().utf8))
        let mtks = Dictionary(decoded.mtks.map { ($0.mki, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(mtks.count, 2)

        var sessions: [String: Session] = [:]
        var roc: UInt32 = 0
        var lastSeq: UInt16? = nil
        var n = 0
        var rtpChecked = 0, rtcpChecked = 0
        for f in try readFrames(cap.path).frames {
            guard let u = f.udp, u.destination.port != 2269, var p = f.payload else { continue }
            let expected = cap.fixturePayloads[n]
            n += 1
            let rtcp = (200...204).contains(p[1])
            let ssrc = rtcp ? be32(p, 4) : be32(p, 8)
            var mkiOffset = p.count - 10 - 6
            if !rtcp {
                let seq = UInt16(p[2]) << 8 | UInt16(p[3])
                if let last = lastSeq, seq < last, last - seq > 0x8000 { roc += 1 }
                lastSeq = seq
                if seq % rate == 0 {
                    mkiOffset = p.count - 14 - 6
                    p.removeSubrange((mkiOffset + 6)..<(mkiOffset + 10))
                }
            }
            let mki = Hex.encode(p[mkiOffset..<mkiOffset + 6])
            let m = try XCTUnwrap(mtks[mki], "MKI \(mki) not in the report")
            let session: Session
            if let s = sessions[mki] {
                session = s
            } else {
                session = try Session(ssrc: ssrc, key: try Hex.decode(m.mtk), salt: try Hex.decode(m.salt), mki: try Hex.decode(m.mki), encryptRTCP: true)
                _ = srtp_set_stream_roc(session.session, ssrc, roc)
                sessions[mki] = session
            }
            let (rc, plain) = session.run(p, rtcp: rtcp)
            XCTAssertEqual(rc, 0, "libsrtp status for packet \(n) (\(rtcp ? "SRTCP" : "SRTP"))")
            XCTAssertTrue(plain == expected, "libsrtp plaintext of packet \(n) differs from the fixture")
            if rtcp { rtcpChecked += 1 } else { rtpChecked += 1 }
        }
        XCTAssertEqual(rtpChecked, cap.rtpCount)
        XCTAssertGreaterThan(rtcpChecked, 0)
        XCTAssertEqual(roc, 1)
    }
}

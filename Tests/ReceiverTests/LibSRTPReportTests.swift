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
/// One libsrtp session: one SSRC, one master key (an MTK) with its MKI.
///
/// libsrtp is initialised once per process, but the CLibSRTP shim keeps its "initialised"
/// flag per test module, and a second `srtp_init` fails (duplicate debug module). So these
/// tests create their sessions themselves, and a test class that did the initialisation
/// shuts libsrtp down again in its tearDown (`LibSRTPScope`), leaving SRTPTests' shim free to
/// initialise it.
enum LibSRTPScope {
    nonisolated(unsafe) static var owned = false
    static func begin() { owned = srtp_init() == srtp_err_status_ok }
    static func end() { if owned { _ = srtp_shutdown(); owned = false } }
}

final class LibSRTPSession {
    var session: srtp_t?
    init(ssrc: UInt32, key: [UInt8], salt: [UInt8], mki: [UInt8], encryptRTCP: Bool) throws {
        var material = key + salt
        var mkiBytes = mki
        var policy = srtp_policy_t()
        if key.count == 32 {
            srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtp)
            if encryptRTCP { srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp) } else { srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtcp) }
        } else {
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            if encryptRTCP { srtp_crypto_policy_set_rtcp_default(&policy.rtcp) } else { srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtcp) }
        }
        policy.ssrc.type = ssrc_specific
        policy.ssrc.value = ssrc
        policy.window_size = 1024
        policy.allow_repeat_tx = 1
        var session: srtp_t? = nil
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
        self.session = session
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

/// The SRTP layout of one RTP session (RTP port; RTCP on port + 1), as the test configured it.
struct SessionLayout {
    var rocRate: UInt16
    /// RFC 4771 modes carry the ROC on SEQ mod R == 0 (RCCm1 with R = 1 and RCCm2 only: libsrtp
    /// needs a MAC on every packet).
    var rcc: Bool
    var srtcpEncryption: Bool
}

/// Feeds every SRTP/SRTCP packet of `protected` to libsrtp, with the session keyed only by the
/// MTK and salt the report gives for the packet's MKI; checks the plaintext against `expected`
/// (the input's UDP payloads, MIKEY left out). Returns the numbers of SRTP and SRTCP packets checked.
func checkWithLibSRTP(protected: String, report: ReceiveReport, expected: [[UInt8]],
                      layouts: [UInt16: SessionLayout], file: StaticString = #filePath, line: UInt = #line) throws -> (rtp: Int, rtcp: Int) {
    let decoded = try JSONDecoder().decode(ReceiveReport.self, from: Data(try report.json().utf8))
    let mtks = Dictionary(decoded.mtks.map { ($0.mki, $0) }, uniquingKeysWith: { a, _ in a })
    var sessions: [String: LibSRTPSession] = [:]
    var roc: [UInt32: UInt32] = [:]
    var lastSeq: [UInt32: UInt16] = [:]
    var n = 0
    var checked = (rtp: 0, rtcp: 0)
    for f in try readFrames(protected).frames {
        guard let u = f.udp, u.destination.port != 2269, var p = f.payload else { continue }
        let expectedPayload = n < expected.count ? expected[n] : []
        n += 1
        let rtcp = (200...204).contains(p[1])
        let port = rtcp ? u.destination.port &- 1 : u.destination.port
        guard let layout = layouts[port] else { XCTFail("no layout for port \(port)", file: file, line: line); continue }
        let ssrc = rtcp ? be32(p, 4) : be32(p, 8)
        var mkiOffset = p.count - 10 - 6
        if !rtcp {
            let seq = UInt16(p[2]) << 8 | UInt16(p[3])
            if let last = lastSeq[ssrc], seq < last, last - seq > 0x8000 { roc[ssrc, default: 0] += 1 }
            lastSeq[ssrc] = seq
            if layout.rcc && seq % layout.rocRate == 0 {
                mkiOffset = p.count - 14 - 6
                p.removeSubrange((mkiOffset + 6)..<(mkiOffset + 10))
            }
        }
        let mki = Hex.encode(p[mkiOffset..<mkiOffset + 6])
        guard let m = mtks[mki] else { XCTFail("MKI \(mki) not in the report", file: file, line: line); continue }
        let key = "\(mki)/\(ssrc)"
        let session: LibSRTPSession
        if let s = sessions[key] {
            session = s
        } else {
            session = try LibSRTPSession(ssrc: ssrc, key: try Hex.decode(m.mtk), salt: try Hex.decode(m.salt), mki: try Hex.decode(m.mki),
                                         encryptRTCP: layout.srtcpEncryption)
            _ = srtp_set_stream_roc(session.session, ssrc, roc[ssrc, default: 0])
            sessions[key] = session
        }
        let (rc, plain) = session.run(p, rtcp: rtcp)
        XCTAssertEqual(rc, 0, "libsrtp status for packet \(n) (\(rtcp ? "SRTCP" : "SRTP") to port \(u.destination.port))", file: file, line: line)
        XCTAssertTrue(plain == expectedPayload, "libsrtp plaintext of packet \(n) differs from the input", file: file, line: line)
        if rtcp { checked.rtcp += 1 } else { checked.rtp += 1 }
    }
    return checked
}

final class LibSRTPReportTests: XCTestCase {
    override class func setUp() { super.setUp(); LibSRTPScope.begin() }
    override class func tearDown() { LibSRTPScope.end(); super.tearDown() }

    func testLibSRTPDecryptsWithTheReportedMTKs() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 16))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("libsrtp.pcap"))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: nil, keys: keys)
        XCTAssertTrue(report.ok, report.summary())
        XCTAssertEqual(report.mtks.count, 2)
        let checked = try checkWithLibSRTP(protected: cap.path, report: report, expected: cap.fixturePayloads,
                                           layouts: [5010: SessionLayout(rocRate: 16, rcc: true, srtcpEncryption: true)])
        XCTAssertEqual(checked.rtp, cap.rtpCount)
        XCTAssertGreaterThan(checked.rtcp, 0)
    }
}

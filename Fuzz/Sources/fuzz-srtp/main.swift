// Fuzz target 1 (issue 19 finding 12): the receiver side of SRTP/SRTCP — RTP/RTCP header
// parsing, SRTP/SRTCP unprotect (MKI key choice, RFC 4771 ROC handling, replay windows,
// padding), the sender-side header checks, a protect → unprotect round trip, and the
// inspector's dissection of whole frames.
//
// Input: one configuration octet, then records [kind][u16 length][bytes]:
//   configuration: bits 0-2 policy (`policies`), bit 3 RFC 4771 late join, bits 4-5 extra keys.
//   kind & 0x80: the bytes are a frame for `CaptureInspector.inspect` (link type = kind & 0x0F);
//   else kind & 3: 0 SRTP and 1 SRTCP to unprotect, 2 RTP and 3 RTCP plaintext to protect and
//   unprotect again (the round trip must give back the plaintext).
import CryptoCore
import Foundation
import FuzzSupport
import PacketIO
import Receiver
import SRTP

/// Test keys: RFC 3711 B.3, RFC 6188 7.2 (AES-256) and 7.4 (AES-192) master keys and salts
/// (../shared/spec/vectors/srtp.json).
let b3Key = hexBytes("E1F97A0D3E018BE0D64FA32C06DE4139"), b3Salt = hexBytes("0EC675AD498AFEEBB6960B3AABE6")
let k256 = hexBytes("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"), s256 = hexBytes("3b04803de51ee7c96423ab5b78d2")
let k192 = hexBytes("73edc66c4fa15776fb57f9505c17136550ffda71f3e8e5f1"), s192 = hexBytes("c8522f3acd4ce86d5add78edbb11")
let mbmsMKI = MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1)

struct FuzzPolicy {
    var policy: SRTPPolicy
    var keys: [SRTPSessionKeys]   // [0] is the MKI the seeds use; the others are other MTKs
}

func makeKeys(_ key: [UInt8], _ salt: [UInt8], _ cipher: SRTPCipher, mkiLength: Int) -> [SRTPSessionKeys] {
    let mkis: [MasterKeyIdentifier]
    switch mkiLength {
    case 0: mkis = [.none]
    case 4: mkis = [MasterKeyIdentifier(bytes: hexBytes("e1f97a0d")), MasterKeyIdentifier(bytes: [0, 0, 0, 1]),
                    MasterKeyIdentifier(bytes: [0xff, 0xff, 0xff, 0xff]), MasterKeyIdentifier(bytes: [0, 0, 0, 0])]
    default: mkis = [mbmsMKI, MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 2),
                     MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 1), MasterKeyIdentifier(keyGroup: 2, keyNumber: 1, mtkID: 0xfffe)]
    }
    return mkis.enumerated().compactMap { i, mki in
        var k = key
        if i > 0 { k[0] ^= UInt8(i) }   // another MTK under another MKI
        // NULL cipher: k_a is still derived with the AES-CM PRF from the master key (srtp.json notes).
        return try? SRTPSessionKeys(masterKey: k, masterSalt: salt, mki: mki, cipher: cipher)
    }
}

let policies: [FuzzPolicy] = {
    var out: [FuzzPolicy] = []
    func add(_ p: SRTPPolicy, _ key: [UInt8], _ salt: [UInt8]) {
        out.append(FuzzPolicy(policy: p, keys: makeKeys(key, salt, p.cipher, mkiLength: p.mkiLength)))
    }
    add(.rfc3711Default(mkiLength: 0), b3Key, b3Salt)                                   // 0: libsrtp reference packets
    add(.rfc3711Default(mkiLength: 4), b3Key, b3Salt)                                   // 1: the same with MKI e1f97a0d
    add(SRTPPolicy(cipher: .null, authentication: .hmacSHA1_80, srtcpEncryption: false, mkiLength: 0), b3Key, b3Salt)   // 2: NULL cipher
    add(SRTPPolicy(), b3Key, b3Salt)                                                     // 3: MBMS default: RCCm2, R = 1, MKI 6
    add(SRTPPolicy(authentication: .rccm1, rocTransmissionRate: 4), b3Key, b3Salt)        // 4: RCCm1, R = 4
    add(SRTPPolicy(authentication: .rccm3, rocTransmissionRate: 1), b3Key, b3Salt)        // 5: RCCm3: no MAC, decrypts anything
    add(SRTPPolicy(cipher: .aesCM256, authentication: .hmacSHA1_32, srtcpEncryption: false), k256, s256)              // 6
    add(SRTPPolicy(cipher: .aesCM192, authentication: .rccm2, rocTransmissionRate: 3, rccm2NonCarryingTagLength: 14), k192, s192) // 7
    for (i, p) in out.enumerated() where p.keys.count != (p.policy.mkiLength == 0 ? 1 : 4) { FuzzMain.fail("policy \(i): test keys did not derive") }
    return out
}()

var scratch = [UInt8](repeating: 0, count: 70_000)

@inline(__always)
func withScratch<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer, Int, Int) -> R) -> R {
    if scratch.count < bytes.count + 64 { scratch = [UInt8](repeating: 0, count: bytes.count + 64) }
    return scratch.withUnsafeMutableBytes { b in
        bytes.withUnsafeBytes { b.copyMemory(from: $0) }
        return body(b.baseAddress!, bytes.count, b.count)
    }
}

let inspector = CaptureInspector()
/// FUZZ_DEBUG=1: print what each record did (reproducing a finding by hand).
let debug = ProcessInfo.processInfo.environment["FUZZ_DEBUG"] != nil
func say(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func fuzzOne(_ input: [UInt8]) {
    var r = FuzzReader(input)
    let cfg = r.byte()
    let fp = policies[Int(cfg & 7)]
    let extra = Int(cfg >> 4) & 3
    guard let receiver = try? SRTPReceiver(policy: fp.policy, keyCapacity: 4, lateJoin: cfg & 8 != 0),
          let roundTrip = try? SRTPReceiver(policy: fp.policy, keyCapacity: 4, lateJoin: false),
          let protector = try? SRTPProtector(policy: fp.policy) else { FuzzMain.fail("policy \(cfg & 7) does not validate") }
    for k in fp.keys.prefix(1 + extra).reversed() {
        do { try receiver.addKey(k) } catch { FuzzMain.fail("addKey: \(error)") }
    }
    do { try roundTrip.addKey(fp.keys[0]) } catch { FuzzMain.fail("addKey: \(error)") }
    // Sender state is per SSRC (SRTPSenderStream: one stream), as in the gateway.
    var rtpStreams: [UInt32: SRTPSenderStream] = [:]
    var rtcpStreams: [UInt32: SRTCPSenderStream] = [:]
    var firstRTP = true, firstRTCP = true
    var rocAhead: Set<UInt32> = []
    var records = 0
    while !r.isAtEnd, records < 64 {
        records += 1
        let kind = r.byte()
        let bytes = r.chunk()
        if kind & 0x80 != 0 {
            let all = LinkType.allCases
            let link = all[Int(kind & 0x0F) % all.count]
            bytes.withUnsafeBytes { b in _ = inspector.inspect(frame: records, time: 0, bytes: b, linkType: link) }
            continue
        }
        switch kind & 3 {
        case 0:
            _ = withScratch(bytes) { p, n, _ in
                _ = try? RTPPacketChecks.checkRTP(p, length: n)
                return try? receiver.unprotectRTP(p, length: n)
            }
        case 1:
            _ = withScratch(bytes) { p, n, _ in
                _ = try? RTPPacketChecks.checkRTCP(p, length: n)
                return try? receiver.unprotectRTCP(p, length: n)
            }
        case 2:
            // Protect, then unprotect with an independent receiver: the plaintext must come back.
            withScratch(bytes) { p, n, cap in
                guard (try? RTPPacketChecks.checkRTP(p, length: n)) != nil else { return }
                let total: Int
                let ssrc = UInt32(bytes[8]) << 24 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 8 | UInt32(bytes[11])
                var rtpStream = rtpStreams[ssrc] ?? SRTPSenderStream(initialROC: fp.policy.initialROC)
                defer { rtpStreams[ssrc] = rtpStream }
                let jumpsBefore = rtpStream.rocJumps
                do { total = try protector.protectRTP(p, length: n, capacity: cap, keys: fp.keys[0], stream: &rtpStream) } catch { return }
                // A SEQ that goes back makes the sender start the next ROC (SRTPSenderStream, by
                // design): receivers learn it from the next authenticated ROC-carrying packet.
                // Until then a packet without MAC decrypts with the old ROC and cannot be checked:
                // RCCm1 off the R grid, and RCCm3 always — an R-4 receiver (rfc4771.md) never
                // adopts an unauthenticated ROC that differs from its estimate, so after a jump
                // an RCCm3 stream stays undecryptable (reported, not a decoder fault).
                let seq = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
                let carries = fp.policy.carriesROC(sequenceNumber: seq)
                let unauthenticated = fp.policy.authentication == .rccm3 || (!carries && fp.policy.authentication == .rccm1)
                if rtpStream.rocJumps != jumpsBefore { rocAhead.insert(ssrc) }
                if debug { say("RTP seq \(seq) sender ROC \(rtpStream.rollover.roc) jumps \(rtpStream.rocJumps) carries \(carries) protected \(total)") }
                do {
                    let info = try roundTrip.unprotectRTP(p, length: total)
                    if debug { say("  receiver: index \(info.index) ROC state \(String(describing: roundTrip.rolloverState(ssrc: ssrc)))") }
                    if carries && fp.policy.authentication != .rccm3 { rocAhead.remove(ssrc) }
                    if unauthenticated && rocAhead.contains(ssrc) { firstRTP = false; return }
                    guard info.length == n, UnsafeRawBufferPointer(start: p, count: n).elementsEqual(bytes) else {
                        FuzzMain.fail("policy \(cfg & 7): SRTP round trip changed the packet (length \(n) → \(info.length))")
                    }
                } catch {
                    if debug { say("  receiver refused: \(error)") }
                    if firstRTP { FuzzMain.fail("policy \(cfg & 7): first protected RTP packet refused: \(error)") }
                }
                firstRTP = false
            }
        default:
            withScratch(bytes) { p, n, cap in
                guard (try? RTPPacketChecks.checkRTCP(p, length: n)) != nil else { return }
                let total: Int
                let ssrc = UInt32(bytes[4]) << 24 | UInt32(bytes[5]) << 16 | UInt32(bytes[6]) << 8 | UInt32(bytes[7])
                var rtcpStream = rtcpStreams[ssrc] ?? SRTCPSenderStream(firstIndex: fp.policy.firstSRTCPIndex)
                defer { rtcpStreams[ssrc] = rtcpStream }
                do { total = try protector.protectRTCP(p, length: n, capacity: cap, keys: fp.keys[0], stream: &rtcpStream) } catch { return }
                do {
                    let info = try roundTrip.unprotectRTCP(p, length: total)
                    guard info.length == n, UnsafeRawBufferPointer(start: p, count: n).elementsEqual(bytes) else {
                        FuzzMain.fail("policy \(cfg & 7): SRTCP round trip changed the packet (length \(n) → \(info.length))")
                    }
                } catch {
                    if firstRTCP { FuzzMain.fail("policy \(cfg & 7): first protected RTCP packet refused: \(error)") }
                }
                firstRTCP = false
            }
        }
    }
}

// MARK: - Seeds

func makeSeeds(_ w: SeedWriter) throws {
    // The libsrtp reference packets (srtp.json non_rfc_reference_vectors) under their policies.
    let v = try SeedWriter.json("srtp.json")
    let ref = (v["non_rfc_reference_vectors"] as? [String: Any]) ?? [:]
    let packets = (ref["packets"] as? [String: [String: String]]) ?? [:]
    let policyOf: [String: (UInt8, UInt8)] = [
        "srtp_aes128cm_hmacsha1_80": (0, 0), "srtp_aes128cm_hmacsha1_80_mki_e1f97a0d": (1, 0),
        "srtcp_aes128cm_hmacsha1_80_index1": (0, 1), "srtcp_aes128cm_hmacsha1_80_index1_mki_e1f97a0d": (1, 1),
        "srtp_null_cipher_hmacsha1_80": (2, 0), "srtcp_null_cipher_hmacsha1_80_index1": (2, 1),
    ]
    for (name, (policy, kind)) in policyOf.sorted(by: { $0.key < $1.key }) {
        guard let hex = packets[name]?["protected"] else { continue }
        var b = FuzzInputBuilder()
        b.byte(policy); b.byte(kind); b.chunk(hexBytes(hex))
        try w.write("vector-\(name)", b.bytes)
    }
    // Real RTP/RTCP payloads (rtp-h264-aac.pcap: video 5004/5005, audio 5006/5007), protected
    // under every policy, then the same plaintext as round-trip records, then whole frames.
    let (_, frames) = try readClassicPcap(SeedWriter.fixture("rtp-h264-aac.pcap"), limit: 400)
    var rtp: [[UInt8]] = [], rtcp: [[UInt8]] = [], rawFrames: [[UInt8]] = []
    for (_, _, f) in frames {
        guard let (port, payload) = udpPayload(ethernetFrame: f) else { continue }
        if port % 2 == 0, rtp.count < 6, payload.count < 400 || rtp.count < 2 { rtp.append(payload); if rawFrames.count < 3 { rawFrames.append(f) } }
        if port % 2 == 1, rtcp.count < 2 { rtcp.append(payload); rawFrames.append(f) }
    }
    for (i, fp) in policies.enumerated() {
        guard let protector = try? SRTPProtector(policy: fp.policy) else { continue }
        var stream = SRTPSenderStream(initialROC: fp.policy.initialROC)
        var cstream = SRTCPSenderStream(firstIndex: fp.policy.firstSRTCPIndex)
        var b = FuzzInputBuilder()
        b.byte(UInt8(i))
        for p in rtp.prefix(4) {
            var q = Array(p.prefix(300))
            if (try? protector.protectRTP(&q, keys: fp.keys[0], stream: &stream)) != nil { b.byte(0); b.chunk(q) }
        }
        for p in rtcp.prefix(1) {
            var q = p
            if (try? protector.protectRTCP(&q, keys: fp.keys[0], stream: &cstream)) != nil { b.byte(1); b.chunk(q) }
        }
        try w.write("protected-policy\(i)", b.bytes)
        var t = FuzzInputBuilder()
        t.byte(UInt8(i) | 0x08)
        for p in rtp.prefix(2) { t.byte(2); t.chunk(Array(p.prefix(200))) }
        for p in rtcp.prefix(1) { t.byte(3); t.chunk(p) }
        try w.write("roundtrip-policy\(i)", t.bytes)
    }
    var f = FuzzInputBuilder()
    f.byte(3)
    let ethernet = UInt8(LinkType.allCases.firstIndex(of: .ethernet) ?? 1)
    for fr in rawFrames { f.byte(0x80 | ethernet); f.chunk(Array(fr.prefix(600))) }
    try w.write("frames", f.bytes)
}

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)

import ArgumentParser
import CryptoCore
import Foundation
import SRTP

/// Stage-1 demo: protect and unprotect a generated RTP/RTCP stream across an MTK switch and
/// a ROC wrap, with a late-joining receiver, and show the result.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Protect a generated RTP/RTCP stream with two MTKs and receive it as a UE would.",
        discussion: """
            Generates an RTP stream whose sequence number wraps (so the ROC becomes 1), plus an
            RTCP sender report every 100 packets. The sender switches from MTK 1 to MTK 2 half way.
            A receiver that holds both MTKs joins a few packets late and must learn the ROC from
            an RFC 4771 ROC-carrying packet first. Every packet it accepts is compared with the
            original. Needs no input files.

            Example: mbms-gateway demo --packets 5000 --auth rccm2 --roc-rate 16
            """)

    @Option(help: "Number of RTP packets to generate.")
    var packets: Int = 3000

    @Option(help: "SRTP cipher: aes-128-cm, aes-192-cm, aes-256-cm or null.")
    var cipher: String = "aes-128-cm"

    @Option(help: "SRTP integrity: rccm1, rccm2, rccm3 (RFC 4771) or hmac-sha1-80, hmac-sha1-32.")
    var auth: String = "rccm2"

    @Option(name: .customLong("roc-rate"), help: "RFC 4771 R: packets with SEQ mod R == 0 carry the ROC.")
    var rocRate: UInt16 = 64

    @Option(name: .customLong("late-join"), help: "How many packets the receiver misses at the start.")
    var lateJoin: Int = 10

    @Flag(name: .customLong("no-srtcp-encryption"), help: "Send SRTCP with E = 0 (integrity only).")
    var noSRTCPEncryption = false

    func validate() throws {
        guard packets >= 2, packets <= 10_000_000 else { throw ValidationError("--packets must be 2...10000000 (got \(packets))") }
        guard SRTPCipher(rawValue: cipher) != nil else {
            throw ValidationError("--cipher \(cipher) is not one of \(SRTPCipher.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard SRTPAuthentication(rawValue: auth) != nil else {
            throw ValidationError("--auth \(auth) is not one of \(SRTPAuthentication.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard rocRate >= 1 else { throw ValidationError("--roc-rate must be at least 1 (RFC 4771: R = 0 is undefined)") }
        guard lateJoin >= 0, lateJoin < packets else { throw ValidationError("--late-join must be 0...\(packets - 1)") }
    }

    func run() throws {
        try checkRuntime()
        let cipher = SRTPCipher(rawValue: self.cipher) ?? .aesCM128
        let auth = SRTPAuthentication(rawValue: self.auth) ?? .rccm2
        let policy = SRTPPolicy(cipher: cipher, authentication: auth, rocTransmissionRate: rocRate, srtcpEncryption: !noSRTCPEncryption)
        let keyLength = cipher == .null ? 16 : cipher.sessionKeyLength

        // Two MTKs under MSK (Key Group 1, Key Number 1), each with a 112-bit salt (TS 33.246 6.4.5.3).
        let mtks = try (1...2).map { id in
            (id: UInt16(id), key: try SecretBytes.random(count: keyLength), salt: try SecureRandom.bytes(count: 14))
        }
        let senderKeys = try mtks.map { try SRTPSessionKeys(masterKey: $0.key, masterSalt: $0.salt, mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: $0.id), cipher: cipher) }
        let protector = try SRTPProtector(policy: policy)
        let receiver = try SRTPReceiver(policy: policy, keyCapacity: 2, lateJoin: true)
        for m in mtks {
            try receiver.addKey(try SRTPSessionKeys(masterKey: m.key, masterSalt: m.salt, mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: m.id), cipher: cipher))
        }

        var rng = SystemRandomNumberGenerator()
        let ssrc = UInt32.random(in: 1...UInt32.max, using: &rng)
        let firstSeq = UInt16(65_536 - min(packets / 2, 30_000))
        var stream = SRTPSenderStream()
        var rtcpStream = SRTCPSenderStream(firstIndex: policy.firstSRTCPIndex)

        var stats = DemoStats()
        var example: (plain: [UInt8], protected: [UInt8], seq: UInt16)? = nil
        let start = DispatchTime.now().uptimeNanoseconds
        var protectNanos: UInt64 = 0
        for n in 0..<packets {
            let seq = firstSeq &+ UInt16(truncatingIfNeeded: n)
            let keys = senderKeys[n < packets / 2 ? 0 : 1]
            let payload = (0..<Int.random(in: 160...1200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let plain = demoRTP(seq: seq, timestamp: UInt32(truncatingIfNeeded: n * 3000), ssrc: ssrc, payload: payload)
            var packet = plain
            let t0 = DispatchTime.now().uptimeNanoseconds
            try protector.protectRTP(&packet, keys: keys, stream: &stream)
            protectNanos += DispatchTime.now().uptimeNanoseconds - t0
            stats.rtpIn += 1; stats.bytesIn += plain.count; stats.bytesOut += packet.count
            if policy.carriesROC(sequenceNumber: seq) { stats.rocCarrying += 1 }
            if example == nil && seq % rocRate == 0 && auth.carriesROC { example = (plain, packet, seq) }

            if n >= lateJoin {
                do {
                    let info = try receiver.unprotectRTP(&packet)
                    stats.received[info.mki.mtkID, default: 0] += 1
                    if packet == plain { stats.identical += 1 } else { stats.mismatched += 1 }
                } catch let e {
                    stats.drops[e.reason, default: 0] += 1
                }
            }
            if n % 100 == 99 {
                let sr = demoSenderReport(ssrc: ssrc, packets: UInt32(n + 1))
                var rtcp = sr
                try protector.protectRTCP(&rtcp, keys: keys, stream: &rtcpStream)
                stats.rtcpIn += 1
                do {
                    try receiver.unprotectRTCP(&rtcp)
                    if rtcp == sr { stats.rtcpIdentical += 1 } else { stats.mismatched += 1 }
                } catch let e { stats.drops["rtcp_" + e.reason, default: 0] += 1 }
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        stats.print(policy: policy, packets: packets, lateJoin: lateJoin, finalROC: stream.rollover.roc,
                    receiverROC: receiver.rolloverState(ssrc: ssrc)?.roc, elapsed: elapsed,
                    protectNanosPerPacket: Double(protectNanos) / Double(packets), example: example)
        if stats.mismatched > 0 || stats.identical + (stats.drops["roc_unknown"] ?? 0) != packets - lateJoin {
            throw ExitCode.failure
        }
    }
}

struct DemoStats {
    var rtpIn = 0, rtcpIn = 0, bytesIn = 0, bytesOut = 0, rocCarrying = 0
    var identical = 0, rtcpIdentical = 0, mismatched = 0
    var received: [UInt16: Int] = [:]
    var drops: [String: Int] = [:]

    func print(policy: SRTPPolicy, packets: Int, lateJoin: Int, finalROC: UInt32, receiverROC: UInt32?, elapsed: Double,
               protectNanosPerPacket: Double, example: (plain: [UInt8], protected: [UInt8], seq: UInt16)?) {
        Swift.print("mbms-gateway demo: \(packets) RTP packets, SRTP \(policy.cipher.rawValue) + \(policy.authentication.rawValue) (R = \(policy.rocTransmissionRate)), MKI = MSK ID || MTK ID, SRTCP E = \(policy.srtcpEncryption ? 1 : 0)")
        Swift.print("")
        Swift.print("sender")
        Swift.print("  RTP packets protected      \(rtpIn)   (\(bytesIn) -> \(bytesOut) bytes, +\(String(format: "%.1f", Double(bytesOut - bytesIn) / Double(max(rtpIn, 1)))) per packet)")
        Swift.print("  ROC-carrying packets       \(rocCarrying)")
        Swift.print("  RTCP sender reports        \(rtcpIn)")
        Swift.print("  MTK switch                 MTK 1 -> MTK 2 after packet \(packets / 2)")
        Swift.print("  ROC at the end             \(finalROC)  (SEQ wrapped)")
        Swift.print("  protect cost               \(String(format: "%.0f", protectNanosPerPacket)) ns/packet (this build; see `make bench` for release figures)")
        Swift.print("")
        Swift.print("receiver (joined \(lateJoin) packets late, holds MTK 1 and MTK 2)")
        for (id, n) in received.sorted(by: { $0.key < $1.key }) { Swift.print("  decrypted with MTK \(id)      \(n)") }
        Swift.print("  byte-identical to input    \(identical) RTP, \(rtcpIdentical) RTCP")
        Swift.print("  mismatches                 \(mismatched)")
        for (reason, n) in drops.sorted(by: { $0.key < $1.key }) {
            let why = reason == "roc_unknown" ? "  (before the first ROC-carrying packet: RFC 4771 late join)" : ""
            Swift.print("  dropped: \(reason)\(String(repeating: " ", count: max(1, 18 - reason.count)))\(n)\(why)")
        }
        Swift.print("  ROC learned                \(receiverROC.map(String.init) ?? "none")")
        if let ex = example {
            let p = ex.protected, plainCount = ex.plain.count
            let mkiEnd = plainCount + policy.mkiLength
            Swift.print("")
            Swift.print("one ROC-carrying packet (SEQ \(ex.seq)), protected:")
            Swift.print("  RTP header   \(Hex.encode(p[0..<12]))")
            Swift.print("  ciphertext   \(Hex.encode(p[12..<min(28, plainCount)]))… (\(plainCount - 12) bytes)")
            Swift.print("  MKI          \(Hex.encode(p[plainCount..<mkiEnd]))  (Key Group 1, Key Number 1, MTK ID)")
            Swift.print("  ROC          \(Hex.encode(p[mkiEnd..<mkiEnd + 4]))")
            if p.count > mkiEnd + 4 { Swift.print("  MAC          \(Hex.encode(p[(mkiEnd + 4)...]))") }
        }
        Swift.print("")
        let ok = mismatched == 0
        Swift.print(ok ? "OK: every packet the receiver accepted matched the input (\(String(format: "%.2f", elapsed)) s)." : "FAILED: \(mismatched) packets differ.")
    }
}

func demoRTP(seq: UInt16, timestamp: UInt32, ssrc: UInt32, payload: [UInt8]) -> [UInt8] {
    var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF)]
    for v in [timestamp, ssrc] { p += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return p + payload
}

func demoSenderReport(ssrc: UInt32, packets: UInt32) -> [UInt8] {
    var p: [UInt8] = [0x80, 200, 0, 6]
    for v in [ssrc, 0xE1A1_B2C3, 0xD4E5_F6A7, packets &* 3000, packets, packets &* 600] {
        p += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }
    return p
}

// srtp-bench: SRTP protect cost on one core, ours against Debian's libsrtp2 and the OpenSSL
// floor (AES-128-CTR + HMAC-SHA1 called directly), all measured in the same run over the
// same bytes. AES-128-CM + HMAC-SHA1-80 + 6-octet MKI, 160- and 1200-octet payloads.
// "mbms-gateway batch" protects 32 packets (own buffers) per protectRTP(batch:) call, its
// MACs computed by the multi-message HMAC-SHA1 (CMultiHash), its payloads encrypted by one
// batched AES-CM call per group of 16 packets (CBatchAES). "AES-CM batch only" is that encryption alone
// (same 32 buffers, one AESCounterModeBatch.xorKeystreams call), to split the batch row into
// AES and HMAC.
//
//   swift build -c release --product srtp-bench && .build/release/srtp-bench [--json] [--rounds N]
//
// Method: every implementation protects the same packet buffer in place, SEQ advancing per
// packet; rounds of N packets alternate between implementations; the median round counts.
import CBenchFloor
import CLibSRTP
import CryptoCore
import Foundation
import SRTP

struct Options {
    var json = false
    var rounds = 15
    var seconds = 0.0
    init(_ args: [String]) {
        var i = 1
        while i < args.count {
            switch args[i] {
            case "--json": json = true
            case "--rounds": i += 1; rounds = max(3, Int(args[safe: i] ?? "") ?? rounds)
            case "-h", "--help":
                print("usage: srtp-bench [--json] [--rounds N]\n  Prints ns/packet and payload Gbit/s for our SRTP protect, Debian libsrtp2 and the OpenSSL floor at 160 and 1200 bytes.")
                exit(0)
            default:
                FileHandle.standardError.write("srtp-bench: unknown option \(args[i]) (try --help)\n".data(using: .utf8)!)
                exit(2)
            }
            i += 1
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

let options = Options(CommandLine.arguments)
do { try OpenSSLRuntime.check() } catch {
    FileHandle.standardError.write("srtp-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}

let masterKey: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }
let masterSalt: [UInt8] = (0..<14).map { UInt8(0xB0 + $0) }
let mki = MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 5)
let ssrc: UInt32 = 0x1234_5678

/// Times `body` over `count` packets, returns ns per packet.
@inline(never)
func measure(_ count: Int, _ body: (Int) -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    for i in 0..<count { body(i) }
    let end = DispatchTime.now().uptimeNanoseconds
    return Double(end - start) / Double(count)
}

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

final class PacketBuffer {
    let base: UnsafeMutableRawPointer
    let capacity = 2048
    let plainLength: Int
    init(payload: Int) {
        let b = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
        b.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 2048)
        let header: [UInt8] = [0x80, 0x60, 0, 0, 0, 0, 0x0A, 0, 0x12, 0x34, 0x56, 0x78]
        header.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: 12) }
        base = b
        plainLength = 12 + payload
    }
    @inline(__always) func setSequence(_ seq: Int) {
        base.storeBytes(of: UInt16(truncatingIfNeeded: seq).bigEndian, toByteOffset: 2, as: UInt16.self)
    }
    deinit { base.deallocate() }
}

struct Row: Codable {
    var payloadBytes: Int
    var implementation: String
    var nsPerPacket: Double
    var packetsPerSecond: Double
    var payloadGbitPerSecond: Double
}

var rows: [Row] = []
var ratios: [String: Double] = [:]

// Session keys derived the RFC 3711 way, so the floor hashes with the same k_a and encrypts with k_e.
let prf = try AESCounterMode(key: masterKey)
let ke = try SRTPKeyDerivation.derive(prf: prf, masterSalt: masterSalt, label: .srtpEncryption, length: 16)
let ka = try SRTPKeyDerivation.derive(prf: prf, masterSalt: masterSalt, label: .srtpAuthentication, length: 20)
let ks = try SRTPKeyDerivation.derive(prf: prf, masterSalt: masterSalt, label: .srtpSalt, length: 14)

for payload in [160, 1200] {
    let packets = payload <= 200 ? 40_000 : 12_000
    let buffer = PacketBuffer(payload: payload)

    // Ours.
    let protector = try SRTPProtector(policy: SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80))
    let keys = try SRTPSessionKeys(masterKey: masterKey, masterSalt: masterSalt, mki: mki, cipher: .aesCM128)
    var stream = SRTPSenderStream()
    var seq = 0
    let ours: () -> Double = {
        measure(packets) { _ in
            seq &+= 1
            buffer.setSequence(seq)
            _ = try? protector.protectRTP(buffer.base, length: buffer.plainLength, capacity: buffer.capacity, keys: keys, stream: &stream)
        }
    }

    // Ours, batch path: `batchSize` packets (own buffers) per protectRTP(batch:) call, so the
    // MACs run as multi-message HMAC-SHA1 (interleaved SHA-NI lanes where available).
    let batchSize = 32
    let batchBuffers = (0..<batchSize).map { _ in PacketBuffer(payload: payload) }
    let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: batchSize)
    for (i, b) in batchBuffers.enumerated() {
        slots.initializeElement(at: i, to: SRTPPacketSlot(bytes: b.base, length: b.plainLength, capacity: b.capacity))
    }
    var batchStream = SRTPSenderStream()
    var bseq = 0
    let oursBatch: () -> Double = {
        measure(packets / batchSize) { _ in
            for i in 0..<batchSize {
                bseq &+= 1
                batchBuffers[i].setSequence(bseq)
                slots[i].length = batchBuffers[i].plainLength
            }
            protector.protectRTP(batch: slots, keys: keys, stream: &batchStream)
        } / Double(batchSize)
    }

    // The batch path's encryption alone: one xorKeystreams call over the 32 payloads.
    let batchAES = try AESCounterModeBatch(key: ke)
    let aesIVs = UnsafeMutableRawPointer.allocate(byteCount: 16 * batchSize, alignment: 16)
    for i in 0..<(16 * batchSize) { aesIVs.storeBytes(of: UInt8(truncatingIfNeeded: i % 16 < 14 ? 0xA0 + i % 16 : 0), toByteOffset: i, as: UInt8.self) }
    let aesData = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: batchSize)
    let aesLengths = UnsafeMutablePointer<Int>.allocate(capacity: batchSize)
    for i in 0..<batchSize { aesData[i] = batchBuffers[i].base + 12; aesLengths[i] = payload }
    let aesOnly: () -> Double = {
        measure(packets / batchSize) { _ in
            _ = batchAES.xorKeystreams(count: batchSize, ivs: aesIVs, data: aesData, lengths: aesLengths)
        } / Double(batchSize)
    }

    // Debian libsrtp2.
    var session: srtp_t? = nil
    let material = masterKey + masterSalt
    let rc = material.withUnsafeBufferPointer { m in mki.bytes.withUnsafeBufferPointer { k in
        mbms_libsrtp_create(&session, 0, ssrc, m.baseAddress, 16, k.baseAddress, 6, 1, 1)
    } }
    guard rc == 0 else { fatalError("libsrtp2 srtp_create failed: \(rc)") }
    var lseq = 0
    let libsrtp: () -> Double = {
        measure(packets) { _ in
            lseq &+= 1
            buffer.setSequence(lseq)
            var len = Int32(buffer.plainLength)
            _ = mbms_libsrtp_protect(session, buffer.base, &len, 1)
        }
    }

    // OpenSSL floor, both HMAC re-init styles; the faster is the floor.
    let salt = UnsafeMutablePointer<UInt8>.allocate(capacity: 14)
    salt.initialize(from: ks, count: 14)
    func floorRunner(_ mode: Int32) -> () -> Double {
        let f = ke.withUnsafeBufferPointer { e in ka.withUnsafeBufferPointer { a in bench_floor_new(e.baseAddress, a.baseAddress, mode) } }
        var fseq = 0
        return {
            measure(packets) { _ in
                fseq &+= 1
                buffer.setSequence(fseq)
                _ = bench_floor_protect(f, buffer.base.assumingMemoryBound(to: UInt8.self), buffer.plainLength, 12, salt, 0)
            }
        }
    }
    let floorHMACCTX = floorRunner(0)
    let floorEVPMAC = floorRunner(1)
    let floorPrecomputed = floorRunner(2)

    let floors = ["OpenSSL floor (HMAC_CTX)", "OpenSSL floor (EVP_MAC)", "OpenSSL floor (C, SHA1 states)"]
    let runners: [(String, () -> Double)] = [("mbms-gateway", ours), ("mbms-gateway batch", oursBatch),
                                             ("AES-CM batch only", aesOnly),
                                             ("libsrtp2 (Debian, NSS)", libsrtp),
                                             (floors[0], floorHMACCTX), (floors[1], floorEVPMAC), (floors[2], floorPrecomputed)]
    var results: [String: [Double]] = [:]
    for (name, _) in runners { results[name] = [] }
    for (_, r) in runners { _ = r() }   // warm-up
    for _ in 0..<options.rounds { for (name, r) in runners { results[name]!.append(r()) } }
    srtp_dealloc(session)

    for (name, _) in runners {
        let ns = median(results[name]!)
        rows.append(Row(payloadBytes: payload, implementation: name, nsPerPacket: ns, packetsPerSecond: 1e9 / ns,
                        payloadGbitPerSecond: Double(payload * 8) / ns))
    }
    let oursNs = median(results["mbms-gateway"]!)
    let floorNs = floors.map { median(results[$0]!) }.min()!
    // The floor is the fastest of the three ways to drive OpenSSL for the same bytes.
    ratios["\(payload)B ours / OpenSSL floor (fastest)"] = oursNs / floorNs
    ratios["\(payload)B libsrtp2 / ours (speed-up)"] = median(results["libsrtp2 (Debian, NSS)"]!) / oursNs
    ratios["\(payload)B ours single / ours batch (speed-up)"] = oursNs / median(results["mbms-gateway batch"]!)
}

let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
let model = cpu.split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? "unknown"
let flagsLine = cpu.split(separator: "\n").first { $0.hasPrefix("flags") }.map(String.init) ?? ""
let interesting = ["aes", "sha_ni", "avx2", "avx512f", "vaes"].filter { flagsLine.split(separator: " ").contains(Substring($0)) }
let libsrtpVersion = String(cString: srtp_get_version_string())

if options.json {
    struct Report: Codable { var cpu: String; var cpuFlags: [String]; var openssl: String; var libsrtp: String; var multiHash: String; var rows: [Row]; var ratios: [String: Double] }
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try enc.encode(Report(cpu: model, cpuFlags: interesting, openssl: OpenSSLRuntime.versionText, libsrtp: libsrtpVersion, multiHash: MultiHash.implementation, rows: rows, ratios: ratios))
    print(String(decoding: data, as: UTF8.self))
} else {
    print("SRTP protect, one core: AES-128-CM + HMAC-SHA1-80 + 6-octet MKI (release build, median of \(options.rounds) rounds)")
    print("CPU: \(model) [\(interesting.joined(separator: " "))]   \(OpenSSLRuntime.versionText)   \(libsrtpVersion)")
    print("multi-message HMAC-SHA1 (batch path): \(MultiHash.implementation) (MBMS_MULTIHASH=scalar|openssl|shani to force)")
    print("batched AES-CM (batch path): \(AESCounterModeBatch.implementationName) (MBMS_BATCHAES=openssl|vaes to force)")
    print("")
    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
    print(pad("payload", 9) + pad("implementation", 32) + lpad("ns/packet", 11) + lpad("Mpkt/s", 9) + lpad("Gbit/s", 9))
    for r in rows {
        print(pad("\(r.payloadBytes) B", 9) + pad(r.implementation, 32) + lpad(String(format: "%.1f", r.nsPerPacket), 11)
              + lpad(String(format: "%.2f", r.packetsPerSecond / 1e6), 9) + lpad(String(format: "%.2f", r.payloadGbitPerSecond), 9))
    }
    print("")
    for (k, v) in ratios.sorted(by: { $0.key < $1.key }) { print(pad(k, 44) + String(format: "%.3f", v)) }
}

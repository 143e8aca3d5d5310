import Foundation
import XCTest

/// Paths to `../shared` (beside the checkout) and JSON helpers.
enum Shared {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    static func url(_ relative: String) throws -> URL {
        let url = root.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (tests expect ../shared beside the checkout)")
        }
        return url
    }

    static func bytes(_ relative: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: try url(relative))) }

    static func json(_ relative: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: try url(relative))) as? [String: Any])
    }
}

func hexDecode(_ s: String) throws -> [UInt8] {
    let u = Array(s.utf8)
    guard u.count % 2 == 0 else { throw XCTSkip("odd hex") }
    func nibble(_ c: UInt8) throws -> UInt8 {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: throw NSError(domain: "hex", code: Int(c))
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count { out.append(try nibble(u[i]) << 4 | nibble(u[i + 1])); i += 2 }
    return out
}

func hexEncode<C: Collection<UInt8>>(_ b: C) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// A minimal classic-pcap reader, test-only (the product reads pcaps through libpcap in
/// PacketIO): link types Ethernet (1, with 802.1Q tags), raw IP (101, 12, 14), Linux cooked
/// SLL (113) and SLL2 (276); IPv4 (unfragmented) and IPv6 (no extension headers); UDP.
struct TestPcap {
    struct Datagram {
        var time: Double
        var destinationAddress: [UInt8]
        var destinationPort: UInt16
        var sourcePort: UInt16
        var payload: [UInt8]
    }

    enum Failure: Error { case badMagic, truncated(Int) }

    static func udpDatagrams(_ file: [UInt8]) throws -> [Datagram] {
        guard file.count >= 24 else { throw Failure.truncated(0) }
        let magic = UInt32(file[0]) << 24 | UInt32(file[1]) << 16 | UInt32(file[2]) << 8 | UInt32(file[3])
        let littleEndian: Bool
        let nanoseconds: Bool
        switch magic {
        case 0xA1B2_C3D4: littleEndian = false; nanoseconds = false
        case 0xD4C3_B2A1: littleEndian = true; nanoseconds = false
        case 0xA1B2_3C4D: littleEndian = false; nanoseconds = true
        case 0x4D3C_B2A1: littleEndian = true; nanoseconds = true
        default: throw Failure.badMagic
        }
        func u32(_ at: Int) -> UInt32 {
            let b = (UInt32(file[at]), UInt32(file[at + 1]), UInt32(file[at + 2]), UInt32(file[at + 3]))
            return littleEndian ? b.3 << 24 | b.2 << 16 | b.1 << 8 | b.0 : b.0 << 24 | b.1 << 16 | b.2 << 8 | b.3
        }
        let linkType = u32(20) & 0x0FFF_FFFF
        var out: [Datagram] = []
        var at = 24
        while at + 16 <= file.count {
            let seconds = Double(u32(at)), fraction = Double(u32(at + 4))
            let length = Int(u32(at + 8))
            guard at + 16 + length <= file.count else { throw Failure.truncated(at) }
            let frame = Array(file[(at + 16)..<(at + 16 + length)])
            at += 16 + length
            let time = seconds + fraction / (nanoseconds ? 1e9 : 1e6)
            if let d = datagram(frame, linkType: linkType, time: time) { out.append(d) }
        }
        return out
    }

    static func be16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }

    static func datagram(_ f: [UInt8], linkType: UInt32, time: Double) -> Datagram? {
        var ipStart: Int
        var etherType: Int
        switch linkType {
        case 1:
            guard f.count >= 14 else { return nil }
            ipStart = 14; etherType = be16(f, 12)
            while etherType == 0x8100 || etherType == 0x88A8, f.count >= ipStart + 4 { etherType = be16(f, ipStart + 2); ipStart += 4 }
        case 113:
            guard f.count >= 16 else { return nil }
            ipStart = 16; etherType = be16(f, 14)
        case 276:
            guard f.count >= 20 else { return nil }
            ipStart = 20; etherType = be16(f, 0)
        case 101, 12, 14:
            guard let first = f.first else { return nil }
            ipStart = 0; etherType = first >> 4 == 6 ? 0x86DD : 0x0800
        default:
            return nil
        }
        var udpStart: Int, udpEnd: Int, destination: [UInt8]
        if etherType == 0x0800 {
            guard f.count >= ipStart + 20, f[ipStart] >> 4 == 4, f[ipStart + 9] == 17 else { return nil }
            let ihl = Int(f[ipStart] & 0x0F) * 4
            let total = be16(f, ipStart + 2)
            guard be16(f, ipStart + 6) & 0x3FFF == 0 else { return nil } // fragments not handled
            udpStart = ipStart + ihl; udpEnd = min(f.count, ipStart + total)
            destination = Array(f[(ipStart + 16)..<(ipStart + 20)])
        } else if etherType == 0x86DD {
            guard f.count >= ipStart + 40, f[ipStart + 6] == 17 else { return nil }
            udpStart = ipStart + 40; udpEnd = min(f.count, udpStart + be16(f, ipStart + 4))
            destination = Array(f[(ipStart + 24)..<(ipStart + 40)])
        } else {
            return nil
        }
        guard udpEnd >= udpStart + 8 else { return nil }
        let udpLength = be16(f, udpStart + 4)
        guard udpLength >= 8, udpStart + udpLength <= udpEnd else { return nil }
        return Datagram(time: time, destinationAddress: destination, destinationPort: UInt16(be16(f, udpStart + 2)),
                        sourcePort: UInt16(be16(f, udpStart)), payload: Array(f[(udpStart + 8)..<(udpStart + udpLength)]))
    }
}

/// FIPS 180-4 SHA-256, test-only, to check the hashes the fixtures README lists.
enum TestSHA256 {
    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]

    static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var m = message
        let bitLength = UInt64(message.count) * 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for s in stride(from: 56, through: 0, by: -8) { m.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(s))) }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: m.count, by: 64) {
            for t in 0..<16 {
                let i = chunk + 4 * t
                w[t] = UInt32(m[i]) << 24 | UInt32(m[i + 1]) << 16 | UInt32(m[i + 2]) << 8 | UInt32(m[i + 3])
            }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0..<64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[t] &+ w[t]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }
}

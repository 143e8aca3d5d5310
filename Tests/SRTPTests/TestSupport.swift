import CryptoCore
import Foundation
import TestSupport
import XCTest
@testable import SRTP

/// Shared helpers: vector loading from ../shared/spec/vectors, RTP/RTCP packet builders.
enum Fixtures {
    static let sharedDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    static func json(_ name: String) throws -> [String: Any] {
        let url = sharedDirectory.appendingPathComponent("spec/vectors/\(name)")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (tests expect ../shared beside the checkout)")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw XCTSkip("\(name) is not a JSON object")
        }
        return object
    }
}

func hex(_ s: String) throws -> [UInt8] { try Hex.decode(s) }

extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) throws -> [String: Any] { try XCTUnwrap(self[key] as? [String: Any], "missing \(key)") }
    func string(_ key: String) throws -> String { try XCTUnwrap(self[key] as? String, "missing \(key)") }
    func bytes(_ key: String) throws -> [UInt8] { try Hex.decode(try string(key)) }
}

/// Builds an RTP packet (RFC 3550 5.1).
func rtpPacket(seq: UInt16, ssrc: UInt32 = 0x1234_5678, timestamp: UInt32 = 0x0000_0A00, payloadType: UInt8 = 96,
               payload: [UInt8], csrcs: [UInt32] = [], extensionWords: [UInt32]? = nil, padding: Int = 0) -> [UInt8] {
    var p: [UInt8] = []
    let x: UInt8 = extensionWords == nil ? 0 : 0x10
    let pBit: UInt8 = padding > 0 ? 0x20 : 0
    p.append(0x80 | pBit | x | UInt8(csrcs.count))
    p.append(payloadType & 0x7F)
    p += [UInt8(seq >> 8), UInt8(seq & 0xFF)]
    p += be32(timestamp) + be32(ssrc)
    for c in csrcs { p += be32(c) }
    if let words = extensionWords {
        p += [0xBE, 0xDE, UInt8(words.count >> 8), UInt8(words.count & 0xFF)]
        for w in words { p += be32(w) }
    }
    p += payload
    if padding > 0 { p += [UInt8](repeating: 0, count: padding - 1) + [UInt8(padding)] }
    return p
}

/// An RTCP sender report (RFC 3550 6.4.1) with no report blocks.
func rtcpSenderReport(ssrc: UInt32 = 0x1234_5678, ntp: UInt64 = 0xE1A1_B2C3_D4E5_F6A7, rtpTime: UInt32 = 0xA00,
                      packets: UInt32 = 16, octets: UInt32 = 0x800) -> [UInt8] {
    var p: [UInt8] = [0x80, 200, 0x00, 0x06]
    p += be32(ssrc) + be32(UInt32(ntp >> 32)) + be32(UInt32(ntp & 0xFFFF_FFFF)) + be32(rtpTime) + be32(packets) + be32(octets)
    return p
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }


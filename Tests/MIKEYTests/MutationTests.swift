import CryptoCore
import TestSupport
import XCTest
@testable import MIKEY

/// 100 000 random mutations of valid messages (bit flips, truncations, length-field lies,
/// insertions) never crash, never hang, and are never accepted by the processor or the
/// BM-SC's verification check. Decodable mutants re-encode to the same bytes.
final class MutationTests: XCTestCase {
    static let seed: UInt64 = 0x3324_6_2026
    static let mutantCount = 100_000

    /// Offsets and widths of every length field in a message, found by walking the layout
    /// independently of the decoder (mikey.md sections 3-4).
    static func lengthFields(_ b: [UInt8]) -> [(offset: Int, width: Int)] {
        guard b.count >= 10 else { return [] }
        var fields: [(Int, Int)] = [(8, 1)]   // #CS
        var i = 10 + (b[9] == 0 ? 9 * Int(b[8]) : 0)
        var next = b[2]
        while next != 0, i < b.count {
            let type = next
            next = b[i]
            switch type {
            case 21: fields.append((i + 2, 2)); i += 4 + (i + 3 < b.count ? Int(b[i + 2]) << 8 | Int(b[i + 3]) : 0)
            case 5: i += 2 + (i + 1 < b.count && b[i + 1] == 2 ? 4 : 8)
            case 11: fields.append((i + 1, 1)); i += 2 + (i + 1 < b.count ? Int(b[i + 1]) : 0)
            case 6: fields.append((i + 2, 2)); i += 4 + (i + 3 < b.count ? Int(b[i + 2]) << 8 | Int(b[i + 3]) : 0)
            case 10:
                fields.append((i + 3, 2))
                let total = i + 4 < b.count ? Int(b[i + 3]) << 8 | Int(b[i + 4]) : 0
                var p = i + 5
                while p + 1 < min(i + 5 + total, b.count) { fields.append((p + 1, 1)); p += 2 + Int(b[p + 1]) }
                i += 5 + total
            case 1: fields.append((i + 2, 2)); i = b.count
            default: i = b.count
            }
        }
        return fields.filter { $0.0 + $0.1 <= b.count }
    }

    func mutate(_ original: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var m = original
        switch rng.next() % 5 {
        case 0, 1:   // 1-4 bit flips
            for _ in 0...(rng.next() % 4) {
                let bit = Int(rng.next() % UInt64(m.count * 8))
                m[bit / 8] ^= UInt8(1 << (bit % 8))
            }
        case 2:      // truncation
            m.removeLast(1 + Int(rng.next() % UInt64(m.count)))
        case 3:      // length-field lie
            let fields = Self.lengthFields(m)
            if let f = fields.isEmpty ? nil : fields[Int(rng.next() % UInt64(fields.count))] {
                var value = 0
                for k in 0..<f.width { value = value << 8 | Int(m[f.offset + k]) }
                let lie: Int
                switch rng.next() % 3 {
                case 0: lie = value + 1 + Int(rng.next() % 4)
                case 1: lie = max(0, value - 1 - Int(rng.next() % 4))
                default: lie = Int(rng.next() % (f.width == 1 ? 256 : 65536))
                }
                for k in 0..<f.width { m[f.offset + k] = UInt8((lie >> (8 * (f.width - 1 - k))) & 0xFF) }
            }
        default:     // inserted or appended random octets
            let at = Int(rng.next() % UInt64(m.count + 1))
            m.insert(contentsOf: (0...(rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
        }
        return m
    }

    func testRandomMutationsAreNeverAccepted() throws {
        let fresh = UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: Fixtures.bTID)
        var withMSK = fresh
        guard case .success = withMSK.process(try Fixtures.mskBuilder(verification: false, ts: 1).build()) else { return XCTFail() }
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.muk, csbID: Fixtures.csbMSK, rand: Fixtures.rand)
        let verification = try MSKVerificationMessage.build(csbID: Fixtures.csbMSK, timestamp: 42, nafID: Array(Fixtures.nafID.utf8),
                                                            bTID: Array(Fixtures.bTID.utf8), authenticationKey: keys.authenticationKey)
        // (bytes, UE state that accepts the original)
        let originals: [([UInt8], UEKeyProcessor?)] = [
            (try Fixtures.mskBuilder().build(), fresh),
            (try Fixtures.mskBuilder(service: .download).build(), fresh),
            (try Fixtures.mskBuilder(content: .solicitedPull, mskID: MSKID(keyGroup: 1, keyNumber: 0)).build(), fresh),
            (try Fixtures.mskBuilder(content: .invalidation(msk: Fixtures.msk, seqL: 9, seqU: 1)).build(), fresh),
            (try Fixtures.mtkBuilder().build(), withMSK),
            (try Fixtures.mtkBuilder(content: .download(mtk: Fixtures.mtk)).build(), withMSK),
            (verification, nil),
        ]
        // Sanity: every original is accepted, so rejections below are due to the mutation.
        for (bytes, state) in originals {
            if var ue = state {
                guard case .success = ue.process(bytes) else { return XCTFail("original rejected") }
            } else {
                XCTAssertEqual(verifyV(bytes), true)
            }
        }

        var rng = SplitMix64(seed: Self.seed)
        var decodable = 0
        for n in 0..<Self.mutantCount {
            let (original, state) = originals[n % originals.count]
            var mutant = mutate(original, &rng)
            while mutant == original { mutant = mutate(original, &rng) }   // e.g. a "lie" equal to the truth
            if let message = try? MIKEYDecoder.decode(mutant) {
                decodable += 1
                XCTAssertEqual(message.encode(), mutant, "mutant \(n) does not re-encode exactly")
            }
            if var ue = state {
                if case .success = ue.process(mutant) { XCTFail("mutant \(n) accepted: \(Hex.encode(mutant))") }
            }
            var anyUE = withMSK
            if case .success = anyUE.process(mutant) { XCTFail("mutant \(n) accepted by the MSK-holding UE") }
            if state == nil, verifyV(mutant) { XCTFail("verification mutant \(n) accepted") }
        }
        // The campaign must exercise both decoder rejection and the checks behind it.
        XCTAssertGreaterThan(decodable, Self.mutantCount / 10)
        XCTAssertLessThan(decodable, Self.mutantCount)
    }

    func verifyV(_ bytes: [UInt8]) -> Bool {
        if case .success = MSKVerificationMessage.verify(bytes, muk: Fixtures.muk, mskRAND: Fixtures.rand, nafID: Array(Fixtures.nafID.utf8),
                                                         bTID: Array(Fixtures.bTID.utf8), expectedCSBID: Fixtures.csbMSK,
                                                         expectedTimestamp: 42) { return true }
        return false
    }

    func testLengthFieldWalkerFindsTheExampleLengths() {
        // The walker is test code: check it against mikey.md 9.1's known layout.
        let offsets = Self.lengthFields(Fixtures.example91).map(\.offset)
        XCTAssertTrue(offsets.contains(21))    // EXT Length
        XCTAssertTrue(offsets.contains(43))    // RAND len
        XCTAssertTrue(offsets.contains(62))    // IDi len
        XCTAssertTrue(offsets.contains(82))    // IDr len
        XCTAssertTrue(offsets.contains(107))   // SP Policy param length
        XCTAssertTrue(offsets.contains(110))   // first SP param length
        XCTAssertTrue(offsets.contains(163))   // KEMAC Encr data len
    }
}

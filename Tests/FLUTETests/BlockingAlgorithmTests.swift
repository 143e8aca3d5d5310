import XCTest
@testable import FLUTE

/// RFC 5052 §9.1 partitioning against `flute.json` blocking_algorithm_examples.
final class BlockingAlgorithmTests: XCTestCase {
    func testVectorsFromFluteJSON() throws {
        let doc = try Shared.json("spec/vectors/flute.json")
        let examples = try XCTUnwrap(doc["blocking_algorithm_examples"] as? [[String: Any]])
        XCTAssertEqual(examples.count, 5)
        for ex in examples {
            let l = try XCTUnwrap(ex["L_transfer_length"] as? Int)
            let e = try XCTUnwrap(ex["E_encoding_symbol_length"] as? Int)
            let b = try XCTUnwrap(ex["B_max_source_block_length"] as? Int)
            let p = try SourceBlockPartition(transferLength: UInt64(l), encodingSymbolLength: e, maximumSourceBlockLength: b)
            let label = "L=\(l) E=\(e) B=\(b)"
            XCTAssertEqual(p.sourceSymbolCount, ex["T"] as? Int, label)
            XCTAssertEqual(p.sourceBlockCount, ex["N"] as? Int, label)
            XCTAssertEqual(p.largeBlockLength, ex["A_large"] as? Int, label)
            XCTAssertEqual(p.smallBlockLength, ex["A_small"] as? Int, label)
            XCTAssertEqual(p.largeBlockCount, ex["I"] as? Int, label)
            let blocks = try XCTUnwrap(ex["blocks"] as? [[String: Any]])
            XCTAssertEqual(blocks.count, p.sourceBlockCount)
            for block in blocks {
                let sbn = try XCTUnwrap(block["sbn"] as? Int)
                XCTAssertEqual(p.symbolCount(ofBlock: sbn), block["symbols"] as? Int, "\(label) sbn \(sbn)")
                XCTAssertEqual(Int(p.byteCount(ofBlock: sbn)), block["bytes"] as? Int, "\(label) sbn \(sbn)")
                XCTAssertEqual(Int(p.firstByte(ofBlock: sbn)), block["first_byte_offset"] as? Int, "\(label) sbn \(sbn)")
                let lastIndex = p.firstSymbol(ofBlock: sbn) + p.symbolCount(ofBlock: sbn) - 1
                XCTAssertEqual(p.byteRange(ofSymbol: lastIndex)?.count, block["last_symbol_bytes"] as? Int, "\(label) sbn \(sbn)")
            }
        }
    }

    func testFixtureFactAndEdgeCases() throws {
        // fixtures README: the 1 MiB file is 749 symbols in 12 blocks with E 1400, B 64.
        let p = try SourceBlockPartition(transferLength: 1_048_576, encodingSymbolLength: 1400, maximumSourceBlockLength: 64)
        XCTAssertEqual(p.sourceSymbolCount, 749)
        XCTAssertEqual(p.sourceBlockCount, 12)
        let empty = try SourceBlockPartition(transferLength: 0, encodingSymbolLength: 1024, maximumSourceBlockLength: 64)
        XCTAssertEqual(empty.sourceSymbolCount, 0)
        XCTAssertEqual(empty.sourceBlockCount, 0)
        XCTAssertNil(empty.symbolIndex(sourceBlockNumber: 0, encodingSymbolID: 0))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 10, encodingSymbolLength: 0, maximumSourceBlockLength: 1))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 10, encodingSymbolLength: 1, maximumSourceBlockLength: 0))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 1 << 40, encodingSymbolLength: 1, maximumSourceBlockLength: 64)) {
            guard case BlockingError.tooManySourceBlocks = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertNil(p.symbolIndex(sourceBlockNumber: 12, encodingSymbolID: 0))
        XCTAssertNil(p.symbolIndex(sourceBlockNumber: 0, encodingSymbolID: 63))
        XCTAssertEqual(p.symbolIndex(sourceBlockNumber: 11, encodingSymbolID: 61), 748)
    }
}

import Foundation
import Gateway
import KeyManagement
import SRTP
import XCTest

/// Issue 19 finding 15 (crash-restart campaign): after a restart, a process's first block of
/// the current MTK is above the last process's, and each SSRC's ROC and SRTCP index carry on
/// from one MTK to the next (one replay list per SSRC at the receiver, RFC 3711 3.3.1). The
/// next MTK's block used to start at 0 again: the stream ran past it (index_exhausted) or went
/// back, and the UE dropped every packet as too old until the ROC caught up. A later MTK's
/// block now never starts below the blocks the process holds.
final class SenderBlockRestartTests: XCTestCase {
    func testNextMTKBlockIsNeverBelowTheCurrentOneAfterARestart() throws {
        let g = try TestGateway()
        defer { try? FileManager.default.removeItem(at: g.directory) }
        let session = g.sessions[0]
        let t: Int64 = 1_790_000_005
        // The first process: current MTK's blocks at 0.
        let first = try KeySource(manager: g.manager)
        let e1 = try first.epoch(for: session, at: t)
        XCTAssertEqual(e1.keys.senderIndices.rocFloor, 0)
        // A restart within the same MTK: the new process's blocks are above the first's.
        let second = try KeySource(manager: g.manager)
        let current = try second.epoch(for: session, at: t)
        XCTAssertEqual(current.keys.senderIndices.rocFloor, UInt32(KeySource.rocBlock))
        XCTAssertEqual(current.keys.senderIndices.srtcpFloor, UInt32(KeySource.srtcpBlock))
        // The next MTK (never used before): its block is not below the current one.
        let next = try second.epoch(for: session, at: current.validUntil)
        XCTAssertNotEqual(next.mtkID, current.mtkID)
        XCTAssertGreaterThanOrEqual(next.keys.senderIndices.rocFloor, current.keys.senderIndices.rocFloor)
        XCTAssertGreaterThanOrEqual(next.keys.senderIndices.srtcpFloor, current.keys.senderIndices.srtcpFloor)

        // The first process, still running (a second gateway), gets a next block of its own
        // that overlaps no one's: blocks never overlap, whatever the floors.
        let other = try first.epoch(for: session, at: current.validUntil)
        let a = other.keys.senderIndices, b = next.keys.senderIndices
        XCTAssertTrue(UInt64(a.rocFloor) >= b.rocLimit || UInt64(b.rocFloor) >= a.rocLimit, "\(a) overlaps \(b)")
    }
}

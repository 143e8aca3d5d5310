import CryptoCore
import Foundation
import Gateway
import KeyManagement
import MIKEY

/// `bench --cases reservation`: what reserving packet indices costs (DESIGN.md §7). A process
/// reserves two blocks per MTK and session (RTP ROC values, SRTCP indices) in the key store, each
/// one SQLite write transaction committed with synchronous = FULL, on the control thread (`run`)
/// or in replay's work turn, before the MTK's first packet; the packet path itself only checks
/// an index against its stream's window and block (that part is in the crypto rows).
enum ReservationBench {
    static func run(directory: String, quick: Bool) throws -> BenchReport.Case {
        var c = BenchReport.Case(name: "index reservation")
        let n = quick ? 50 : 400
        let places = [("bench folder", directory), ("temporary folder", FileManager.default.temporaryDirectory.path)]
        var costs: [Double] = []
        for (label, folder) in places {
            let path = (folder as NSString).appendingPathComponent("reservation-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sqlite")
            defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            let store = try SQLiteKeyStore.openOrCreate(path: path, kek: try SecretBytes.random(count: 32))
            var times: [Double] = []
            for k in 0..<n {
                let counter = SenderIndexCounter(mskID: MSKID(keyGroup: 1, keyNumber: 1), mtkID: MTKID(UInt16(1 + k % 1000)),
                                                 kind: k % 2 == 0 ? .rtpROC : .srtcpIndex)
                let t0 = benchClock()
                _ = try store.reserveSenderIndices(counter, count: k % 2 == 0 ? KeySource.rocBlock : KeySource.srtcpBlock,
                                                   limit: k % 2 == 0 ? 1 << 32 : 1 << 31)
                times.append(Double(benchClock() - t0))
            }
            let ns = median(times)
            costs.append(ns)
            c.rows.append(BenchReport.Row(name: "reserve one block (\(label))", payloadBytes: "-", packets: n,
                                          nsPerPacket: ns, packetsPerSecond: 1e9 / ns, gbitPerSecond: 0))
        }
        let worst = costs.max() ?? 0
        // Two blocks per MTK and session; spread over the packets of one MTK period.
        for (rate, period) in [(1_000.0, 10.0), (1_000.0, 3_600.0)] {
            c.ratios.append(BenchReport.Ratio(name: String(format: "ns per packet at %.0f pkt/s, %.0f s MTK", rate, period),
                                              value: 2 * worst / (rate * period),
                                              meaning: "two reservations per MTK and session, over that MTK's packets (slower store)"))
        }
        c.notes.append("Rows: one reservation per row unit (packets = reservations, ns/packet = ns per reservation, median). A reservation is one SQLite write transaction (synchronous = FULL, the row MAC checked and written); `run` makes it on its control thread and publishes the block with the MTK's key epoch, so no packet waits for it.")
        c.notes.append("Folders: \(places.map { "\($0.0) \($0.1)" }.joined(separator: ", ")).")
        c.notes.append("Blocks: \(KeySource.rocBlock) ROC values (2^30 packet indices per SSRC) and \(KeySource.srtcpBlock) SRTCP indices per process and MTK.")
        return c
    }
}

import CoreMetrics
import Foundation
import PacketIO

/// The FLUTE channels of `run` (TS 33.246 6.6.3 in live mode): each channel's input socket feeds
/// the same `DownloadEngine` as `replay`; its paced output (FDT Instance, MIKEY object, DCF
/// objects, each with a send time) waits in a time-ordered queue that the live loop drains when
/// due. Store-and-forward per object, so this is not the per-packet hot path; it runs on the
/// live loop's thread and shares nothing with other threads but the metrics.
final class LiveDownload {
    final class Channel {
        let session: DownloadSession
        let input: UDPBatchSocket
        let egress: UDPBatchSocket
        let out: TransportAddress
        let packetsIn: CoreMetrics.Counter
        let packetsOut: CoreMetrics.Counter
        let objectsOut: CoreMetrics.Counter
        init(session: DownloadSession, input: UDPBatchSocket, egress: UDPBatchSocket, out: TransportAddress, metrics: GatewayMetrics) {
            self.session = session
            self.input = input
            self.egress = egress
            self.out = out
            let d = [("channel", session.name)]
            packetsIn = metrics.counter("mbms_flute_packets_in_total", d)
            packetsOut = metrics.counter("mbms_flute_packets_out_total", d)
            objectsOut = metrics.counter("mbms_flute_objects_out_total", d)
        }
    }

    let channels: [Channel]
    let engine: DownloadEngine
    private var queue: [(time: Double, channel: Int, payload: [UInt8])] = []
    private let slots: UnsafeMutableBufferPointer<DatagramSlot>
    private let pool: UnsafeMutableRawPointer
    private let capacity = 65_536
    private let maxBatch: Int

    init(downloads: [DownloadSession], keySource: KeySource, options: DownloadEngine.Options, live: LiveOptions,
         streamingAddresses: Set<TransportAddress>, metrics: GatewayMetrics) throws {
        engine = DownloadEngine(sessions: downloads, keySource: keySource, options: options)
        maxBatch = live.maxBatch
        var channels: [Channel] = []
        for d in downloads {
            let out: TransportAddress
            if let o = d.output {
                out = o
            } else if d.destination.address.isMulticast {
                out = d.destination
            } else {
                throw LiveSetupError.unicastWithoutOutput(session: d.name, destination: "\(d.destination)")
            }
            if out == d.destination && !out.address.isMulticast || streamingAddresses.contains(out) {
                throw LiveSetupError.outputLoops(session: d.name, output: "\(out)")
            }
            let input: UDPBatchSocket
            do { input = try UDPBatchSocket(bind: d.destination, options: live.socket, maxBatch: live.maxBatch) } catch {
                throw LiveSetupError.cannotReceive(session: d.name, address: "\(d.destination)", error: error)
            }
            var egressOptions = live.socket
            egressOptions.receiveBufferBytes = nil
            // Our own multicast output must not come back into the channel's input.
            if out == d.destination { egressOptions.multicastLoop = false }
            let any: TransportAddress
            if case .v6 = out.address { any = TransportAddress(.v6(0, 0), 0) } else { any = TransportAddress(.v4(0), 0) }
            let egress: UDPBatchSocket
            do { egress = try UDPBatchSocket(bind: any, options: egressOptions, maxBatch: live.maxBatch) } catch {
                throw LiveSetupError.cannotSend(session: d.name, address: "\(out)", error: error)
            }
            channels.append(Channel(session: d, input: input, egress: egress, out: out, metrics: metrics))
        }
        self.channels = channels
        pool = UnsafeMutableRawPointer.allocate(byteCount: capacity * max(1, maxBatch), alignment: 64)
        slots = .allocate(capacity: max(1, maxBatch))
        for k in 0..<max(1, maxBatch) { slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * capacity, capacity: capacity)) }
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
        pool.deallocate()
    }

    var statistics: [DownloadStatistics] { engine.statistics }

    /// When the next queued datagram is due (Unix seconds), if any.
    var nextDue: Double? { queue.first?.time }

    /// Receives one batch on channel `k` and queues what the engine wants sent.
    @discardableResult
    func pump(_ k: Int, now: Double) throws -> Int {
        let c = channels[k]
        let n: Int
        do { n = try c.input.receive(into: slots, timeoutMilliseconds: 0) } catch { return 0 }
        for i in 0..<n {
            let payload = Array(UnsafeRawBufferPointer(start: slots[i].bytes, count: slots[i].length))
            for d in try engine.receive(payload, session: k, at: now) {
                var lo = queue.count
                while lo > 0 && queue[lo - 1].time > d.time { lo -= 1 }
                queue.insert((d.time, k, d.payload), at: lo)
            }
        }
        if n > 0 { c.packetsIn.increment(by: Int64(n)) }
        return n
    }

    /// Sends every queued datagram due at `now` (all of them when `now` is nil), in batches.
    func sendDue(now: Double?) {
        while let first = queue.first, now.map({ first.time <= $0 }) ?? true {
            let k = first.channel
            var n = 0
            while n < maxBatch, n < queue.count, queue[n].channel == k, now.map({ queue[n].time <= $0 }) ?? true {
                let p = queue[n].payload
                let len = min(p.count, capacity)
                p.withUnsafeBytes { slots[n].bytes.copyMemory(from: $0.baseAddress!, byteCount: len) }
                slots[n].length = len
                slots[n].peer = channels[k].out
                n += 1
            }
            queue.removeFirst(n)
            let sent = (try? channels[k].egress.send(UnsafeMutableBufferPointer(rebasing: slots[0..<n]))) ?? 0
            channels[k].packetsOut.increment(by: Int64(sent))
        }
    }
}

import Foundation
import KeyManagement
import PacketIO

/// The Key Distribution function's thin UDP layer: one socket on `keyServer.mikeyListen` (UDP
/// 2269 by default) sends the distributor's MIKEY MSK messages to each UE's address on 2269
/// (TS 33.246 6.3.2.3) and receives the UEs' verification messages. One thread runs the loop:
/// take what the Key Request function accepted, queue rollovers, send what is due (at most
/// `pushRate` a second), read verification messages; every store access is on this thread.
public final class MSKDistributionService: @unchecked Sendable {
    public let distributor: MSKDistributor
    public let listen: TransportAddress
    private let socket: UDPBatchSocket
    private let requests: StoreKeyServerState?
    private let log: @Sendable (String) -> Void
    private let clock: @Sendable () -> Int64
    /// Called about once a second on the loop's thread with the distributor's cumulative
    /// statistics and the queue's depth by state (metrics).
    public var onStatistics: (@Sendable (MSKDistributor.Statistics, [DeliveryRow.State: Int]) -> Void)?
    private let lock = NSLock()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    private var running = false
    /// Datagrams that could not be sent (the delivery is retried on its schedule).
    public private(set) var sendErrors = 0
    /// The last loop error (store unavailable…), for the summary.
    public private(set) var lastError: String?

    /// The UE's MIKEY port (TS 33.246 6.3.2.3; IANA 2269).
    public static let ueMIKEYPort: UInt16 = 2269
    static let receiveCapacity = 4096

    public init(distributor: MSKDistributor, listen: TransportAddress, requests: StoreKeyServerState?,
                log: @escaping @Sendable (String) -> Void = { _ in },
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws(SocketError) {
        self.distributor = distributor
        self.listen = listen
        self.requests = requests
        self.log = log
        self.clock = clock
        socket = try UDPBatchSocket(bind: listen, options: UDPSocketOptions(), maxBatch: 16)
    }

    /// The address actually bound (port 0 in `listen` picks one).
    public var localAddress: TransportAddress { socket.localAddress }

    public func start() {
        lock.lock(); running = true; lock.unlock()
        let t = Thread { [self] in
            runLoop()
            done.signal()
        }
        t.name = "mbms-mikey-2269"
        t.start()
    }

    /// Asks the loop to stop and waits (bounded) for it.
    public func stop() {
        lock.lock(); stopping = true; let wasRunning = running; running = false; lock.unlock()
        if wasRunning { _ = done.wait(timeout: .now() + 5) }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    func runLoop() {
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 16)
        let pool = UnsafeMutableRawPointer.allocate(byteCount: 16 * Self.receiveCapacity, alignment: 16)
        defer { slots.deallocate(); pool.deallocate() }
        var lastRollover: Int64? = nil
        var lastStatistics: Int64? = nil
        // At most `pushRate` MSK messages in each second of the clock.
        var second: Int64? = nil, sentThisSecond = 0
        while !isStopping {
            let now = clock()
            do {
                if let requests {
                    let (d, v) = requests.takePending()
                    if !d.isEmpty || !v.isEmpty { try distributor.enqueue(deliveries: d, invalidations: v, at: now) }
                }
                if lastRollover.map({ now &- $0 >= 10 || now < $0 }) ?? true {
                    lastRollover = now
                    let n = try distributor.scheduleRollovers(at: now)
                    if n > 0 { log("MSK rollover: \(n) deliveries of the next MSK queued") }
                }
                if second != now { second = now; sentThisSecond = 0 }
                let budget = distributor.policy.pushRate - sentThisSecond
                let logged = distributor.log.count
                if budget > 0 {
                    let due = try distributor.tick(now: now, limit: budget)
                    sentThisSecond += due.count
                    send(due, slots: slots)
                }
                for line in distributor.log.suffix(max(0, distributor.log.count - logged)) { log(line) }
                if let report = onStatistics, lastStatistics != now {
                    lastStatistics = now
                    report(distributor.statistics, try distributor.queue.deliveryCounts())
                }
                lastError = nil
            } catch {
                if lastError != "\(error)" { log("MSK delivery paused: \(error)") }
                lastError = "\(error)"
            }
            receive(slots: slots, pool: pool, now: now)
        }
    }

    private func send(_ messages: [OutgoingMIKEY], slots: UnsafeMutableBufferPointer<DatagramSlot>) {
        for m in messages {
            guard let ip = IPAddress(m.address) else {
                sendErrors += 1
                log("MSK message for B-TID \(m.btid) not sent: UE address \(m.address) is not an IP address")
                continue
            }
            var bytes = m.bytes
            let ok: Bool = bytes.withUnsafeMutableBytes { b in
                guard let base = b.baseAddress else { return false }
                slots[0] = DatagramSlot(bytes: base, capacity: b.count)
                slots[0].length = b.count
                slots[0].peer = TransportAddress(ip, Self.ueMIKEYPort)
                return ((try? socket.send(UnsafeMutableBufferPointer(rebasing: slots[0..<1]))) ?? 0) == 1
            }
            if !ok { sendErrors += 1 }
        }
    }

    private func receive(slots: UnsafeMutableBufferPointer<DatagramSlot>, pool: UnsafeMutableRawPointer, now: Int64) {
        for k in 0..<slots.count { slots[k] = DatagramSlot(bytes: pool + k * Self.receiveCapacity, capacity: Self.receiveCapacity) }
        guard let n = try? socket.receive(into: slots, timeoutMilliseconds: 100), n > 0 else { return }
        for k in 0..<n {
            let bytes = Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))
            if case .rejected(let why) = distributor.received(bytes, now: now), why != "no_open_delivery" {
                log("MIKEY datagram from \(slots[k].peer.map { "\($0)" } ?? "?") refused: \(why)")
            }
        }
    }
}

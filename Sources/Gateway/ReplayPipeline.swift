import Foundation
import KeyManagement
import PacketIO

/// A batch of captured frames moving through `replay`'s pass 2 (`DESIGN.md` §4: batches over
/// preallocated buffers). Up to 256 frames: each hand-over between stages can cost a futex
/// wake (a stage parks when it has nothing to do), so a ring carries a few hundred packets at
/// a time; the work stage still protects them 64 at most per call (`StreamingEngine`'s
/// staging), and the writer sends a batch with a few `writev(2)` calls. The frames are packed into the batch's own arena,
/// each with `StreamingEngine.tailroom` bytes behind it, and protected there in place. What the
/// gateway originates between them (MIKEY MTK messages, FLUTE output) rides along in
/// `injections`, each written before frame `before`.
final class ReplayBatch: @unchecked Sendable {   // owned by one stage at a time (moved through the rings)
    static let maximumFrames = 256
    /// Largest frame kept (libpcap's maximum snapshot length); longer ones are cut, as before.
    static let maximumFrameBytes = 262_144
    /// Room for at least one maximum frame; batches of typical packets (~800 octets) close at
    /// 256 frames, long before the arena is full.
    static let arenaBytes = 2 * (maximumFrameBytes + StreamingEngine.tailroom)

    struct Injection {
        var before: Int
        var time: UInt64
        var frame: [UInt8]
    }

    let arena: UnsafeMutableRawPointer
    var used = 0
    let frames: UnsafeMutablePointer<EngineFrame>
    /// Capture timestamps (re-timed), nanoseconds.
    let stamps: UnsafeMutableBufferPointer<UInt64>
    var count = 0
    var injections: [Injection] = []
    /// The reader's last batch: the worker appends the output still pending after the capture.
    var isLast = false

    init() {
        arena = .allocate(byteCount: Self.arenaBytes, alignment: 64)
        frames = .allocate(capacity: Self.maximumFrames)
        frames.initialize(repeating: EngineFrame(bytes: arena, length: 0, capacity: 0, time: 0), count: Self.maximumFrames)
        stamps = .allocate(capacity: Self.maximumFrames)
        injections.reserveCapacity(16)
    }

    deinit {
        arena.deallocate()
        frames.deinitialize(count: Self.maximumFrames)
        frames.deallocate()
        stamps.deallocate()
    }

    /// Whether any frame (up to the maximum size) still fits.
    var hasRoom: Bool { count < Self.maximumFrames && used + Self.maximumFrameBytes + StreamingEngine.tailroom + 64 <= Self.arenaBytes }

    /// Copies a captured frame in (the caller checked `hasRoom`).
    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer, stamp: UInt64) {
        let n = min(bytes.count, Self.maximumFrameBytes)
        // 64-byte aligned slots: every frame starts on its own cache line.
        let need = (n + StreamingEngine.tailroom + 63) & ~63
        let p = arena + used
        if n > 0, let src = bytes.baseAddress { p.copyMemory(from: src, byteCount: n) }
        frames[count] = EngineFrame(bytes: p, length: n, capacity: n + StreamingEngine.tailroom, time: Int64(stamp / 1_000_000_000))
        stamps[count] = stamp
        count += 1
        used += need
    }

    func reset() {
        count = 0
        used = 0
        isLast = false
        injections.removeAll(keepingCapacity: true)
    }
}

/// The work stage of `replay`'s pass 2: everything that needs the key source (key epochs,
/// MIKEY MTK messages) or per-flow state, on one thread, frame by frame in capture order —
/// MIKEY events due at or before each frame's second, then paced FLUTE output due by its
/// timestamp, then the frame itself (FLUTE input consumed by the download engine, streaming
/// frames staged into the `StreamingEngine` and protected per flow at the end of the batch).
final class ReplayWork: @unchecked Sendable {   // used by the work stage's thread only
    let job: ReplayJob
    let link: LinkType
    let engine: StreamingEngine
    let download: DownloadEngine
    let downloadLookup: TransportAddressTable<Int>
    let downloadTemplates: [(template: InjectionTemplate, sourcePort: UInt16)?]
    let templates: [InjectionTemplate?]
    let first: [Int64?]
    let last: [Int64]
    let announcer: MTKAnnouncer
    var nextEvent: [Int64?] { didSet { earliestEvent = Self.soonest(nextEvent) } }
    /// The soonest of `nextEvent`: most frames are before it, and need no look at the sessions.
    private var earliestEvent: Int64?
    /// Datagrams the gateway originates with future send times (paced FLUTE output), merged
    /// into the timeline in time order.
    var pending: [(time: UInt64, order: Int, frame: [UInt8])] = []
    var order = 0

    init(job: ReplayJob, link: LinkType, engine: StreamingEngine, download: DownloadEngine, downloadLookup: TransportAddressTable<Int>,
         downloadTemplates: [(template: InjectionTemplate, sourcePort: UInt16)?], templates: [InjectionTemplate?],
         first: [Int64?], last: [Int64]) {
        self.job = job
        self.link = link
        self.engine = engine
        self.download = download
        self.downloadLookup = downloadLookup
        self.downloadTemplates = downloadTemplates
        self.templates = templates
        self.first = first
        self.last = last
        let announcer = MTKAnnouncer(job.keySource.configuration)
        self.announcer = announcer
        nextEvent = first.map { $0.map(announcer.preroll(firstPacket:)) }
        earliestEvent = Self.soonest(nextEvent)
    }

    private func queue(_ out: [OutgoingDatagram]) {
        for d in out {
            guard let (template, port) = downloadTemplates[d.session] else { continue }
            let s = job.downloads[d.session]
            let frame = UDPFrameEditor.buildFrame(linkType: link, template: template.linkHeader,
                                                  source: TransportAddress(template.source, port), destination: s.output ?? s.destination,
                                                  hopLimit: template.hopLimit, payload: d.payload, checksum: job.options.checksum)
            let t = UInt64(max(0, d.time * 1e9))
            var lo = pending.count
            while lo > 0 && pending[lo - 1].time > t { lo -= 1 }
            pending.insert((t, order, frame), at: lo)
            order += 1
        }
    }

    private func flush(upTo t: UInt64?, into batch: ReplayBatch, before k: Int) {
        var n = 0
        while n < pending.count, t.map({ pending[n].time <= $0 }) ?? true {
            batch.injections.append(.init(before: k, time: pending[n].time, frame: pending[n].frame))
            n += 1
        }
        if n > 0 { pending.removeFirst(n) }
    }

    private static func soonest(_ times: [Int64?]) -> Int64? {
        var m: Int64? = nil
        for t in times { if let t, t < (m ?? .max) { m = t } }
        return m
    }

    private func emitEvents(upTo limit: Int64, into batch: ReplayBatch, before k: Int) throws {
        guard let soonest = earliestEvent, soonest <= limit else { return }
        let sessions = job.sessions
        while true {
            var pick: (time: Int64, session: Int)? = nil
            for i in 0..<sessions.count {
                guard let t = nextEvent[i], t <= limit else { continue }
                if let p = pick, p.time <= t { continue }
                pick = (t, i)
            }
            guard let (t, i) = pick, let template = templates[i], let firstPacket = first[i] else { return }
            // Before the session's first packet (the pre-roll), announce what will be on the air
            // at that packet: the schedule is never asked about times before the stream.
            let at = max(t, firstPacket)
            for m in try job.keySource.transmissions(for: sessions[i], at: at) {
                let message = try job.keySource.mtkMessage(m)
                let frame = UDPFrameEditor.buildFrame(
                    linkType: link, template: template.linkHeader,
                    source: TransportAddress(template.source, StreamingSession.mikeyPort),
                    destination: sessions[i].mikeyDestination, hopLimit: template.hopLimit,
                    payload: message, checksum: job.options.checksum)
                batch.injections.append(.init(before: k, time: UInt64(max(0, t)) * 1_000_000_000, frame: frame))
                engine.countMIKEY(session: i, bytes: message.count)
            }
            let next = announcer.nextEvent(after: t)
            nextEvent[i] = next <= last[i] ? next : nil
        }
    }

    /// Processes one batch in place: verdicts on its frames, injections attached.
    func process(_ batch: ReplayBatch) throws {
        let consumesFLUTE = !job.downloads.isEmpty
        for k in 0..<batch.count {
            let frame = batch.frames + k
            let stamp = batch.stamps[k]
            // Events due at or before this packet's second go first (whole-second event times).
            try emitEvents(upTo: frame.pointee.time, into: batch, before: k)
            flush(upTo: stamp, into: batch, before: k)
            if consumesFLUTE,
               case .udp(let u) = FrameParser.classify(frame.pointee.bytes, length: frame.pointee.length, linkType: link),
               let d = downloadLookup[u.destination] {
                // FLUTE input is consumed: what goes out is the protected channel.
                let datagram = Array(UnsafeRawBufferPointer(start: frame.pointee.bytes + u.payloadOffset, count: u.datagramEnd - u.payloadOffset))
                queue(try download.receive(datagram, session: d, at: Double(stamp) / 1e9))
                frame.pointee.verdict = .drop(reason: "flute_input")
                continue
            }
            try engine.stage(frame, linkType: link)
        }
        engine.completeStaged()
        if batch.isLast { flush(upTo: nil, into: batch, before: batch.count) }
    }
}

/// `replay`'s pass 2 as three stages joined by SPSC rings (`DESIGN.md` §4):
///
///     read (CaptureReader) ─▶ work (ReplayWork: classify, key epochs, SRTP/SRTCP protect
///     per flow, MIKEY, FLUTE) ─▶ write (caller's thread: CaptureWriter, progress)
///
/// over a fixed pool of `ReplayBatch`es that cycles read → work → write → read. Each stage owns
/// what it touches (the reader the input, the worker the key source and all flow state, the
/// writer the output); the only shared state is the rings. Order is kept end to end (one
/// worker, FIFO rings), so the output is the same bytes as with `threads: 1`, where the same
/// three steps run one after another on the caller's thread. On a machine with fewer cores
/// than stages the waiting stage sleeps on a futex until it has work (see `SPSCRing`).
final class ReplayPipeline: @unchecked Sendable {   // reader state: the read stage's thread; writer: the caller's
    static let poolBatches = 16

    let reader: CaptureReader
    let writer: CaptureWriter
    let shift: Int64
    let total: Int
    let threads: Int

    init(reader: CaptureReader, writer: CaptureWriter, shift: Int64, total: Int, threads: Int) {
        self.reader = reader
        self.writer = writer
        self.shift = shift
        self.total = total
        self.threads = threads
    }

    /// Fills `batch` from the reader; false at the end of the capture (batch marked last).
    private func fill(_ batch: ReplayBatch, read: inout Int, progress: (Int, Int) -> Void) throws -> Bool {
        while batch.hasRoom {
            guard let f = try reader.next() else {
                batch.isLast = true
                return false
            }
            batch.append(f.bytes, stamp: ReplayJob.shifted(f.timestampNanoseconds, shift))
            read += 1
            if read % 2048 == 0 { progress(read, total) }
        }
        return true
    }

    private func write(_ batch: ReplayBatch) {
        var j = 0
        let injections = batch.injections
        for k in 0...batch.count {
            while j < injections.count, injections[j].before == k {
                writer.write(timestampNanoseconds: injections[j].time, bytes: injections[j].frame)
                j += 1
            }
            guard k < batch.count else { break }
            let f = batch.frames[k]
            switch f.verdict {
            case .forward(let length):
                if let u = f.deferredChecksum { UDPFrameEditor.fillUDPChecksum(f.bytes, frame: u) }
                writer.write(timestampNanoseconds: batch.stamps[k], borrowing: UnsafeRawBufferPointer(start: f.bytes, count: length))
            case .passThrough:
                writer.write(timestampNanoseconds: batch.stamps[k], borrowing: UnsafeRawBufferPointer(start: f.bytes, count: f.length))
            case .drop:
                break
            }
        }
        // The frames are written from the batch's arena: out before the batch is reused.
        writer.flush()
    }

    /// Runs pass 2; returns each thread's stages and CPU time (the busiest bounds the run).
    func run(work: ReplayWork, progress: (Int, Int) -> Void) throws -> [ReplayJob.ThreadTime] {
        var read = 0
        let times = ThreadTimes()
        let start = Self.threadCPUSeconds()
        if threads <= 1 {
            let batch = ReplayBatch()
            var more = true
            while more {
                batch.reset()
                more = try fill(batch, read: &read, progress: progress)
                try work.process(batch)
                write(batch)
            }
            times.add("read + work + write", since: start)
            return times.all
        }

        if threads == 2 {
            try runTwoStages(work: work, read: &read, progress: progress, times: times)
            times.add("read + write", since: start)
            return times.all
        }

        let free = Self.pool()
        let toWorker = SPSCRing<ReplayBatch>(capacity: Self.poolBatches)
        let toWriter = SPSCRing<ReplayBatch>(capacity: Self.poolBatches)
        let failure = FailureBox()
        let done = DispatchGroup()
        Self.startStage(done) {
            Self.workStage(work, from: toWorker, to: toWriter, failure: failure, stopping: free, times: times)
        }
        Self.startStage(done) { [self] in
            let cpu = ReplayPipeline.threadCPUSeconds()
            defer { times.add("read", since: cpu) }
            var frames = 0
            do {
                var more = true
                while more, let b = free.pop() {
                    more = try fill(b, read: &frames, progress: { _, _ in })
                    if !toWorker.push(b) { break }
                }
            } catch {
                failure.set(error)
            }
            toWorker.close()
        }
        // The writer: this thread (see `runTwoStages` for why), which also reports progress.
        while let b = toWriter.pop() {
            write(b)
            read += b.count
            if read & ~2047 != (read - b.count) & ~2047 { progress(read, total) }
            b.reset()
            free.push(b)
        }
        free.close()
        times.add("write", since: start)
        done.wait()
        if let e = failure.error { throw e }
        return times.all
    }

    /// Two threads: read and write on this one, which writes each batch back out and refills
    /// it with the next frames; work on the other. Work (classify, key epochs, protect, MIKEY)
    /// is the heavier half, so it gets a CPU to itself; the reader's copy into the batches goes
    /// beside the writer's system calls. On the 2-CPU development VM, pass 2 of 1 M packets
    /// took 0.41 s of CPU on the worker and 0.42 s on the I/O thread this way; with read + work
    /// on one thread and write on the other it was ~0.68 s against ~0.5 s.
    ///
    /// The writes stay on the caller's thread, the one that removed or truncated the previous
    /// output: there the file's new pages cost 0.33 s of system time per 1 M packets, and
    /// 0.85-1.26 s in most runs from a thread of its own (`bench`, which removes the output just
    /// before; the VM's host backs guest memory lazily, and the pages freed on one CPU are the
    /// ones that CPU reuses first).
    ///
    /// The pool cycles: this thread fills every batch once, then for each processed batch (in
    /// order) writes it, refills it and hands it back; the worker always has the rest of the
    /// pool queued.
    private func runTwoStages(work: ReplayWork, read: inout Int, progress: (Int, Int) -> Void, times: ThreadTimes) throws {
        let toWorker = SPSCRing<ReplayBatch>(capacity: Self.poolBatches)
        let toWriter = SPSCRing<ReplayBatch>(capacity: Self.poolBatches)
        let workFailure = FailureBox()
        let done = DispatchGroup()
        Self.startStage(done) {
            Self.workStage(work, from: toWorker, to: toWriter, failure: workFailure, stopping: nil, times: times)
        }
        var failure: Error?
        var more = true
        do {
            // Fill the pool, then: write the oldest processed batch, refill it, send it on.
            for _ in 0..<Self.poolBatches where more {
                let b = ReplayBatch()
                more = try fill(b, read: &read, progress: progress)
                if !toWorker.push(b) { more = false }
            }
            while let b = toWriter.pop() {
                write(b)
                b.reset()
                guard more else { continue }   // drain: the rest are written, none refilled
                more = try fill(b, read: &read, progress: progress)
                if !toWorker.push(b) { more = false }
            }
        } catch {
            failure = error
        }
        // After a read error the worker stops at the closed ring; what it still had is dropped.
        toWorker.close()
        toWriter.close()
        done.wait()
        if let e = workFailure.error { throw e }
        if let failure { throw failure }
    }

    /// The work stage on its own thread: batches in order until the last one or the first error,
    /// which also closes `feeder` (the ring the stage before it waits on) so that it stops too.
    private static func workStage(_ work: ReplayWork, from toWorker: SPSCRing<ReplayBatch>, to toWriter: SPSCRing<ReplayBatch>,
                                  failure: FailureBox, stopping feeder: SPSCRing<ReplayBatch>?, times: ThreadTimes) {
        let cpu = threadCPUSeconds()
        defer { times.add("work", since: cpu) }
        while let b = toWorker.pop() {
            do { try work.process(b) } catch {
                failure.set(error)
                feeder?.close()
                break
            }
            let last = b.isLast
            if !toWriter.push(b) || last { break }
        }
        toWriter.close()
        toWorker.close()
    }

    /// The ring of free batches, filled with the whole pool.
    private static func pool() -> SPSCRing<ReplayBatch> {
        let free = SPSCRing<ReplayBatch>(capacity: poolBatches)
        for _ in 0..<poolBatches { free.push(ReplayBatch()) }
        return free
    }

    /// Runs `body` on a thread of its own (1 MiB stack), inside `done`.
    private static func startStage(_ done: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
        done.enter()
        let t = Thread {
            body()
            done.leave()
        }
        t.stackSize = 1 << 20
        t.start()
    }

    /// CPU time this thread has used (CLOCK_THREAD_CPUTIME_ID), seconds.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// What each of pass 2's threads did and the CPU time it took, in the order recorded.
    final class ThreadTimes: @unchecked Sendable {
        private let lock = NSLock()
        private var times: [ReplayJob.ThreadTime] = []
        func add(_ stages: String, since start: Double) {
            let t = ReplayJob.ThreadTime(stages: stages, cpuSeconds: ReplayPipeline.threadCPUSeconds() - start)
            lock.lock(); times.append(t); lock.unlock()
        }
        var all: [ReplayJob.ThreadTime] { lock.lock(); defer { lock.unlock() }; return times }
    }

    /// The first error of any stage (set once, read after the threads are joined).
    final class FailureBox: @unchecked Sendable {
        private let lock = NSLock()
        private var first: Error?
        func set(_ e: Error) { lock.lock(); if first == nil { first = e }; lock.unlock() }
        var error: Error? { lock.lock(); defer { lock.unlock() }; return first }
    }
}

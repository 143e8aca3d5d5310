import Foundation
import KeyManagement
import PacketIO
import SRTP

/// A batch of captured frames moving through `replay`'s pass 2 (`DESIGN.md` §4: batches over
/// preallocated buffers). Up to 256 frames: each turn handed between threads can cost a futex
/// wake, so a turn covers a few hundred packets; the work step still lays SRTP packets out 64
/// at most per call (`StreamingEngine`'s staging), the lane protects them after its work turn
/// (`pendingCrypto`), and lays the batch's output out as one
/// block of pcap records (`prepareOutput`) that the write step sends with one `writev(2)`
/// call. The frames are packed into the batch's own arena, each with
/// `StreamingEngine.tailroom` bytes behind it, and protected there in place. What the
/// gateway originates between them (MIKEY MTK messages, FLUTE output) rides along in
/// `injections`, each written before frame `before`.
final class ReplayBatch: @unchecked Sendable {   // owned by one thread (its lane)
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
    /// Each frame's record offset in the input (mapped captures; 0 otherwise): where the work
    /// step's look-ahead starts (`SessionLookahead`).
    let offsets: UnsafeMutableBufferPointer<Int>
    /// How much of the input had been read once this batch was filled, 0...1 (progress).
    var fractionRead = 0.0
    var count = 0
    var injections: [Injection] = []
    /// The reader's last batch: the worker appends the output still pending after the capture.
    var isLast = false
    /// The SRTP encryption, MACs and tails of this batch's packets, left by the work step
    /// (`StreamingEngine.pendingCrypto`) for the lane to do outside the work turn (`protect`).
    /// Room for a group per frame, the most a batch can make.
    let pendingCrypto = SRTPPendingCrypto(groups: ReplayBatch.maximumFrames)

    /// The batch's output as the capture file takes it, pcap records back to back (header,
    /// frame, header, ...), laid out by `prepareOutput()` outside the write turn so that the
    /// write turn is one vector for the batch: writing the records as a header vector and a
    /// frame vector each cost the kernel about 50 ns more per packet on tmpfs than one
    /// contiguous block did. Room for every frame of a full arena grown by its tailroom, their
    /// headers, and 64 KiB of injections (more, a burst of FLUTE output, is written the
    /// gathered way instead).
    static let imageBytes = arenaBytes + maximumFrames * CaptureWriter.recordHeaderBytes + 65_536
    let image: UnsafeMutableRawPointer
    /// Octets, frames and frame octets of `image`; nil when this batch's output did not fit
    /// (`write` gathers it from the arena and the injections instead).
    var prepared: (bytes: Int, frames: Int, frameBytes: Int)?

    init() {
        image = .allocate(byteCount: Self.imageBytes, alignment: 64)
        arena = .allocate(byteCount: Self.arenaBytes, alignment: 64)
        frames = .allocate(capacity: Self.maximumFrames)
        frames.initialize(repeating: EngineFrame(bytes: arena, length: 0, capacity: 0, time: 0), count: Self.maximumFrames)
        stamps = .allocate(capacity: Self.maximumFrames)
        offsets = .allocate(capacity: Self.maximumFrames)
        injections.reserveCapacity(16)
    }

    deinit {
        image.deallocate()
        arena.deallocate()
        frames.deinitialize(count: Self.maximumFrames)
        frames.deallocate()
        stamps.deallocate()
        offsets.deallocate()
    }

    /// Whether any frame (up to the maximum size) still fits.
    var hasRoom: Bool { count < Self.maximumFrames && used + Self.maximumFrameBytes + StreamingEngine.tailroom + 64 <= Self.arenaBytes }

    /// Copies a captured frame in (the caller checked `hasRoom`).
    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer, stamp: UInt64, offset: Int) {
        let n = min(bytes.count, Self.maximumFrameBytes)
        // 64-byte aligned slots: every frame starts on its own cache line.
        let need = (n + StreamingEngine.tailroom + 63) & ~63
        let p = arena + used
        if n > 0, let src = bytes.baseAddress { p.copyMemory(from: src, byteCount: n) }
        frames[count] = EngineFrame(bytes: p, length: n, capacity: n + StreamingEngine.tailroom, time: Int64(stamp / 1_000_000_000))
        stamps[count] = stamp
        offsets[count] = offset
        count += 1
        used += need
    }

    func reset() {
        count = 0
        used = 0
        isLast = false
        prepared = nil
        pendingCrypto.reset()
        injections.removeAll(keepingCapacity: true)
    }

    /// After the work step: encrypts, authenticates and finishes the batch's SRTP packets
    /// (`pendingCrypto`), with the cipher contexts `cipherKeys` gives for each session key.
    func protect(cipherKeys: (SRTPSessionKeys) -> SRTPSessionKeys?) throws(SRTPError) {
        guard pendingCrypto.run(cipherKeys: cipherKeys) else { throw .cryptoFailure }
    }

    /// After the work step, before the write turn: lays the output out in `image` in capture
    /// order, injections before the frame they precede, filling there the UDP checksums the
    /// work step left (`StreamingEngine.deferUDPChecksums`) as each frame is copied: one pass
    /// over the bytes (`prepared` stays nil if it does not fit; `write` then fills them in the
    /// arena).
    func prepareOutput() {
        let header = CaptureWriter.recordHeaderBytes
        var at = 0, records = 0, frameBytes = 0
        @inline(__always) func append(_ bytes: UnsafeRawPointer?, _ n: Int, time: UInt64, checksum: UDPFrame? = nil) -> Bool {
            guard at + header + n <= Self.imageBytes else { return false }
            CaptureWriter.storeRecordHeader(image + at, timestampNanoseconds: time, length: n)
            if n > 0, let bytes {
                if let checksum {
                    UDPFrameEditor.copyFillingUDPChecksum(bytes, frame: checksum, length: n, to: image + at + header)
                } else {
                    (image + at + header).copyMemory(from: bytes, byteCount: n)
                }
            }
            at += header + n
            records += 1
            frameBytes += n
            return true
        }
        var j = 0
        for k in 0...count {
            while j < injections.count, injections[j].before == k {
                let fits = injections[j].frame.withUnsafeBytes { append($0.baseAddress, $0.count, time: injections[j].time) }
                guard fits else { return }
                j += 1
            }
            guard k < count else { break }
            let f = frames[k]
            switch f.verdict {
            case .forward(let length): guard append(f.bytes, length, time: stamps[k], checksum: f.deferredChecksum) else { return }
            case .passThrough: guard append(f.bytes, f.length, time: stamps[k]) else { return }
            case .drop: break
            }
        }
        prepared = (at, records, frameBytes)
    }
}

/// The work step of `replay`'s pass 2: everything that needs the key source (key epochs,
/// MIKEY MTK messages) or per-flow state, by one lane at a time (the work turn), batch after
/// batch and frame by frame in capture order —
/// MIKEY events due at or before each frame's second, then paced FLUTE output due by its
/// timestamp, then the frame itself (FLUTE input consumed by the download engine, streaming
/// frames staged into the `StreamingEngine` and laid out per flow at the end of the batch:
/// headers checked, ROCs, lengths and verdicts final, the SRTP encryption, MACs and tails left
/// in the batch's `pendingCrypto` for its lane to do after the turn).
final class ReplayWork: @unchecked Sendable {   // used by the lane holding the work turn only
    let job: ReplayJob
    let link: LinkType
    let engine: StreamingEngine
    let download: DownloadEngine
    let downloadLookup: TransportAddressTable<Int>
    /// Per download session: its first input frame, the model for the frames it sends (set
    /// when that frame comes: a session sends nothing before its first input).
    var downloadTemplates: [(template: InjectionTemplate, sourcePort: UInt16)?]
    let templates: [InjectionTemplate?]
    let first: [Int64?]
    let horizon: Horizon
    /// The capture's running clock (`CaptureClock`), as pass 1 ran it over the same frames:
    /// an implausible frame is passed through (or dropped) and never reaches keys or timing.
    var clock: CaptureClock
    /// Per session: whether its first MIKEY message (the pre-roll) has gone out.
    var announced: [Bool]
    let announcer: MTKAnnouncer
    var nextEvent: [Int64?] { didSet { earliestEvent = Self.soonest(nextEvent) } }
    /// The soonest of `nextEvent`: most frames are before it, and need no look at the sessions.
    private var earliestEvent: Int64?
    /// Datagrams the gateway originates with future send times (paced FLUTE output), merged
    /// into the timeline in time order.
    var pending: [(time: UInt64, order: Int, frame: [UInt8])] = []
    var order = 0

    /// Where a session's stream ends, for its periodic MIKEY messages (see `continues`).
    enum Horizon {
        /// Pass 1 walked the whole capture: each session's last packet time (whole seconds).
        case lastPackets([Int64])
        /// Pass 1 stopped once every session had started: look ahead in the file.
        case lookahead(SessionLookahead)
    }

    init(job: ReplayJob, link: LinkType, engine: StreamingEngine, download: DownloadEngine, downloadLookup: TransportAddressTable<Int>,
         templates: [InjectionTemplate?], first: [Int64?], horizon: Horizon, clock: CaptureClock) {
        self.job = job
        self.clock = clock
        self.link = link
        self.engine = engine
        self.download = download
        self.downloadLookup = downloadLookup
        downloadTemplates = Array(repeating: nil, count: job.downloads.count)
        self.templates = templates
        self.first = first
        self.horizon = horizon
        announced = Array(repeating: false, count: first.count)
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

    /// Whether session `i`'s message due at `second` goes out: while its stream lasts, that is
    /// while it has a packet at `second` or later — its last packet (pass 1), or one still to
    /// come from the frame at `offset` on (look-ahead; the same answer when times never go back).
    private func continues(session i: Int, at second: Int64, from offset: Int) -> Bool {
        switch horizon {
        case .lastPackets(let last): return second <= last[i]
        case .lookahead(let ahead): return ahead.hasPacket(session: i, atOrAfter: second, from: offset)
        }
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
            // The pre-roll always goes out (the session's first packet follows); each later
            // message only while the stream lasts.
            if announced[i], !continues(session: i, at: t, from: batch.offsets[k]) {
                nextEvent[i] = nil
                continue
            }
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
            announced[i] = true
            nextEvent[i] = announcer.nextEvent(after: t)
        }
    }

    static let implausibleTimestamp: StaticString = "implausible_timestamp"

    /// Processes one batch in place: verdicts on its frames, injections attached.
    func process(_ batch: ReplayBatch) throws {
        engine.pendingCrypto = batch.pendingCrypto
        let consumesFLUTE = !job.downloads.isEmpty
        for k in 0..<batch.count {
            let frame = batch.frames + k
            let stamp = batch.stamps[k]
            guard clock.admit(stamp) else {
                // Untouched (or dropped), counted (`implausibleTimestamps`): no key lookup, no
                // MIKEY event, no FLUTE pacing from this time.
                frame.pointee.verdict = job.options.dropUnmatched ? .drop(reason: Self.implausibleTimestamp) : .passThrough
                continue
            }
            // Events due at or before this packet's second go first (whole-second event times).
            try emitEvents(upTo: frame.pointee.time, into: batch, before: k)
            flush(upTo: stamp, into: batch, before: k)
            if consumesFLUTE,
               case .udp(let u) = FrameParser.classify(frame.pointee.bytes, length: frame.pointee.length, linkType: link),
               let d = downloadLookup[u.destination] {
                if downloadTemplates[d] == nil {
                    let b = UnsafeRawBufferPointer(start: frame.pointee.bytes, count: u.ipOffset)
                    downloadTemplates[d] = (InjectionTemplate(linkHeader: Array(b), source: u.source.address, hopLimit: u.hopLimit), u.source.port)
                }
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

/// `replay`'s pass 2: every batch goes through these steps in capture order (`DESIGN.md` §4),
///
///     read (CaptureReader) ─▶ work (ReplayWork: classify, key epochs, ROCs and SRTP layout,
///     SRTCP, MIKEY, FLUTE) ─▶ protect (SRTP AES-CM + HMAC-SHA1 + tails, `SRTPPendingCrypto`)
///     ─▶ lay-out (`ReplayBatch.prepareOutput`: pcap records, UDP checksums) ─▶ write (CaptureWriter)
///
/// on `threads` threads. One thread runs them one after another. Several run as *lanes*: lane
/// j takes batches j, j + n, j + 2n, ... through all the steps on its own core, so a batch's
/// bytes are read, protected and written from one cache and never cross to another core. The
/// steps keep capture order by turns that go round the lanes: one token per turn-held step (read, work, write), handed from
/// lane j to lane j + 1 through an SPSC ring once lane j has done that step for its batch. A
/// lane reads when the lane before it has read, works when it has worked, writes when it has
/// written, so the reader, the work state (key source, flows, MIKEY, FLUTE) and the writer
/// are each used by one lane at a time, in batch order, and the output is the same bytes as
/// on one thread. Protect and lay-out touch only the lane's own batch (and its own cipher
/// contexts, `LaneCipherKeys`) and need no turn: a lane does them between handing on the work
/// turn and taking the write turn, while the next lane works. On the 2-CPU VM the turn-held
/// steps took, per packet, read 120 ns, work 120 ns (410 ns with the crypto inside it) and
/// write 290 ns, so the write step bounds replay on any number of CPUs.
///
/// Why lanes rather than a thread per step: on the 2-CPU development VM, a thread per step
/// (read + write on one, work on the other, the batches moving between them through rings)
/// took 0.41-0.46 s of CPU per thread for 1 M packets when the two vCPUs shared a cache, but
/// the worker's first touch of each frame (classify) and its cipher pass cost 2.5-4 times as
/// much when they did not (the host moves vCPUs), and such runs took 0.77-1.58 s. Lanes took
/// 0.49-0.60 s in the same alternating runs (byte-identical output).
final class ReplayPipeline: @unchecked Sendable {   // the reader, writer and work state: one lane at a time (the turns)
    let reader: CaptureReader
    let writer: CaptureWriter
    let shift: Int64
    /// Frames in the capture, when pass 1 counted them (progress through libpcap, which tells
    /// no file position).
    let total: Int?
    let threads: Int
    /// The first and last frame's time (re-timed, whole seconds): the read step's.
    private(set) var firstTime: Int64?, lastTime: Int64?

    init(reader: CaptureReader, writer: CaptureWriter, shift: Int64, total: Int?, threads: Int) {
        self.reader = reader
        self.writer = writer
        self.shift = shift
        self.total = total
        self.threads = threads
    }

    /// Fills `batch` from the reader; false at the end of the capture (batch marked last).
    private func fill(_ batch: ReplayBatch) throws -> Bool {
        defer {
            if batch.count > 0 {
                if firstTime == nil { firstTime = Int64(batch.stamps[0] / 1_000_000_000) }
                lastTime = Int64(batch.stamps[batch.count - 1] / 1_000_000_000)
            }
            batch.fractionRead = reader.fractionRead ?? total.map { Double(reader.framesRead) / Double(max(1, $0)) } ?? 0
        }
        while batch.hasRoom {
            let offset = reader.nextRecordOffset ?? 0
            guard let f = try reader.next() else {
                batch.isLast = true
                return false
            }
            batch.append(f.bytes, stamp: ReplayJob.shifted(f.timestampNanoseconds, shift), offset: offset)
        }
        return true
    }

    private func write(_ batch: ReplayBatch) {
        if let image = batch.prepared {
            writer.write(records: UnsafeRawBufferPointer(start: batch.image, count: image.bytes), frames: image.frames, frameBytes: image.frameBytes)
            writer.flush()
            return
        }
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

    /// Runs pass 2; returns each thread's steps, CPU time and time waiting for its turns.
    func run(work: ReplayWork, progress: (ReplayJob.Progress) -> Void) throws -> [ReplayJob.ThreadTime] {
        guard threads > 1 else {
            let start = Self.threadCPUSeconds()
            let batch = ReplayBatch()
            var more = true, written = 0
            var clock = StepClock()
            while more {
                batch.reset()
                more = try fill(batch)
                clock.lap(.read)
                try work.process(batch)
                clock.lap(.work)
                try batch.protect(cipherKeys: { $0 })   // one thread: the work state's own contexts
                clock.lap(.protect)
                batch.prepareOutput()
                clock.lap(.layOut)
                write(batch)
                clock.lap(.write)
                written += batch.count
                progress(ReplayJob.Progress(frames: written, fractionRead: batch.fractionRead))
                clock.restart()
            }
            return [ReplayJob.ThreadTime(stages: "read + work + write", cpuSeconds: Self.threadCPUSeconds() - start, waitSeconds: 0,
                                         steps: clock.steps)]
        }
        return try runLanes(work: work, progress: progress)
    }

    /// How long a lane spins for its turn before it parks: about 50-100 µs when every lane has
    /// a CPU (the turn usually comes within a batch's work, and a futex wake on the handing
    /// lane's path costs more than the spin), the ring's short default when lanes outnumber
    /// CPUs (a spinning lane would take the CPU the lane holding the turn needs: 3 lanes on the
    /// 2-CPU VM took 0.88-0.93 s with 2 000 spins, 0.72-0.73 s with 200, 1 M packets).
    static func turnSpinRounds(lanes: Int, cpus: Int) -> Int {
        lanes <= cpus ? 20_000 : SPSCRing<Bool>.defaultSpinRounds
    }

    /// `threads` lanes: this thread is lane 0 (and reports progress), the others run on threads
    /// of their own.
    private func runLanes(work: ReplayWork, progress: (ReplayJob.Progress) -> Void) throws -> [ReplayJob.ThreadTime] {
        let n = threads
        let spin = Self.turnSpinRounds(lanes: n, cpus: ProcessInfo.processInfo.activeProcessorCount)
        // turns[step][j] carries the turn for `step` (0 read, 1 work, 2 write) from lane j to
        // lane (j + 1) % n; lane 0 starts with all three. A read turn says whether the capture
        // goes on: false (the lane before read the last batch) ends the lane, which passes it on.
        let turns = (0..<3).map { _ in (0..<n).map { _ in SPSCRing<Bool>(capacity: 2, spinRounds: spin) } }
        for step in 0..<3 { turns[step][n - 1].push(true) }
        let failure = FailureBox()
        let times = ThreadTimes()
        let written = WrittenFrames()
        // The first error: every ring closed, so each lane stops at its next turn.
        @Sendable func fail(_ error: Error) {
            failure.set(error)
            for step in turns { for ring in step { ring.close() } }
        }
        @Sendable func lane(_ j: Int, progress: (ReplayJob.Progress) -> Void) {
            let cpu = ReplayPipeline.threadCPUSeconds()
            var waited: UInt64 = 0
            var clock = StepClock()
            defer { times.add("read + work + write", since: cpu, waited: Double(waited) / 1e9, steps: clock.steps) }
            let inbox = turns.map { $0[(j + n - 1) % n] }, outbox = turns.map { $0[j] }
            // Waits for the turn of `step`; nil once the rings are closed (an error somewhere).
            // The step's own clock starts once the turn is here.
            func turn(_ step: Int) -> Bool? {
                let t0 = DispatchTime.now().uptimeNanoseconds
                defer {
                    clock.restart()
                    waited += clock.start - t0
                }
                return inbox[step].pop()
            }
            let batch = ReplayBatch()
            let ciphers = LaneCipherKeys()
            while true {
                guard turn(0) == true else {
                    outbox[0].push(false)   // the capture ended: the next lane stops too
                    return
                }
                batch.reset()
                let more: Bool
                do { more = try fill(batch) } catch { return fail(error) }
                clock.lap(.read)
                outbox[0].push(more)
                guard turn(1) != nil else { return }
                do { try work.process(batch) } catch { return fail(error) }
                // This lane's cipher contexts for the batch's keys, copied while the work
                // state's contexts are this lane's alone (the turn).
                batch.pendingCrypto.forEachKeys(ciphers.prepare)
                clock.lap(.work)
                outbox[1].push(true)
                clock.restart()
                do { try batch.protect(cipherKeys: ciphers.keys(for:)) } catch { return fail(error) }
                ciphers.endBatch()
                clock.lap(.protect)
                batch.prepareOutput()
                clock.lap(.layOut)
                guard turn(2) != nil else { return }
                write(batch)
                written.frames += batch.count
                let done = written.frames
                clock.lap(.write)
                outbox[2].push(true)
                progress(ReplayJob.Progress(frames: done, fractionRead: batch.fractionRead))
                if !more { return }
            }
        }
        let done = DispatchGroup()
        for j in 1..<n {
            done.enter()
            let t = Thread {
                lane(j, progress: { _ in })
                done.leave()
            }
            t.stackSize = 1 << 20
            t.start()
        }
        lane(0, progress: progress)
        done.wait()
        if let e = failure.error { throw e }
        return times.all
    }

    /// Wall time per step of one thread: `lap` adds the time since the last `restart` (or lap)
    /// to a step. Two clock reads per step and batch (a few hundred packets).
    struct StepClock {
        var steps = ReplayJob.StepSeconds()
        var start = DispatchTime.now().uptimeNanoseconds
        mutating func restart() { start = DispatchTime.now().uptimeNanoseconds }
        enum Step { case read, work, protect, layOut, write }
        mutating func lap(_ step: Step) {
            let now = DispatchTime.now().uptimeNanoseconds
            let t = Double(now - start) / 1e9
            switch step {
            case .read: steps.read += t
            case .work: steps.work += t
            case .protect: steps.protect += t
            case .layOut: steps.layOut += t
            case .write: steps.write += t
            }
            start = now
        }
    }

    /// A lane's own cipher contexts for the session keys its batches use: a batch AES-CM
    /// context is mutated per call (`AESCounterModeBatch`), so lanes protecting at the same time
    /// cannot share the work state's. A copy (`SRTPSessionKeys.copy()`: no key derivation) is
    /// made in the work turn (`prepare`: copying reads the work state's contexts) when keys
    /// first appear in one of the lane's batches, that is after an MTK switch, and dropped after
    /// the first batch that no longer uses them, so a retired key's contexts (zeroed when
    /// released) do not outlive the lane's next batch.
    final class LaneCipherKeys {
        private var entries: [(original: SRTPSessionKeys, copy: SRTPSessionKeys, used: Bool)] = []
        init() { entries.reserveCapacity(16) }

        /// In the work turn: this lane's copy of `k`, made now if it has none.
        func prepare(_ k: SRTPSessionKeys) {
            for i in entries.indices where entries[i].original === k {
                entries[i].used = true
                return
            }
            entries.append((k, k.copy(), true))
        }

        /// Outside the turn: the copy `prepare` made (nil if it made none).
        func keys(for k: SRTPSessionKeys) -> SRTPSessionKeys? {
            for e in entries where e.original === k { return e.copy }
            return nil
        }

        /// After a batch: forgets the keys it did not use.
        func endBatch() {
            entries.removeAll { !$0.used }
            for i in entries.indices { entries[i].used = false }
        }

        var count: Int { entries.count }
    }

    /// Frames written so far: touched only by the lane holding the write turn.
    final class WrittenFrames: @unchecked Sendable { var frames = 0 }

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
        func add(_ stages: String, since start: Double, waited: Double, steps: ReplayJob.StepSeconds) {
            let t = ReplayJob.ThreadTime(stages: stages, cpuSeconds: ReplayPipeline.threadCPUSeconds() - start, waitSeconds: waited, steps: steps)
            lock.lock(); times.append(t); lock.unlock()
        }
        var all: [ReplayJob.ThreadTime] { lock.lock(); defer { lock.unlock() }; return times }
    }

    /// The first error of any lane (set once, read after the threads are joined).
    final class FailureBox: @unchecked Sendable {
        private let lock = NSLock()
        private var first: Error?
        func set(_ e: Error) { lock.lock(); if first == nil { first = e }; lock.unlock() }
        var error: Error? { lock.lock(); defer { lock.unlock() }; return first }
    }
}

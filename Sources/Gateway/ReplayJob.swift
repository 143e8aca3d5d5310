import Foundation
import KeyManagement
import PacketIO

/// `replay`: pcap in, pcap out, deterministic. The capture's timestamps are the clock: each
/// packet is protected with the MTK in force at its time, MIKEY MTK messages are interleaved
/// in time order, and the output is byte-identical run after run for the same store and input.
public final class ReplayJob {
    public struct Options: Sendable {
        public var input: String
        public var output: String
        public var dropUnmatched = false
        public var checksum: UDPFrameEditor.ChecksumPolicy = .recompute
        public var download = DownloadEngine.Options()
        /// Re-time the capture so its first frame is at this Unix time (nanoseconds); every
        /// frame keeps its offset. Nil: the capture's own timestamps.
        public var startNanoseconds: UInt64?
        /// 1: everything on the caller's thread. 2 to 4: as many lanes, each taking every
        /// second (third, fourth) batch through read, protect (+ MIKEY and FLUTE) and write, in
        /// capture order by turns handed between them through SPSC rings (`ReplayPipeline`);
        /// the caller's thread is one of them. The output is byte-identical either way.
        /// Default: `ReplayJob.defaultThreads`.
        public var threads = ReplayJob.defaultThreads
        /// How far (seconds) a frame's time may be behind or ahead of the capture's running
        /// clock before it is implausible: passed through (dropped with `dropUnmatched`),
        /// counted, never used for keys or timing (`CaptureClock`).
        public var timeJumpLimitSeconds: Int64 = CaptureClock.defaultBoundSeconds
        /// Pass 1 walks the whole capture even when every session starts early (tests: the
        /// look-ahead must give the bytes the whole walk gives).
        var scanWholeCapture = false
        public init(input: String, output: String) {
            self.input = input
            self.output = output
        }
    }

    public struct Report: Sendable, Codable {
        public var input: String
        public var output: String
        public var linkType: String
        public var firstPacketTime: Int64?
        public var lastPacketTime: Int64?
        public var statistics: GatewayStatistics
        public var download: [DownloadStatistics]
        public var rollover: [Flow]
        /// Whether pass 1 walked the whole capture (a session started late or not at all, or
        /// pcapng), rather than stopping once every session had started.
        public var scannedWholeCapture: Bool
        public var seconds: Double
        /// Pass 1, wall seconds (a whole walk is split over the threads).
        public var scanSeconds: Double
        /// Pass 2's threads: their steps, CPU time and time waiting for their turns.
        public var threads: [ThreadTime]
        public struct Flow: Sendable, Codable { public var session: String; public var ssrc: String; public var roc: UInt32 }

        /// Each step's wall time summed over pass 2's threads. Read, work and write are done
        /// by one lane at a time (their turns), so however many CPUs and lanes there are, pass 2
        /// takes at least the largest of those three sums: `turnBound`.
        public var steps: StepSeconds { threads.reduce(StepSeconds()) { $0 + $1.steps } }
        /// The least time pass 2 could take on any number of CPUs with these step costs: the
        /// longest turn-held step (read, work or write) summed over the lanes.
        public var turnBound: Double { let s = steps; return max(s.read, s.work, s.write) }
    }

    /// Wall seconds one thread spent in each step of pass 2. Read, work and write hold their
    /// turn; protecting (the SRTP encryption, MACs and tails the work step left,
    /// `SRTPPendingCrypto`) and laying the output out (`ReplayBatch.prepareOutput`) need none.
    public struct StepSeconds: Sendable, Codable, Equatable {
        public var read = 0.0, work = 0.0, protect = 0.0, layOut = 0.0, write = 0.0
        public init() {}
        static func + (a: Self, b: Self) -> Self {
            var r = a
            r.read += b.read; r.work += b.work; r.protect += b.protect; r.layOut += b.layOut; r.write += b.write
            return r
        }
    }

    /// One of pass 2's threads: which steps it ran ("read + work + write"), its CPU time (the
    /// thread's own clock) and the wall time it spent waiting for its turns (spinning, which
    /// the CPU time includes, then parked, which it does not). CPU minus waiting is about what
    /// the thread computed; a lane that waits long is held up by the work turn.
    public struct ThreadTime: Sendable, Codable, Equatable {
        public var stages: String
        public var cpuSeconds: Double
        public var waitSeconds: Double
        /// Wall time in each step (`Report.steps`, `Report.turnBound`).
        public var steps: StepSeconds
    }

    /// What pass 1 learns from a run of consecutive frames; runs merge in capture order.
    struct ScanPart: Sendable {
        var count = 0
        /// Per session: first and last packet time (whole seconds, re-timed), the first
        /// packet's frame as a template for the MIKEY messages injected beside it.
        var first: [Int64?], last: [Int64?], templates: [InjectionTemplate?]

        init(sessions: Int) {
            first = Array(repeating: nil, count: sessions)
            last = Array(repeating: nil, count: sessions)
            templates = Array(repeating: nil, count: sessions)
        }

        /// Takes in the next frame; `clock` is the capture's running clock (frames it finds
        /// implausible are not a session's first or last packet).
        mutating func add(_ f: CapturedFrame, link: LinkType, lookup: TransportAddressTable<Int>, shift: Int64, clock: inout CaptureClock) {
            count += 1
            guard clock.admit(ReplayJob.shifted(f.timestampNanoseconds, shift)) else { return }
            guard let base = f.bytes.baseAddress,
                  case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: link),
                  let i = lookup[u.destination] else { return }
            let t = Int64(ReplayJob.shifted(f.timestampNanoseconds, shift) / 1_000_000_000)
            if first[i] == nil {
                first[i] = t
                templates[i] = InjectionTemplate(linkHeader: Array(f.bytes[0..<u.ipOffset]), source: u.source.address, hopLimit: u.hopLimit)
            }
            last[i] = t
        }

        /// Adds the run that follows this one in the capture.
        mutating func append(_ later: ScanPart) {
            count += later.count
            for i in first.indices {
                if first[i] == nil { (first[i], templates[i]) = (later.first[i], later.templates[i]) }
                last[i] = later.last[i] ?? last[i]
            }
        }
    }

    public let sessions: [StreamingSession]
    public let downloads: [DownloadSession]
    /// Records the last run's look-ahead examined (0 after a whole first pass; tests).
    private(set) var lookaheadRecords = 0
    public let keySource: KeySource
    public let options: Options

    public init(sessions: [StreamingSession], downloads: [DownloadSession] = [], keySource: KeySource, options: Options) {
        self.sessions = sessions
        self.downloads = downloads
        self.keySource = keySource
        self.options = options
    }

    static func shifted(_ t: UInt64, _ shift: Int64) -> UInt64 {
        shift >= 0 ? t &+ UInt64(shift) : (t > UInt64(-shift) ? t - UInt64(-shift) : 0)
    }

    /// One lane per CPU, up to four. More lanes than CPUs only wait for one another (the 2-CPU
    /// development VM, `replay` of 1 M packets, alternating runs: 2 lanes 0.49-0.60 s wall, 3
    /// lanes 0.72-0.75 s). Read, work and write are done in turn, one lane at a time; with the
    /// SRTP crypto outside the work turn (`SRTPPendingCrypto`) the write step is the longest
    /// there (about 290 ns per packet into tmpfs, 120 ns for work and for read), while a lane
    /// spends about 900 ns of CPU per packet in all: three lanes would each need about 300 ns
    /// per packet, four fit within the write step. Not measured beyond 2 CPUs (none here).
    public static let maximumThreads = 4
    public static var defaultThreads: Int { min(maximumThreads, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    /// How far a run has got: input frames through every step, and the share of the input
    /// read (0...1).
    public struct Progress: Sendable {
        public var frames: Int
        public var fractionRead: Double
    }

    /// How far pass 1 walks before it gives up finding every session's first packet and walks
    /// the whole capture instead (`run`).
    static let sessionSearchBytes = 16 << 20

    /// Runs the job; `progress` is called after every few hundred frames written.
    public func run(progress: (Progress) -> Void = { _ in }) throws -> Report {
        let started = DispatchTime.now().uptimeNanoseconds
        let scan = try CaptureReader(path: options.input)
        guard let link = scan.linkType else {
            throw CaptureError.cannotOpen(path: options.input, reason: "link type \(scan.dataLinkType) is not supported (Ethernet, Linux cooked v1/v2, raw IP, loopback)")
        }
        var lookup = TransportAddressTable<Int>()
        for s in sessions { lookup[s.rtp] = s.index; lookup[s.rtcp] = s.index }
        var downloadLookup = TransportAddressTable<Int>()
        for d in downloads { downloadLookup[d.destination] = d.index }
        // The capture's clock starts at the median of its first frames (`CaptureClock`);
        // re-timing moves the first plausible one of them to --start-time.
        var firstTimes: [UInt64] = []
        while firstTimes.count < CaptureClock.seedFrames, let f = try scan.next() { firstTimes.append(f.timestampNanoseconds) }
        try scan.rewind()
        let start = CaptureClock.start(of: firstTimes, boundSeconds: options.timeJumpLimitSeconds) ?? (median: 0, first: 0)
        let shift: Int64
        if let startTime = options.startNanoseconds, !firstTimes.isEmpty {
            shift = Int64(bitPattern: startTime) - Int64(bitPattern: start.first)
        } else {
            shift = 0
        }
        let clock = CaptureClock(start: Self.shifted(start.median, shift), boundSeconds: options.timeJumpLimitSeconds)

        // Pass 1: each session's first packet (its time and the frame its MIKEY messages are
        // modelled on) must be known before the first frame is written — its pre-roll message
        // comes `announceLead` ahead of it. In a mapped capture where every session starts
        // within the first `sessionSearchBytes`, that is as far as pass 1 goes, and pass 2
        // looks ahead in the file for where each stream ends (`SessionLookahead`): the capture
        // is read once. Otherwise (a session starting later or not at all, pcapng) pass 1
        // walks the whole capture for each session's last packet too.
        let sessionCount = sessions.count
        let lookupTable = lookup
        var quick = ScanPart(sessions: sessionCount)
        var quickClock = clock
        if scan.isMapped, !options.scanWholeCapture {
            while quick.first.contains(where: { $0 == nil }), (scan.nextRecordOffset ?? 0) < Self.sessionSearchBytes,
                  let f = try scan.next() {
                quick.add(f, link: link, lookup: lookupTable, shift: shift, clock: &quickClock)
            }
        }
        let first: [Int64?], templates: [InjectionTemplate?], horizon: ReplayWork.Horizon, total: Int?
        if !options.scanWholeCapture, !quick.first.contains(where: { $0 == nil }),
           let ahead = SessionLookahead(reader: scan, link: link, sessions: lookupTable, count: sessionCount, shift: shift) {
            (first, templates, total) = (quick.first, quick.templates, nil)
            horizon = .lookahead(ahead)
        } else {
            // The whole walk, in one part: the capture's clock (`CaptureClock`) is a running
            // one, so which frames are plausible is only known walking in order.
            let parts = try scan.scanInParts(1) { range in
                var part = ScanPart(sessions: sessionCount)
                var partClock = clock
                while let f = try range.next() { part.add(f, link: link, lookup: lookupTable, shift: shift, clock: &partClock) }
                return part
            }
            var merged = ScanPart(sessions: sessionCount)
            for part in parts { merged.append(part) }
            (first, templates, total) = (merged.first, merged.templates, merged.count)
            horizon = .lastPackets(merged.last.map { $0 ?? 0 })
        }
        let scanSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9

        // Pass 2: protect, interleave MIKEY, write: five steps per batch (read -> work ->
        // protect -> lay-out -> write, see `ReplayPipeline`), on `threads` lanes.
        try scan.rewind()
        let reader = scan
        // Never write over the input (a symlink or hard link to it as --output), and never leave
        // a half-written file where the output goes: write beside it, rename into place at the end.
        let output = try OutputFile(output: options.output, input: options.input)
        let writer = try CaptureWriter(path: output.writePath, dataLinkType: reader.dataLinkType)
        defer { writer.close(); output.discard() }
        let engine = try StreamingEngine(sessions: sessions, keySource: keySource, dropUnmatched: options.dropUnmatched,
                                         checksum: options.checksum)
        engine.deferUDPChecksums = true   // filled as each batch's output is laid out (ReplayBatch.prepareOutput)
        let download = DownloadEngine(sessions: downloads, keySource: keySource, options: { var o = options.download; o.expiresShiftSeconds = shift / 1_000_000_000; return o }())
        let work = ReplayWork(job: self, link: link, engine: engine, download: download, downloadLookup: downloadLookup,
                              templates: templates, first: first, horizon: horizon, clock: clock)
        let pipeline = ReplayPipeline(reader: reader, writer: writer, shift: shift, total: total, threads: options.threads)
        let threadTimes: [ThreadTime]
        do {
            threadTimes = try pipeline.run(work: work, progress: progress)
            try reader.checkIntact()   // the last frames were read after the reader's own last check
            try writer.finish()
            writer.close()
            try output.commit()
        } catch {
            // What was written is the capture's beginning only: no output rather than a short one.
            writer.close()
            output.discard()
            if !output.isTemporary { Self.removePartialOutput(options.output) }
            throw error
        }
        if case .lookahead(let ahead) = horizon { lookaheadRecords = ahead.recordsExamined }
        progress(Progress(frames: engine.statistics.framesIn, fractionRead: 1))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var statistics = engine.statistics
        if work.clock.rejected > 0 {
            statistics.framesIn += work.clock.rejected
            if !options.dropUnmatched { statistics.framesOut += work.clock.rejected }
            if options.dropUnmatched {
                statistics.dropped["\(ReplayWork.implausibleTimestamp)", default: 0] += work.clock.rejected
            } else {
                statistics.passedThrough["\(ReplayWork.implausibleTimestamp)", default: 0] += work.clock.rejected
            }
        }
        return Report(input: options.input, output: options.output, linkType: link.name,
                      firstPacketTime: pipeline.firstTime, lastPacketTime: pipeline.lastTime, statistics: statistics,
                      download: download.statistics,
                      rollover: engine.rollover.map { Report.Flow(session: $0.session, ssrc: String(format: "0x%08x", $0.ssrc), roc: $0.roc) },
                      scannedWholeCapture: total != nil,
                      seconds: seconds, scanSeconds: scanSeconds, threads: threadTimes)
    }

    /// Where replay writes: a temporary file beside `output` (same folder, so the final rename is
    /// atomic), renamed over `output` on success; a FIFO, a device or "-" is written directly.
    /// An output that is the input itself (same device and inode, e.g. through a symlink) is refused.
    struct OutputFile {
        let output: String
        let writePath: String
        let isTemporary: Bool

        struct SameAsInput: Error, CustomStringConvertible {
            let output: String, input: String
            var description: String {
                "--output \(output) is the input capture \(input) (the same file, through a link); nothing was written; fix: choose another output path"
            }
        }
        struct CannotReplace: Error, CustomStringConvertible {
            let output: String, reason: String
            var description: String { "cannot put the output in place at \(output) (\(reason)); fix: check the folder's permissions" }
        }

        init(output: String, input: String) throws {
            self.output = output
            var o = stat(), i = stat()
            if stat(output, &o) == 0, stat(input, &i) == 0, o.st_dev == i.st_dev, o.st_ino == i.st_ino {
                throw SameAsInput(output: output, input: input)
            }
            var l = stat()
            let exists = lstat(output, &l) == 0
            let special = output == "-" || (exists && (l.st_mode & S_IFMT) != S_IFREG && (l.st_mode & S_IFMT) != S_IFLNK)
            if special {
                writePath = output
                isTemporary = false
            } else {
                let dir = (output as NSString).deletingLastPathComponent
                let name = (output as NSString).lastPathComponent
                writePath = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(".\(name).partial-\(getpid())")
                isTemporary = true
            }
        }

        /// Moves the finished file into place (replacing a symlink itself, never its target).
        func commit() throws {
            guard isTemporary else { return }
            guard rename(writePath, output) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(writePath)
                throw CannotReplace(output: output, reason: reason)
            }
        }

        /// Removes the temporary file of a run that did not finish (nothing after `commit`).
        func discard() {
            guard isTemporary else { return }
            var st = stat()
            if lstat(writePath, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { unlink(writePath) }
        }
    }

    /// Removes the output of a failed run when it is a file of its own (not a FIFO, a device or
    /// libpcap's "-" for standard output).
    static func removePartialOutput(_ path: String) {
        var st = stat()
        guard path != "-", lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
        unlink(path)
    }
}

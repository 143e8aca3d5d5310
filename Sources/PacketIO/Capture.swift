import CPcap
import CMapGuard
import CSocketShims
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Errors opening, reading or writing captures. Names the file and what to do.
public enum CaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case readFailed(path: String, reason: String)
    case cannotCreate(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot read capture \(path): \(reason) (expected a pcap or pcapng file)"
        case let .readFailed(path, reason): return "error reading capture \(path): \(reason) (the file may be truncated or corrupt)"
        case let .cannotCreate(path, reason): return "cannot write capture \(path): \(reason)"
        case let .writeFailed(path, reason): return "error writing capture \(path): \(reason) (the output is incomplete; check free space and permissions)"
        }
    }
}

/// One frame from a capture. `bytes` stays valid until the next call to `next()`.
public struct CapturedFrame {
    /// Capture time in nanoseconds since the Unix epoch.
    public var timestampNanoseconds: UInt64
    public var bytes: UnsafeRawBufferPointer
    /// Length on the wire (may exceed `bytes.count` when the capture was truncated by snaplen).
    public var originalLength: Int
}

/// Reads pcap and pcapng files (nanosecond timestamps).
///
/// libpcap opens every capture: it checks the file header and names the link type. A classic
/// pcap file (the format `replay` writes and most tools save) is then read straight from a
/// read-only mapping of the file — each frame is a pointer into the page cache, with no
/// `read(2)` and no copy per record — while pcapng and the other variants libpcap knows go
/// through `pcap_next_ex`. Both paths give the same frames, timestamps and errors
/// (`CaptureTests` compares them on every fixture and on damaged files). A mapped capture is
/// read as it was when opened: records appended later are not seen, and a file another program
/// shortens during the walk stops it with an error naming the file (`CMapGuard` turns the SIGBUS
/// of the lost pages into zeros and a flag; `checkIntact()`).
public final class CaptureReader {
    public let path: String
    /// The DLT value libpcap reports.
    public let dataLinkType: Int32
    /// Nil when the link type is not one we parse (frames are then passed through).
    public let linkType: LinkType?
    private var handle: OpaquePointer
    /// A value (raw pointer and offsets): walking it retains nothing.
    private var records: MappedRecords?
    public private(set) var framesRead = 0

    /// Whether records come from the mapped file (classic pcap) rather than through libpcap.
    public var isMapped: Bool { records != nil }

    /// - Parameter mapping: false reads every record through libpcap (tests compare the two).
    public init(path: String, mapping: Bool = true) throws(CaptureError) {
        self.path = path
        handle = try Self.open(path)
        dataLinkType = pcap_datalink(handle)
        linkType = LinkType(rawValue: dataLinkType)
        records = mapping ? MappedRecords(path: path, snapshot: Int(pcap_snapshot(handle))) : nil
    }

    deinit {
        records?.unmap()
        pcap_close(handle)
    }

    private static func open(_ path: String) throws(CaptureError) -> OpaquePointer {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            throw .cannotOpen(path: path, reason: String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return h
    }

    /// Throws when the file became shorter while mapped (see `MappedRecords.checkIntact`): frames
    /// handed out earlier may then have read as zeros. `next()` checks this for every record;
    /// call it once more after the last frame has been used.
    public func checkIntact() throws(CaptureError) {
        try records?.checkIntact(path: path, at: records?.offset ?? 0)
    }

    /// File offset of the record `next()` reads next (mapped captures; nil through libpcap).
    public var nextRecordOffset: Int? { records?.offset }

    /// How much of the file the walk has passed, 0...1 (mapped captures; nil through libpcap,
    /// which tells no position).
    public var fractionRead: Double? {
        guard let r = records else { return nil }
        let body = r.size - MappedRecords.fileHeaderBytes
        return body > 0 ? Double(r.offset - MappedRecords.fileHeaderBytes) / Double(body) : 1
    }

    /// A second walk over the mapped capture, from its first record to the end of the file,
    /// independent of this reader's position (`replay` looks ahead with it, `restarted(at:)`,
    /// while the reader goes on). Nil when the capture is read through libpcap.
    public func separateWalk() -> CaptureRange? {
        guard let r = records else { return nil }
        return CaptureRange(source: .mapped(r.range(from: MappedRecords.fileHeaderBytes, to: r.size)), path: path)
    }

    /// Starts again at the first frame (`replay` may read a capture twice).
    public func rewind() throws(CaptureError) {
        framesRead = 0
        if records != nil {
            records?.rewind()
        } else {
            let h = try Self.open(path)
            pcap_close(handle)
            handle = h
        }
    }

    @inline(__always)
    public func next() throws(CaptureError) -> CapturedFrame? {
        if records != nil {
            guard let f = try records?.next(path: path) else { return nil }
            framesRead += 1
            return f
        }
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        let rc = pcap_next_ex(handle, &header, &data)
        switch rc {
        case 1:
            guard let h = header?.pointee, let d = data else { return nil }
            framesRead += 1
            // pcap's seconds field is unsigned 32-bit (pcap-savefile(5)); libpcap hands it over
            // as a signed int32 widened, so times after 2038 arrive negative.
            let seconds = h.ts.tv_sec < 0 ? UInt64(UInt32(truncatingIfNeeded: h.ts.tv_sec)) : UInt64(h.ts.tv_sec)
            let ts = seconds &* 1_000_000_000 &+ UInt64(max(0, h.ts.tv_usec))
            return CapturedFrame(timestampNanoseconds: ts, bytes: UnsafeRawBufferPointer(start: d, count: Int(h.caplen)),
                                 originalLength: Int(h.len))
        case -2:
            return nil
        default:
            throw .readFailed(path: path, reason: String(cString: pcap_geterr(handle)))
        }
    }
}

/// A walk over part of a capture, for `CaptureReader.scanInParts` and `separateWalk()`: `next()`
/// gives the part's frames in file order, then nil. Frames stay valid while the reader lives.
public struct CaptureRange {
    fileprivate enum Source {
        case mapped(MappedRecords)
        case reader(CaptureReader)   // not mapped: the whole capture through libpcap, one part
    }
    fileprivate var source: Source
    fileprivate let path: String

    public mutating func next() throws(CaptureError) -> CapturedFrame? {
        switch source {
        case .mapped(var r):
            // Moved out and back: the walk's state is a few words (no copy of any frame).
            let f = try r.next(path: path)
            source = .mapped(r)
            return f
        case .reader(let reader):
            return try reader.next()
        }
    }

    /// Offset of the next record (mapped captures; 0 otherwise).
    public var offset: Int {
        if case .mapped(let r) = source { return r.offset }
        return 0
    }

    /// Where the walk ends (mapped captures: the end of its part, or of the file; 0 otherwise):
    /// `offset == endOffset` once it has gone all the way.
    public var endOffset: Int {
        if case .mapped(let r) = source { return r.end }
        return 0
    }

    /// This walk started again at the record at `offset` (a position a walk over the same file
    /// gave), to the end of the file: a value of its own, so it can be made and walked on a
    /// thread other than the one that walks this one. Nil through libpcap.
    public func restarted(at offset: Int) -> CaptureRange? {
        guard case .mapped(let r) = source, offset >= MappedRecords.fileHeaderBytes, offset <= r.size else { return nil }
        return CaptureRange(source: .mapped(r.range(from: offset, to: r.size)), path: path)
    }
}

extension CaptureReader {
    /// Runs `body` over the whole capture split into up to `parts` consecutive ranges, on as many
    /// threads, and returns what it made of each range, in file order — for a first pass whose
    /// results can be merged (`replay`'s scan: counts, first and last times per session).
    ///
    /// A classic pcap file has no index: a record's place is known only from the one before it.
    /// Each part after the first therefore starts where a run of plausible record headers begins
    /// near its share of the file (`MappedRecords.looksLikeRecord`), and is kept only if the part
    /// before it, walking from the file header, ended exactly there. A guess that was wrong —
    /// frame octets that looked like records — costs a rescan of that part on this thread, never
    /// a wrong result: every frame is seen exactly once, in order, and an error is the one a
    /// single walk would have met. pcapng (read through libpcap) and small files run as one part.
    /// The walk starts at the first frame whatever the reader's position; `rewind()` before
    /// reading from the reader itself again.
    public func scanInParts<Part: Sendable>(_ parts: Int, _ body: @escaping @Sendable (inout CaptureRange) throws -> Part) throws -> [Part] {
        try scanInParts(parts, minimumPartBytes: Self.partMinimumBytes, body).parts
    }

    /// `scanInParts`, with the smallest part to split off, and how many parts were rescanned
    /// (their guessed start was not a record boundary) — for tests.
    func scanInParts<Part: Sendable>(_ parts: Int, minimumPartBytes: Int, _ body: @escaping @Sendable (inout CaptureRange) throws -> Part) throws
        -> (parts: [Part], rescanned: Int) {
        guard let records, parts > 1, records.size >= minimumPartBytes * parts else {
            var whole = separateWalk() ?? CaptureRange(source: .reader(self), path: path)
            if records == nil { try rewind() }
            defer { if records == nil { try? rewind() } }
            return ([try body(&whole)], 0)
        }
        // Part starts: the file header, then a guessed record boundary in each later share.
        var starts = [MappedRecords.fileHeaderBytes]
        for k in 1..<parts {
            let nominal = MappedRecords.fileHeaderBytes + (records.size - MappedRecords.fileHeaderBytes) / parts * k
            if let b = records.boundary(searchingFrom: nominal), b > starts[starts.count - 1] { starts.append(b) }
        }
        let n = starts.count
        let begins = starts
        let ends = Array(starts.dropFirst()) + [records.size]
        let results = PartResults<Part>(count: n)
        let path = self.path
        DispatchQueue.concurrentPerform(iterations: n) { k in
            var range = CaptureRange(source: .mapped(records.range(from: begins[k], to: ends[k])), path: path)
            do {
                let r = try body(&range)
                results.set(k, .success((r, range.offset)))
            } catch {
                results.set(k, .failure(error))
            }
        }
        // Keep the parts whose start the walk from the file header reached; rescan the others.
        var out: [Part] = []
        var rescanned = 0
        var at = MappedRecords.fileHeaderBytes
        for k in 0..<n {
            if starts[k] == at, let r = results.get(k) {
                let (part, stop) = try r.get()
                out.append(part)
                at = stop
            } else {
                var range = CaptureRange(source: .mapped(records.range(from: at, to: ends[k])), path: path)
                out.append(try body(&range))
                at = range.offset
                rescanned += 1
            }
        }
        return (out, rescanned)
    }

    /// Below this many octets per part a split costs more than it saves.
    static let partMinimumBytes = 4 << 20
}

/// A walk is a read-only view of the mapping plus its own offsets: copies of it walk different
/// parts of the file on different threads (`scanInParts`) without sharing anything mutable.
extension MappedRecords: @unchecked Sendable {}

/// Each part's outcome (and where its walk stopped), written once by its own thread into its
/// own slot, read after all have finished.
private final class PartResults<Part>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Result<(Part, Int), Error>?>
    private let count: Int
    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }
    func set(_ k: Int, _ r: Result<(Part, Int), Error>) { slots[k] = r }
    func get(_ k: Int) -> Result<(Part, Int), Error>? { slots[k] }
}

/// The record walk over a mapped classic pcap file (pcap-savefile(5)): a 24-octet file header,
/// then per frame a 16-octet record header — seconds, micro- or nanoseconds, captured length,
/// original length, in the byte order of the file's magic number — and the captured octets.
/// Checks what libpcap checks, with its limits: a record longer than 262144 octets is an error;
/// one longer than the file's snapshot length is cut to it; a file that ends inside a record
/// is an error (offset given).
struct MappedRecords {
    static let fileHeaderBytes = 24
    /// libpcap's MAXIMUM_SNAPLEN: larger records are rejected as corrupt.
    static let maximumRecordBytes = 262_144

    let base: UnsafeRawPointer
    let size: Int
    let swapped: Bool
    let nanoseconds: Bool
    let snapshot: Int
    /// CMapGuard slot (-1: unguarded): a SIGBUS in the mapping, the file having been truncated
    /// under it, turns into pages of zeros and this slot's flag, which `next` turns into an error.
    let guardSlot: Int32
    /// Kept open for `fstat`: bytes past a new end of file that share a page with data still in
    /// the file read as zeros without any fault, so a zero record header also asks the file's size.
    let fd: Int32
    private(set) var offset = fileHeaderBytes
    /// Where a walk over part of the file stops: `next` returns nil at the first record that
    /// starts here or later (the whole file: `size`).
    var end: Int
    /// Lines up to here have been asked for: the walk reads ~1 record per 750 octets and each
    /// record header's place is known only from the one before, so without help every header
    /// is a cache miss (~90 ns here); requesting every line 8 KiB ahead turns the walk into
    /// a stream.
    private var prefetched = fileHeaderBytes
    static let prefetchDistance = 8192

    /// Nil when the file is not classic pcap or cannot be mapped (a pipe, say): libpcap reads it.
    init?(path: String, snapshot: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= Self.fileHeaderBytes,
              let m = mmap(nil, Int(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            Glibc.close(fd)
            return nil
        }
        let size = Int(st.st_size)
        let magic = m.loadUnaligned(as: UInt32.self)
        switch magic {
        case 0xa1b2_c3d4: (swapped, nanoseconds) = (false, false)
        case 0xa1b2_3c4d: (swapped, nanoseconds) = (false, true)
        case 0xd4c3_b2a1: (swapped, nanoseconds) = (true, false)
        case 0x4d3c_b2a1: (swapped, nanoseconds) = (true, true)
        default:
            munmap(m, size)
            Glibc.close(fd)
            return nil
        }
        // Only version 2.4, the one every current tool writes: libpcap reads the captured and
        // original lengths of older versions the other way round (2.2 and before always, 2.3 when
        // caplen > len: sf-pcap.c lengths_swapped), so those files go through libpcap (fuzz
        // finding, issue 19 finding 12).
        let major = m.loadUnaligned(fromByteOffset: 4, as: UInt16.self), minor = m.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        guard (swapped ? major.byteSwapped : major) == 2, (swapped ? minor.byteSwapped : minor) == 4 else {
            munmap(m, size)
            Glibc.close(fd)
            return nil
        }
        // Read once, front to back: let the kernel map ahead.
        _ = madvise(m, size, MADV_SEQUENTIAL)
        guardSlot = mbms_mapguard_register(m, size)
        self.fd = fd
        base = UnsafeRawPointer(m)
        self.size = size
        end = size
        self.snapshot = snapshot > 0 ? min(snapshot, Self.maximumRecordBytes) : Self.maximumRecordBytes
    }

    /// Ends the mapping (the owning reader's deinit).
    func unmap() {
        mbms_mapguard_unregister(guardSlot)
        munmap(UnsafeMutableRawPointer(mutating: base), size)
        Glibc.close(fd)
    }

    /// Throws when part of the mapping was lost: the file became shorter than it was when
    /// opened (another program truncated or rewrote it), so some frames read as zeros.
    func checkIntact(path: String, at: Int) throws(CaptureError) {
        var st = stat()
        guard mbms_mapguard_faulted(guardSlot) != 0 || (fstat(fd, &st) == 0 && Int(st.st_size) < size) else { return }
        throw .readFailed(path: path, reason: "the file became shorter than its \(size) bytes while it was being read (truncated or rewritten by another program?); reading stopped at offset \(at)")
    }

    mutating func rewind() {
        offset = Self.fileHeaderBytes
        prefetched = Self.fileHeaderBytes
        end = size
    }

    /// This walk, restarted at `start` and stopping at `end` (a part of the file).
    func range(from start: Int, to end: Int) -> MappedRecords {
        var r = self
        r.offset = start
        r.prefetched = start
        r.end = min(end, size)
        return r
    }

    /// Whether `at` looks like the start of a record: `chain` records in a row (or fewer that end
    /// exactly at the end of the file) with sane fields. Only a guess — octets inside a frame can
    /// look like this — so a part that starts here is kept only once the walk from the file's
    /// start has landed on `at` (`CaptureReader.scanInParts`).
    func looksLikeRecord(at start: Int, chain: Int = 8) -> Bool {
        var at = start
        for _ in 0..<chain {
            if at == size { return at > start }
            guard size - at >= 16 else { return false }
            let fraction = field(at + 4), captured = Int(field(at + 8)), original = Int(field(at + 12))
            guard fraction < (nanoseconds ? 1_000_000_000 : 1_000_000), captured > 0, captured <= Self.maximumRecordBytes,
                  captured <= original, original <= 1 << 24, size - at - 16 >= captured else { return false }
            at += 16 + captured
        }
        return true
    }

    /// The first offset from `from` (searching `limit` octets) that `looksLikeRecord`.
    func boundary(searchingFrom from: Int, limit: Int = 1 << 20) -> Int? {
        var at = max(from, Self.fileHeaderBytes)
        let stop = min(size - 16, at + limit)
        while at <= stop {
            if looksLikeRecord(at: at) { return at }
            at += 1
        }
        return nil
    }

    @inline(__always)
    private func field(_ at: Int) -> UInt32 {
        let v = base.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return swapped ? v.byteSwapped : v
    }

    @inline(__always)
    mutating func next(path: String) throws(CaptureError) -> CapturedFrame? {
        let at = offset
        let left = size - at
        if at >= end {
            if left == 0 { try checkIntact(path: path, at: at) }
            return nil
        }
        let ahead = min(size, at + Self.prefetchDistance)
        while prefetched < ahead {
            mbms_prefetch(base + prefetched)
            prefetched += 64
        }
        guard left >= 16 else {
            try checkIntact(path: path, at: at)   // a damaged walk is reported as its cause
            throw .readFailed(path: path, reason: "truncated dump file; the record header at offset \(at) has \(left) of 16 bytes")
        }
        let seconds = field(at), fraction = field(at + 4), captured = Int(field(at + 8)), original = field(at + 12)
        if mbms_mapguard_faulted(guardSlot) != 0 || (captured | Int(seconds | fraction | original)) == 0 {
            try checkIntact(path: path, at: at)
        }
        guard captured <= Self.maximumRecordBytes else {
            try checkIntact(path: path, at: at)
            throw .readFailed(path: path, reason: "invalid packet capture length \(captured) at offset \(at), bigger than the maximum of \(Self.maximumRecordBytes)")
        }
        guard left - 16 >= captured else {
            try checkIntact(path: path, at: at)
            throw .readFailed(path: path, reason: "truncated dump file; the record at offset \(at) has \(left - 16) of \(captured) captured bytes")
        }
        offset = at + 16 + captured
        // A damaged fraction of 2^31 or more reads as libpcap reads it, so both walks give the
        // same time (fuzz finding, issue 19 finding 12): a file in the host's byte order has it
        // taken as signed 32-bit (struct pcap_sf_pkthdr) and the libpcap path clamps the negative
        // value to 0; a byte-swapped file has it swapped as unsigned.
        let part = UInt64(!swapped && Int32(bitPattern: fraction) < 0 ? 0 : fraction)
        let nanos = UInt64(seconds) &* 1_000_000_000 &+ (nanoseconds ? part : part &* 1_000)
        return CapturedFrame(timestampNanoseconds: nanos,
                             bytes: UnsafeRawBufferPointer(start: base + at + 16, count: min(captured, snapshot)),
                             originalLength: Int(original))
    }
}

/// Writes classic pcap (microsecond timestamps): what tshark, tcpdump and every receiver tool
/// read.
///
/// libpcap writes the file header (it maps the link type to the file's LINKTYPE_ value); the
/// records are then gathered and written with `writev(2)`, 64 KiB of record headers and copied
/// frames at a time, or — with `write(timestampNanoseconds:borrowing:)` — straight from the
/// caller's buffers, so a batch of protected frames reaches the file with one system call and
/// no copy of ours. The bytes are the same as libpcap's `pcap_dump` would write (`CaptureTests`).
/// A failed write is kept and thrown by `finish()`.
public final class CaptureWriter {
    public let path: String
    private let dead: OpaquePointer
    private let dumper: OpaquePointer
    private let fd: Int32
    public private(set) var framesWritten = 0
    public private(set) var bytesWritten = 0
    /// The first write error; later writes are dropped.
    public private(set) var failure: CaptureError?
    private var closed = false

    static let stagingBytes = 1 << 16
    static let maximumVectors = 1024
    private let staging: UnsafeMutableRawPointer
    private var staged = 0
    private let vectors: UnsafeMutablePointer<iovec>
    private var vectorCount = 0

    public init(path: String, dataLinkType: Int32, snapLength: Int32 = 262_144) throws(CaptureError) {
        self.path = path
        guard let d = pcap_open_dead_with_tstamp_precision(dataLinkType, snapLength, UInt32(PCAP_TSTAMP_PRECISION_MICRO)) else {
            throw .cannotCreate(path: path, reason: "libpcap refused link type \(dataLinkType)")
        }
        guard let dump = pcap_dump_open(d, path) else {
            let reason = String(cString: pcap_geterr(d))
            pcap_close(d)
            throw .cannotCreate(path: path, reason: reason)
        }
        // The file header goes out through libpcap's stdio stream now; every record after it
        // goes to the same descriptor directly (the stream stays empty until it is closed).
        guard pcap_dump_flush(dump) == 0, let file = pcap_dump_file(dump) else {
            pcap_dump_close(dump)
            pcap_close(d)
            throw .cannotCreate(path: path, reason: "cannot write the file header")
        }
        dead = d
        dumper = dump
        fd = fileno(file)
        staging = .allocate(byteCount: Self.stagingBytes, alignment: 64)
        vectors = .allocate(capacity: Self.maximumVectors)
    }

    deinit {
        close()
        staging.deallocate()
        vectors.deallocate()
    }

    /// Octets of a record header.
    public static let recordHeaderBytes = 16

    /// Stores the 16-octet record header of a `length`-octet frame at `h` (host byte order,
    /// microseconds, as libpcap writes it): for callers that lay records out themselves
    /// (`write(records:frames:frameBytes:)`).
    @inline(__always)
    public static func storeRecordHeader(_ h: UnsafeMutableRawPointer, timestampNanoseconds nanoseconds: UInt64, length: Int) {
        h.storeBytes(of: UInt32(truncatingIfNeeded: nanoseconds / 1_000_000_000), as: UInt32.self)
        h.storeBytes(of: UInt32(truncatingIfNeeded: nanoseconds % 1_000_000_000 / 1_000), toByteOffset: 4, as: UInt32.self)
        h.storeBytes(of: UInt32(truncatingIfNeeded: length), toByteOffset: 8, as: UInt32.self)
        h.storeBytes(of: UInt32(truncatingIfNeeded: length), toByteOffset: 12, as: UInt32.self)
    }

    /// The record header into the staging area.
    @inline(__always)
    private func stageHeader(_ nanoseconds: UInt64, length: Int) {
        Self.storeRecordHeader(staging + staged, timestampNanoseconds: nanoseconds, length: length)
        appendStaged(16)
    }

    /// Extends the last vector when it ends where the new staged bytes begin.
    @inline(__always)
    private func appendStaged(_ n: Int) {
        let start = staging + staged
        if vectorCount > 0, let b = vectors[vectorCount - 1].iov_base, b + vectors[vectorCount - 1].iov_len == start {
            vectors[vectorCount - 1].iov_len += n
        } else {
            vectors[vectorCount] = iovec(iov_base: start, iov_len: n)
            vectorCount += 1
        }
        staged += n
    }

    @inline(__always)
    private func makeRoom(staging n: Int, vectors v: Int) {
        if staged + n > Self.stagingBytes || vectorCount + v > Self.maximumVectors { flush() }
    }

    /// Writes one frame (copied: `bytes` may change after the call).
    public func write(timestampNanoseconds: UInt64, bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        let n = bytes.count
        if 16 + n <= Self.stagingBytes / 2 {
            makeRoom(staging: 16 + n, vectors: 1)
            stageHeader(timestampNanoseconds, length: n)
            if n > 0, let src = bytes.baseAddress { (staging + staged).copyMemory(from: src, byteCount: n) }
            appendStaged(n)
        } else {
            // Large: straight from the caller's buffer, written before returning.
            write(timestampNanoseconds: timestampNanoseconds, borrowing: bytes)
            flush()
            return
        }
        framesWritten += 1
        bytesWritten += n
    }

    public func write(timestampNanoseconds: UInt64, bytes: [UInt8]) {
        bytes.withUnsafeBytes { write(timestampNanoseconds: timestampNanoseconds, bytes: $0) }
    }

    /// Writes one frame from the caller's buffer without copying it: `bytes` must stay valid
    /// and unchanged until the next `flush()` (or `finish()`/`close()`).
    public func write(timestampNanoseconds: UInt64, borrowing bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        makeRoom(staging: 16, vectors: 2)
        stageHeader(timestampNanoseconds, length: bytes.count)
        if let b = bytes.baseAddress, bytes.count > 0 {
            vectors[vectorCount] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b), iov_len: bytes.count)
            vectorCount += 1
        }
        framesWritten += 1
        bytesWritten += bytes.count
    }

    /// Writes `frames` complete records (each a header from `storeRecordHeader` and its
    /// frame, `frameBytes` frame octets in all) laid out back to back by the caller, without
    /// copying them: `records` must stay valid and unchanged until the next `flush()` (or
    /// `finish()`/`close()`). One record-aligned block goes out as one vector.
    public func write(records: UnsafeRawBufferPointer, frames: Int, frameBytes: Int) {
        guard !closed, let b = records.baseAddress, records.count > 0 else { return }
        makeRoom(staging: 0, vectors: 1)
        vectors[vectorCount] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b), iov_len: records.count)
        vectorCount += 1
        framesWritten += frames
        bytesWritten += frameBytes
    }

    /// Writes everything gathered so far (one `writev(2)` unless the kernel takes less).
    public func flush() {
        defer { vectorCount = 0; staged = 0 }
        guard vectorCount > 0, failure == nil else { return }
        var first = 0
        while first < vectorCount {
            let n = writev(fd, vectors + first, Int32(vectorCount - first))
            if n < 0 {
                if errno == EINTR { continue }
                failure = .writeFailed(path: path, reason: String(cString: strerror(errno)))
                return
            }
            // Skip what was written; a partly written vector is advanced.
            var left = n
            while first < vectorCount, left >= vectors[first].iov_len {
                left -= vectors[first].iov_len
                first += 1
            }
            if left > 0 {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + left }
                vectors[first].iov_len -= left
            }
        }
    }

    /// Flushes and closes; further writes are ignored.
    public func close() {
        guard !closed else { return }
        flush()
        closed = true
        pcap_dump_close(dumper)
        pcap_close(dead)
    }

    /// Flushes and closes, throwing the first write error, if any.
    public func finish() throws(CaptureError) {
        close()
        if let failure { throw failure }
    }
}

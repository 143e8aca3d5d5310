import CInternetChecksum
import CPcap
import Foundation
import TestSupport
import XCTest
@testable import PacketIO

/// The mapped classic-pcap reader and the gathered writer against libpcap (an independent
/// implementation of the same format): same frames, timestamps and errors when reading, the
/// same bytes when writing.
final class CaptureTests: XCTestCase {
    func tempPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-capture-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    struct Read: Equatable {
        var frames: [[UInt8]] = []
        var stamps: [UInt64] = []
        var originals: [Int] = []
        var failed = false
    }

    func readAll(_ path: String, mapping: Bool) throws -> Read {
        let r = try CaptureReader(path: path, mapping: mapping)
        var out = Read()
        do {
            while let f = try r.next() {
                out.frames.append(Array(f.bytes))
                out.stamps.append(f.timestampNanoseconds)
                out.originals.append(f.originalLength)
            }
        } catch {
            out.failed = true
        }
        return out
    }

    /// Every fixture capture: the mapped walk gives exactly what libpcap's `pcap_next_ex` gives.
    func testMappedReaderMatchesLibpcapOnEveryFixture() throws {
        let dir = PacketIOTests.fixtures
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw XCTSkip("\(dir.path) not present (tests expect ../shared beside the checkout)")
        }
        let pcaps = names.filter { $0.hasSuffix(".pcap") }.sorted()
        XCTAssertGreaterThanOrEqual(pcaps.count, 5)
        for name in pcaps {
            let path = dir.appendingPathComponent(name).path
            XCTAssertTrue(try CaptureReader(path: path).isMapped, name)
            let mapped = try readAll(path, mapping: true), libpcap = try readAll(path, mapping: false)
            XCTAssertFalse(libpcap.failed, name)
            XCTAssertGreaterThan(libpcap.frames.count, 100, name)
            XCTAssertEqual(mapped, libpcap, name)
        }
    }

    /// A classic pcap written by hand in either byte order and precision.
    func craft(bigEndian: Bool, nanoseconds: Bool, snaplen: UInt32, records: [(sec: UInt32, frac: UInt32, cap: UInt32, len: UInt32, data: [UInt8])],
               trailing: [UInt8] = []) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] {
            let b = [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
            return bigEndian ? b : b.reversed()
        }
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        var out = u32(nanoseconds ? 0xa1b2_3c4d : 0xa1b2_c3d4) + u16(2) + u16(4) + u32(0) + u32(0) + u32(snaplen) + u32(1)
        for r in records { out += u32(r.sec) + u32(r.frac) + u32(r.cap) + u32(r.len) + r.data }
        return out + trailing
    }

    /// Byte orders, precisions, a snapshot length shorter than a record, and damaged files
    /// (record cut short, header cut short, impossible length): both readers agree on every
    /// frame and on where reading fails.
    func testMappedReaderMatchesLibpcapOnCraftedFiles() throws {
        let frame = (0..<150).map { UInt8(truncatingIfNeeded: $0 * 3) }
        let good: [(sec: UInt32, frac: UInt32, cap: UInt32, len: UInt32, data: [UInt8])] = [
            (1_700_000_000, 999_999, 60, 60, Array(frame.prefix(60))),
            (1_700_000_001, 5, 150, 1500, frame),
            (4_000_000_000, 123_456_789, 0, 0, []),
        ]
        var cases: [(String, [UInt8], Int)] = []   // name, file, frames libpcap reads
        for be in [false, true] {
            for ns in [false, true] {
                cases.append(("be\(be)-ns\(ns)", craft(bigEndian: be, nanoseconds: ns, snaplen: 262_144, records: good), 3))
            }
        }
        cases.append(("snaplen-100", craft(bigEndian: false, nanoseconds: false, snaplen: 100, records: good), 3))
        cases.append(("cut-record", craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: good + [(1, 0, 100, 100, Array(frame.prefix(40)))]), 3))
        cases.append(("cut-header", craft(bigEndian: true, nanoseconds: true, snaplen: 65535, records: good, trailing: [1, 2, 3, 4, 5]), 3))
        cases.append(("huge-record", craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: [good[0], (1, 0, 300_000, 300_000, frame)]), 1))
        for (name, bytes, expected) in cases {
            let path = tempPath("\(name).pcap")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertTrue(try CaptureReader(path: path).isMapped, name)
            let mapped = try readAll(path, mapping: true), libpcap = try readAll(path, mapping: false)
            XCTAssertEqual(libpcap.frames.count, expected, name)
            XCTAssertEqual(mapped, libpcap, name)
        }
    }

    /// A mapped capture that another program truncates while it is being read: the pages past
    /// the new end would raise SIGBUS and kill the process; the reader reports an error naming
    /// the file instead, whether the lost bytes are met by `next()` or touched afterwards.
    func testCaptureTruncatedWhileMappedIsAnErrorNotACrash() throws {
        let frames = 4000, size = 1000   // ~4 MB: far more pages than readahead maps at once
        let path = tempPath("shrinking.pcap")
        let w = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        for i in 0..<frames {
            w.write(timestampNanoseconds: UInt64(1_700_000_000 + i) * 1_000_000_000,
                    bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: i | 1), count: size))
        }
        try w.finish()

        // Cut while reading: the walk meets the lost pages itself.
        let r = try CaptureReader(path: path)
        XCTAssertTrue(r.isMapped)
        for _ in 0..<10 { XCTAssertNotNil(try r.next()) }
        XCTAssertEqual(truncate(path, 24 + 100 * (16 + size)), 0)
        var read = 10
        XCTAssertThrowsError(try { while try r.next() != nil { read += 1 } }()) { e in
            XCTAssertTrue("\(e)".contains(path) && "\(e)".contains("became shorter"), "\(e)")
        }
        // Exactly the 100 records still in the file. The cut is inside a page: the rest of that
        // page reads as zeros without a fault (the zero record header there is what stops the
        // walk), the pages after it fault.
        XCTAssertEqual(read, 100)

        // Cut after every frame was handed out: touching the lost bytes reads zeros (no
        // SIGBUS), and checkIntact() then fails.
        let w2 = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        for i in 0..<frames { w2.write(timestampNanoseconds: UInt64(i), bytes: [UInt8](repeating: 7, count: size)) }
        try w2.finish()
        let r2 = try CaptureReader(path: path)
        var last: CapturedFrame?
        while let f = try r2.next() { last = f }
        XCTAssertNoThrow(try r2.checkIntact())
        let lastFrame = try XCTUnwrap(last)
        XCTAssertEqual(ftruncateAt(path, 24), 0)
        XCTAssertEqual(lastFrame.bytes.reduce(0) { $0 | Int($1) }, 0)   // the page is zeros now
        XCTAssertThrowsError(try r2.checkIntact()) { e in XCTAssertTrue("\(e)".contains("became shorter"), "\(e)") }

        // A reader whose file stays whole never reports it.
        try Data(repeating: 0, count: 0).write(to: URL(fileURLWithPath: path))   // (new contents below)
        let w3 = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        for i in 0..<100 { w3.write(timestampNanoseconds: UInt64(i), bytes: [UInt8](repeating: 9, count: size)) }
        try w3.finish()
        let r3 = try CaptureReader(path: path)
        var n = 0
        while try r3.next() != nil { n += 1 }
        XCTAssertEqual(n, 100)
        XCTAssertNoThrow(try r3.checkIntact())
    }

    private func ftruncateAt(_ path: String, _ length: Int) -> Int32 { truncate(path, off_t(length)) }

    /// Copied, borrowed and large frames, interleaved across flushes, give the file libpcap's own
    /// `pcap_dump` writes for the same frames.
    func testWriterMatchesLibpcapDump() throws {
        var rng = SystemRandomNumberGenerator()
        var frames: [(UInt64, [UInt8])] = []
        for i in 0..<700 {
            let n: Int
            switch i % 7 {
            case 0: n = 0
            case 1: n = 40_000 + Int.random(in: 0..<30_000, using: &rng)   // larger than half the staging area
            default: n = Int.random(in: 14...1600, using: &rng)
            }
            let stamp = UInt64(1_700_000_000 + i) * 1_000_000_000 + UInt64.random(in: 0..<1_000_000_000, using: &rng)
            frames.append((stamp, (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        }
        for link in [LinkType.ethernet, .rawLinux, .linuxSLL2] {
            let ours = tempPath("ours-\(link.rawValue).pcap"), theirs = tempPath("libpcap-\(link.rawValue).pcap")
            let w = try CaptureWriter(path: ours, dataLinkType: link.rawValue)
            var laidOut = 0
            var i = 0
            while i < frames.count {
                let (stamp, bytes) = frames[i]
                if i % 3 == 0 {
                    bytes.withUnsafeBytes { w.write(timestampNanoseconds: stamp, borrowing: $0) }
                    w.flush()   // borrowed bytes must be out before `bytes` goes away
                } else if i % 6 == 1, i + 1 < frames.count {
                    // Laid out by the caller, as replay's batches are: this record and the next
                    // in one block (headers from storeRecordHeader), written as one vector.
                    var block = [UInt8]()
                    for (t, b) in frames[i...(i + 1)] {
                        var h = [UInt8](repeating: 0, count: CaptureWriter.recordHeaderBytes)
                        h.withUnsafeMutableBytes { CaptureWriter.storeRecordHeader($0.baseAddress!, timestampNanoseconds: t, length: b.count) }
                        block += h + b
                    }
                    let octets = bytes.count + frames[i + 1].1.count
                    block.withUnsafeBytes { w.write(records: $0, frames: 2, frameBytes: octets) }
                    w.flush()
                    laidOut += 2
                    i += 2
                    continue
                } else {
                    w.write(timestampNanoseconds: stamp, bytes: bytes)
                }
                i += 1
            }
            try w.finish()
            XCTAssertEqual(w.framesWritten, frames.count)
            XCTAssertEqual(w.bytesWritten, frames.map(\.1.count).reduce(0, +))
            XCTAssertGreaterThan(laidOut, 50)

            let dead = try XCTUnwrap(pcap_open_dead_with_tstamp_precision(link.rawValue, 262_144, UInt32(PCAP_TSTAMP_PRECISION_MICRO)))
            let dumper = try XCTUnwrap(pcap_dump_open(dead, theirs))
            for (stamp, bytes) in frames {
                var h = pcap_pkthdr()
                h.ts.tv_sec = Int(stamp / 1_000_000_000)
                h.ts.tv_usec = Int(stamp % 1_000_000_000 / 1_000)
                h.caplen = UInt32(bytes.count)
                h.len = UInt32(bytes.count)
                bytes.withUnsafeBufferPointer { b in
                    let one: UInt8 = 0
                    withUnsafePointer(to: one) { empty in
                        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &h, b.baseAddress ?? empty)
                    }
                }
            }
            pcap_dump_close(dumper)
            pcap_close(dead)
            let a = try Data(contentsOf: URL(fileURLWithPath: ours)), b = try Data(contentsOf: URL(fileURLWithPath: theirs))
            XCTAssertGreaterThan(a.count, 5_000_000)
            XCTAssertEqual(a, b, "link \(link)")
        }
    }

    /// A write the kernel refuses (a full device) is kept and thrown by `finish()`, naming the file.
    func testWriteErrorsAreReported() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("/dev/full missing") }
        do {
            let w = try CaptureWriter(path: "/dev/full", dataLinkType: 1)
            w.write(timestampNanoseconds: 0, bytes: [UInt8](repeating: 1, count: 100))
            XCTAssertThrowsError(try w.finish()) { e in XCTAssertTrue("\(e)".contains("/dev/full"), "\(e)") }
        } catch {
            // libpcap's own header write may be the one refused: also an error naming the file.
            XCTAssertTrue("\(error)".contains("/dev/full"), "\(error)")
        }
    }

    /// RFC 1071 3's worked example, and every length 0…300 at every start parity against the
    /// definition (big-endian 16-bit words, odd octet padded with zero, end-around carry).
    func testInternetChecksumAgainstDefinition() {
        let example: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        XCTAssertEqual(InternetChecksum.compute(example), ~UInt16(0xddf2))
        var rng = SystemRandomNumberGenerator()
        for n in 0...300 {
            for _ in 0..<4 {
                let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                var s: UInt32 = 0
                var i = 0
                while i < n {
                    s += UInt32(bytes[i]) << 8 | (i + 1 < n ? UInt32(bytes[i + 1]) : 0)
                    i += 2
                }
                while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
                XCTAssertEqual(InternetChecksum.compute(bytes), ~UInt16(s), "length \(n)")
            }
        }
        // All-0xFF input: the sum saturates to 0xFFFF (checksum 0), where a carry is easy to lose.
        XCTAssertEqual(InternetChecksum.compute([UInt8](repeating: 0xFF, count: 1024)), 0)
    }

    /// A capture walked by `scanInParts`, the parts' frames joined in order; how many parts
    /// it was split into and how many of them had to be rescanned.
    func scanAll(_ path: String, parts: Int, minimumPartBytes: Int = 1) throws -> (read: Read, parts: Int, rescanned: Int) {
        let r = try CaptureReader(path: path)
        let (chunks, rescanned) = try r.scanInParts(parts, minimumPartBytes: minimumPartBytes) { range in
            var out = Read()
            while let f = try range.next() {
                out.frames.append(Array(f.bytes))
                out.stamps.append(f.timestampNanoseconds)
                out.originals.append(f.originalLength)
            }
            return out
        }
        var all = Read()
        for c in chunks {
            all.frames += c.frames
            all.stamps += c.stamps
            all.originals += c.originals
        }
        return (all, chunks.count, rescanned)
    }

    /// `count` records of 60…1500 random octets (random data: no run of plausible record
    /// headers inside a frame), microsecond times one millisecond apart.
    func randomRecords(_ count: Int, seed: UInt64) -> [(sec: UInt32, frac: UInt32, cap: UInt32, len: UInt32, data: [UInt8])] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let n = 60 + Int(rng.next() % 1441)
            return (1_700_000_000 + UInt32(i / 1000), UInt32(i % 1000) * 1000, UInt32(n), UInt32(n), rng.bytes(n))
        }
    }

    /// Every fixture, split into 2…6 parts: the parts give exactly the frames of one walk, in
    /// order, and (random-looking media payloads) each guessed part start was a real record.
    func testScanInPartsGivesTheFramesOfOneWalkOnEveryFixture() throws {
        let dir = PacketIOTests.fixtures
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw XCTSkip("\(dir.path) not present (tests expect ../shared beside the checkout)")
        }
        for name in names.filter({ $0.hasSuffix(".pcap") }).sorted() {
            let path = dir.appendingPathComponent(name).path
            let one = try readAll(path, mapping: true)
            XCTAssertFalse(one.failed, name)
            for parts in 2...6 {
                let (read, split, _) = try scanAll(path, parts: parts)
                XCTAssertEqual(read, one, "\(name), \(parts) parts")
                XCTAssertEqual(split, parts, "\(name) was not split into \(parts) parts")
            }
        }
        // Below the minimum part size a capture is one part.
        let small = tempPath("small.pcap")
        try Data(craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: randomRecords(50, seed: 1))).write(to: URL(fileURLWithPath: small))
        XCTAssertEqual(try scanAll(small, parts: 4, minimumPartBytes: 1 << 20).parts, 1)
    }

    /// Parts split where the records really start are kept as they are (no rescan), and a
    /// libpcap-read capture (pcapng) is one part with the same frames.
    func testScanInPartsKeepsTrueSplitsAndReadsPcapngWhole() throws {
        let path = tempPath("random.pcap")
        try Data(craft(bigEndian: true, nanoseconds: true, snaplen: 65535, records: randomRecords(3000, seed: 7))).write(to: URL(fileURLWithPath: path))
        let one = try readAll(path, mapping: true)
        XCTAssertEqual(one.frames.count, 3000)
        for parts in 2...5 {
            let (read, split, rescanned) = try scanAll(path, parts: parts)
            XCTAssertEqual(read, one, "\(parts) parts")
            XCTAssertEqual(split, parts)
            XCTAssertEqual(rescanned, 0, "\(parts) parts: a guessed start was not a record boundary")
        }
        // The same capture as pcapng (Wireshark's editcap writes it): read through libpcap, as
        // one part, the same frames.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/editcap") else { throw XCTSkip("editcap (wireshark-common) not installed") }
        let ng = tempPath("random.pcapng")
        XCTAssertEqual(try Tool.run("/usr/bin/editcap", ["-F", "pcapng", path, ng]).status, 0)
        XCTAssertFalse(try CaptureReader(path: ng).isMapped)
        let (read, split, _) = try scanAll(ng, parts: 3)
        XCTAssertEqual(split, 1)
        XCTAssertEqual(read.frames.count, 3000)
        XCTAssertEqual(read, one)
    }

    /// A frame that carries a capture of its own (a pcap file sent over the network, say) has
    /// runs of perfect record headers inside it. The split guessed in the middle of that frame
    /// lands on one of them; the walk from the file header steps over the whole frame instead,
    /// so the part is rescanned and the result is still exactly one walk's frames.
    func testScanInPartsRescansAPartThatStartedInsideAFrame() throws {
        let inner = craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: randomRecords(200, seed: 3))
        let carrier = Array(inner.dropFirst(24))   // the inner records, no file header
        var records = randomRecords(3, seed: 5)
        records.insert((1_700_000_000, 500, UInt32(carrier.count), UInt32(carrier.count), carrier), at: 1)
        let path = tempPath("nested.pcap")
        try Data(craft(bigEndian: false, nanoseconds: false, snaplen: 262_144, records: records)).write(to: URL(fileURLWithPath: path))
        XCTAssertLessThanOrEqual(carrier.count, 262_144)
        let one = try readAll(path, mapping: true)
        XCTAssertFalse(one.failed)
        XCTAssertEqual(one.frames.count, 4)
        for parts in 2...4 {
            let (read, _, rescanned) = try scanAll(path, parts: parts)
            XCTAssertEqual(read, one, "\(parts) parts")
            XCTAssertGreaterThan(rescanned, 0, "\(parts) parts: the split inside the carrier frame was not caught")
        }
    }

    /// A capture cut inside a record: split or not, the scan fails with the error one walk
    /// meets (same offset, same words), and frames before the cut are not lost to a part.
    func testScanInPartsFailsWithTheErrorOfOneWalk() throws {
        let whole = craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: randomRecords(2000, seed: 11))
        let path = tempPath("cut.pcap")
        try Data(whole.prefix(whole.count - 700)).write(to: URL(fileURLWithPath: path))
        let r = try CaptureReader(path: path)
        var serialError = ""
        do { while try r.next() != nil {} } catch { serialError = "\(error)" }
        XCTAssertTrue(serialError.contains("truncated"), serialError)
        for parts in 1...4 {
            XCTAssertThrowsError(try scanAll(path, parts: parts), "\(parts) parts") { error in
                XCTAssertEqual("\(error)", serialError, "\(parts) parts")
            }
        }
    }

    /// Damaged files (random octets overwritten, cut anywhere, a record header's length made
    /// huge): split in 2…4 parts, the scan gives exactly the frames of one walk, and fails where
    /// and how one walk fails — never a frame seen twice, lost, or a crash.
    func testScanInPartsMatchesOneWalkOnDamagedFiles() throws {
        var rng = SplitMix64(seed: 99)
        let base = craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: randomRecords(400, seed: 21))
        let path = tempPath("damaged.pcap")
        for round in 0..<150 {
            var bytes = base
            switch round % 3 {
            case 0:   // overwrite a few random octets (headers or data)
                for _ in 0..<(1 + Int(rng.next() % 8)) {
                    bytes[24 + Int(rng.next() % UInt64(bytes.count - 24))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 1:   // cut anywhere after the file header
                bytes = Array(bytes.prefix(24 + Int(rng.next() % UInt64(bytes.count - 24))))
            default:  // a plausible chain of records inside one frame's data, then a cut
                let inner = craft(bigEndian: false, nanoseconds: false, snaplen: 65535, records: randomRecords(12, seed: rng.next())).dropFirst(24)
                let at = 24 + Int(rng.next() % UInt64(bytes.count - 24 - inner.count))
                bytes.replaceSubrange(at..<(at + inner.count), with: inner)
                if rng.next() % 2 == 0 { bytes = Array(bytes.prefix(bytes.count - Int(rng.next() % 2000))) }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            var serial = Read()
            var serialError: String? = nil
            do {
                let r = try CaptureReader(path: path)
                while let f = try r.next() {
                    serial.frames.append(Array(f.bytes))
                    serial.stamps.append(f.timestampNanoseconds)
                    serial.originals.append(f.originalLength)
                }
            } catch { serialError = "\(error)" }
            for parts in 2...4 {
                do {
                    let (read, _, _) = try scanAll(path, parts: parts)
                    XCTAssertNil(serialError, "round \(round), \(parts) parts: the split scan succeeded where one walk failed")
                    XCTAssertEqual(read, serial, "round \(round), \(parts) parts")
                } catch {
                    XCTAssertEqual("\(error)", serialError, "round \(round), \(parts) parts")
                }
            }
        }
    }

    /// The C sums (`CInternetChecksum`: AVX2 where the CPU has it, and the portable loop) against
    /// the definition, summed here word by word: every length 0…2100 at 4 start offsets (the
    /// vector loop's 64-octet steps and every tail), and regions past the 1 MiB slice the AVX2
    /// lanes are folded at, random and all-0xFF.
    func testLongRegionChecksumsInCAgainstDefinition() {
        func definition(_ b: UnsafeRawBufferPointer) -> UInt32 {
            var s: UInt64 = 0
            var i = 0
            while i < b.count {
                s += UInt64(b[i]) << 8 | (i + 1 < b.count ? UInt64(b[i + 1]) : 0)
                i += 2
            }
            while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
            return UInt32(s)
        }
        var rng = SystemRandomNumberGenerator()
        let buffer = (0..<2200).map { _ in UInt8.random(in: 0...255, using: &rng) }
        buffer.withUnsafeBytes { all in
            for n in 0...2100 {
                for offset in [0, 1, 3, 32] {
                    let region = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)])
                    let want = definition(region)
                    XCTAssertEqual(mbms_csum16(region.baseAddress!, n), want, "length \(n) at offset \(offset)")
                    XCTAssertEqual(mbms_csum16_portable(region.baseAddress!, n), want, "portable, length \(n) at offset \(offset)")
                    // The copying sums: the same sum, exactly the n octets copied, nothing
                    // written around them (guard octets), at a destination offset of its own.
                    for (copy, name) in [(mbms_csum16_copy, "copy"), (mbms_csum16_copy_portable, "portable copy")] {
                        var out = [UInt8](repeating: 0xA5, count: n + 80)
                        let sum = out.withUnsafeMutableBytes { copy($0.baseAddress! + 8 + offset, region.baseAddress!, n) }
                        XCTAssertEqual(sum, want, "\(name), length \(n) at offset \(offset)")
                        XCTAssertTrue(out[(8 + offset)..<(8 + offset + n)].elementsEqual(region), "\(name) copied, length \(n)")
                        XCTAssertTrue(out[..<(8 + offset)].allSatisfy { $0 == 0xA5 } && out[(8 + offset + n)...].allSatisfy { $0 == 0xA5 },
                                      "\(name) wrote outside the destination, length \(n)")
                    }
                }
            }
        }
        for big in [(1 << 20) + 77, 3 << 20] {
            for bytes in [(0..<big).map { _ in UInt8.random(in: 0...255, using: &rng) }, [UInt8](repeating: 0xFF, count: big)] {
                bytes.withUnsafeBytes { b in
                    let want = definition(b)
                    XCTAssertEqual(mbms_csum16(b.baseAddress!, b.count), want, "\(b.count) octets")
                    XCTAssertEqual(mbms_csum16_portable(b.baseAddress!, b.count), want, "portable, \(b.count) octets")
                    var out = [UInt8](repeating: 0, count: b.count)
                    XCTAssertEqual(out.withUnsafeMutableBytes { mbms_csum16_copy($0.baseAddress!, b.baseAddress!, b.count) }, want, "copy, \(b.count) octets")
                    XCTAssertTrue(out.elementsEqual(b), "copy of \(b.count) octets")
                }
            }
        }
    }
}

// Fuzz target 5 (issue 19 finding 12): the capture reader (`CaptureReader`: libpcap opens
// every file; classic pcap is then walked straight from a read-only mapping, pcapng through
// libpcap) and the frame parser on every frame. Oracle: the mapped walk and the libpcap walk
// must give the same frames (time, bytes, original length) and stop the same way — the
// reader's documentation promises it.
//
// Input: a capture file, written to a per-process temporary file (the reader takes a path).
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import FuzzSupport
import PacketIO

let path: String = {
    let dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
    return "\(dir)/mbms-fuzz-pcap-\(getpid()).pcap"
}()

struct Walked: Equatable {
    var frames: [(UInt64, [UInt8], Int)] = []
    var failed = false
    static func == (a: Walked, b: Walked) -> Bool {
        a.failed == b.failed && a.frames.count == b.frames.count
            && zip(a.frames, b.frames).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 }
    }
}

func walk(mapping: Bool) -> (Walked, LinkType?)? {
    guard let reader = try? CaptureReader(path: path, mapping: mapping) else { return nil }
    var w = Walked()
    while w.frames.count < 10_000 {
        do {
            guard let f = try reader.next() else { break }
            w.frames.append((f.timestampNanoseconds, Array(f.bytes), f.originalLength))
            if let link = reader.linkType, let base = f.bytes.baseAddress {
                _ = FrameParser.classify(base, length: f.bytes.count, linkType: link)
            }
        } catch {
            w.failed = true
            break
        }
    }
    if mapping, var range = reader.separateWalk() {
        var n = 0
        while n < 8, let f = try? range.next() { n += 1; _ = f.bytes.count }
        if let again = range.restarted(at: range.offset) { var a = again; _ = try? a.next() }
        _ = reader.fractionRead
    }
    return (w, reader.linkType)
}

func fuzzOne(_ input: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { FuzzMain.fail("cannot write \(path)") }
    var written = 0
    input.withUnsafeBytes { b in
        while written < b.count {
            let n = write(fd, b.baseAddress! + written, b.count - written)
            if n <= 0 { break }
            written += n
        }
    }
    close(fd)
    let mapped = walk(mapping: true)
    let plain = walk(mapping: false)
    switch (mapped, plain) {
    case let (m?, p?):
        if m.0 != p.0 {
            FuzzMain.fail("mapped walk (\(m.0.frames.count) frames, failed \(m.0.failed)) != libpcap walk (\(p.0.frames.count) frames, failed \(p.0.failed))")
        }
    case (nil, nil): break
    default: FuzzMain.fail("one reader opened the file and the other did not")
    }
}

// MARK: - Seeds

/// The first `frames` records of a capture, cut at a record boundary.
func head(_ name: String, frames: Int, maxFrameBytes: Int = 300) throws -> [UInt8] {
    let d = [UInt8](try Data(contentsOf: URL(fileURLWithPath: SeedWriter.fixture(name))))
    var out = Array(d[0..<24])
    var at = 24
    func le32(_ o: Int) -> Int { Int(d[o]) | Int(d[o + 1]) << 8 | Int(d[o + 2]) << 16 | Int(d[o + 3]) << 24 }
    for _ in 0..<frames {
        guard at + 16 <= d.count else { break }
        let n = le32(at + 8)
        guard at + 16 + n <= d.count else { break }
        let keep = min(n, maxFrameBytes)
        var h = Array(d[at..<(at + 16)])
        h[8] = UInt8(keep & 0xFF); h[9] = UInt8(keep >> 8 & 0xFF); h[10] = 0; h[11] = 0
        out += h + d[(at + 16)..<(at + 16 + keep)]
        at += 16 + n
    }
    return out
}

func makeSeeds(_ w: SeedWriter) throws {
    for name in ["rtp-h264-aac.pcap", "rtp-multicast.pcap", "rtp-seqwrap.pcap", "flute-files.pcap", "flute-multicast.pcap"] {
        try w.write("fixture-\(name)-head", try head(name, frames: 6))
    }
    // The same frames as pcapng (libpcap path), nanosecond pcap and big-endian pcap, written
    // by hand from the classic capture (pcap-savefile(5), draft-ietf-opsawg-pcapng).
    let classic = try head("rtp-h264-aac.pcap", frames: 4)
    func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
    func be32(_ v: Int) -> [UInt8] { le32(v).reversed() }
    var records: [(Int, Int, [UInt8])] = []
    var at = 24
    func rd(_ o: Int) -> Int { Int(classic[o]) | Int(classic[o + 1]) << 8 | Int(classic[o + 2]) << 16 | Int(classic[o + 3]) << 24 }
    while at + 16 <= classic.count {
        let n = rd(at + 8)
        records.append((rd(at), rd(at + 4), Array(classic[(at + 16)..<(at + 16 + n)])))
        at += 16 + n
    }
    var nano = [0x4d, 0x3c, 0xb2, 0xa1] + Array(classic[4..<24])
    var big: [UInt8] = [0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4] + be32(0) + be32(0) + be32(262_144) + be32(1)
    var ng: [UInt8] = []
    // Section Header Block, Interface Description Block (Ethernet, if_tsresol default: µs).
    ng += le32(0x0A0D_0D0A) + le32(28) + le32(0x1A2B_3C4D) + [1, 0, 0, 0] + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + le32(28)
    ng += le32(1) + le32(20) + [1, 0, 0, 0] + le32(262_144) + le32(20)
    for (s, us, f) in records {
        nano += le32(s) + le32(us * 1000) + le32(f.count) + le32(f.count) + f
        big += be32(s) + be32(us) + be32(f.count) + be32(f.count) + f
        let padded = f + [UInt8](repeating: 0, count: (4 - f.count % 4) % 4)
        let ts = UInt64(s) * 1_000_000 + UInt64(us)
        let total = 32 + padded.count
        ng += le32(6) + le32(total) + le32(0) + le32(Int(ts >> 32)) + le32(Int(ts & 0xFFFF_FFFF)) + le32(f.count) + le32(f.count) + padded + le32(total)
    }
    try w.write("handmade-nanosecond.pcap", nano)
    try w.write("handmade-big-endian.pcap", big)
    try w.write("handmade.pcapng", ng)
}

// The temporary capture goes when the fuzzer exits normally (a crash leaves it for inspection).
atexit { unlink(path) }

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)

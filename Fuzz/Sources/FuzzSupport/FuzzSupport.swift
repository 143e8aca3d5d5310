// What every fuzz target shares: the libFuzzer entry, the input framing, the seed writer and
// the fixed test keys (all from ../shared/spec/vectors; none is a production secret).
#if canImport(Glibc)
import Glibc
#endif
import Foundation

// MARK: - libFuzzer driver

/// libFuzzer's own driver (compiler-rt FuzzerDriver.cpp, "LLVMFuzzerRunDriver"): parses the
/// usual libFuzzer flags and calls `callback` for each input. Declared here because SwiftPM
/// renames an executable's `main` (it links `main` to `<target>_main`), so libFuzzer's `main`
/// is never linked in; each target's top-level code calls `FuzzMain.run` instead.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                                 _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                                 _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

public enum FuzzMain {
    /// Runs libFuzzer over `callback`, or — with `--make-seeds DIR` as the first arguments —
    /// calls `makeSeeds(DIR)` to write the seed corpus instead. Never returns.
    public static func run(_ callback: FuzzCallback, makeSeeds: (SeedWriter) throws -> Void) -> Never {
        let args = CommandLine.arguments
        if args.count >= 3, args[1] == "--make-seeds" {
            do {
                let w = try SeedWriter(directory: args[2])
                try makeSeeds(w)
                print("\(args[0]): wrote \(w.count) seeds to \(args[2])")
                exit(0)
            } catch {
                print("\(args[0]): --make-seeds failed: \(error)")
                exit(1)
            }
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
    }

    /// The input as an array (the decoders take arrays).
    @inline(__always)
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// A finding that is not a crash of the decoder itself but a broken promise (a round trip
    /// that does not round-trip, two readers that disagree): print it and abort, so libFuzzer
    /// saves the input like any crash.
    public static func fail(_ message: String) -> Never {
        fputs("FUZZ ORACLE FAILURE: \(message)\n", stderr)
        abort()
    }
}

// MARK: - Input framing

/// Reads structure out of fuzz input: single bytes, big-endian integers and length-prefixed
/// chunks (2-octet big-endian length, cut to what is left). Never fails: past the end it
/// reads zeros and empty chunks, so every input means something.
public struct FuzzReader {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { max(0, bytes.count - offset) }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// A chunk: 2-octet length, then that many octets (or what is left).
    public mutating func chunk() -> [UInt8] {
        let n = min(Int(u16()), remaining)
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return offset < bytes.count ? Array(bytes[offset...]) : []
    }
}

/// Builds inputs in `FuzzReader`'s framing (the seeds).
public struct FuzzInputBuilder {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func byte(_ b: UInt8) { bytes.append(b) }
    public mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    public mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
    public mutating func chunk(_ c: [UInt8]) {
        let n = min(c.count, 0xFFFF)
        u16(UInt16(n))
        bytes += c.prefix(n)
    }
    public mutating func raw(_ c: [UInt8]) { bytes += c }
}

// MARK: - Seeds

/// Writes seed files named `<prefix>-<n>` into one corpus folder.
public final class SeedWriter {
    public let directory: String
    public private(set) var count = 0

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws {
        let path = (directory as NSString).appendingPathComponent(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        count += 1
    }

    /// The shared fixtures and vectors: `$MBMS_SHARED` or ../shared next to the repository.
    public static var sharedDirectory: String {
        if let s = ProcessInfo.processInfo.environment["MBMS_SHARED"] { return s }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 { url.deleteLastPathComponent() }   // Fuzz/Sources/FuzzSupport/FuzzSupport.swift → repo's parent
        return url.appendingPathComponent("shared").path
    }

    public static func fixture(_ name: String) -> String { sharedDirectory + "/fixtures/" + name }
    public static func vector(_ name: String) -> String { sharedDirectory + "/spec/vectors/" + name }

    /// A JSON vector file as nested dictionaries.
    public static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: vector(name)))
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}

// MARK: - Small helpers

public func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var high: UInt8? = nil
    for c in s.utf8 {
        let v: UInt8
        switch c {
        case 0x30...0x39: v = c - 0x30
        case 0x41...0x46: v = c - 0x41 + 10
        case 0x61...0x66: v = c - 0x61 + 10
        default: continue
        }
        if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
    }
    return out
}

/// Classic pcap (pcap-savefile(5)) frames, read without the product's reader, so the seeds do
/// not depend on the code under test: (link type, [(seconds, microseconds, frame)]).
public func readClassicPcap(_ path: String, limit: Int = .max) throws -> (Int32, [(UInt32, UInt32, [UInt8])]) {
    let d = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard d.count >= 24 else { return (0, []) }
    func le32(_ o: Int) -> UInt32 { UInt32(d[o]) | UInt32(d[o + 1]) << 8 | UInt32(d[o + 2]) << 16 | UInt32(d[o + 3]) << 24 }
    let link = Int32(bitPattern: le32(20))
    var frames: [(UInt32, UInt32, [UInt8])] = []
    var at = 24
    while at + 16 <= d.count, frames.count < limit {
        let n = Int(le32(at + 8))
        guard at + 16 + n <= d.count else { break }
        frames.append((le32(at), le32(at + 4), Array(d[(at + 16)..<(at + 16 + n)])))
        at += 16 + n
    }
    return (link, frames)
}

/// The UDP payload of an Ethernet/IPv4/UDP frame (no options parsing beyond IHL), or nil.
public func udpPayload(ethernetFrame f: [UInt8]) -> (dstPort: UInt16, payload: [UInt8])? {
    guard f.count >= 14 + 20 + 8, f[12] == 0x08, f[13] == 0x00 else { return nil }
    let ihl = Int(f[14] & 0x0F) * 4
    guard f[14 + 9] == 17, f.count >= 14 + ihl + 8 else { return nil }
    let u = 14 + ihl
    let dst = UInt16(f[u + 2]) << 8 | UInt16(f[u + 3])
    let len = Int(UInt16(f[u + 4]) << 8 | UInt16(f[u + 5]))
    guard len >= 8, u + len <= f.count else { return nil }
    return (dst, Array(f[(u + 8)..<(u + len)]))
}

/// A minimal Ethernet/IPv4/UDP frame around `payload` (checksum 0: none, RFC 768).
public func ethernetUDPFrame(_ payload: [UInt8], srcPort: UInt16 = 40000, dstPort: UInt16,
                             src: [UInt8] = [127, 0, 0, 10], dst: [UInt8] = [127, 0, 0, 20]) -> [UInt8] {
    var f = [UInt8](repeating: 0, count: 12) + [0x08, 0x00]
    let ipLen = 20 + 8 + payload.count
    var ip: [UInt8] = [0x45, 0, UInt8(truncatingIfNeeded: ipLen >> 8), UInt8(truncatingIfNeeded: ipLen), 0, 0, 0x40, 0, 64, 17, 0, 0] + src + dst
    var sum: UInt32 = 0
    for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    let c = ~UInt16(sum)
    ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xFF)
    f += ip
    let udpLen = 8 + payload.count
    f += [UInt8(srcPort >> 8), UInt8(srcPort & 0xFF), UInt8(dstPort >> 8), UInt8(dstPort & 0xFF),
          UInt8(truncatingIfNeeded: udpLen >> 8), UInt8(truncatingIfNeeded: udpLen), 0, 0]
    return f + payload
}

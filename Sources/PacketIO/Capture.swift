import CPcap
#if canImport(Glibc)
import Glibc
#endif

/// Errors opening, reading or writing captures. Names the file and what to do.
public enum CaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case readFailed(path: String, reason: String)
    case cannotCreate(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot read capture \(path): \(reason) (expected a pcap or pcapng file)"
        case let .readFailed(path, reason): return "error reading capture \(path): \(reason) (the file may be truncated or corrupt)"
        case let .cannotCreate(path, reason): return "cannot write capture \(path): \(reason)"
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

/// Reads pcap and pcapng files through libpcap (nanosecond timestamps).
public final class CaptureReader {
    public let path: String
    /// The DLT value libpcap reports.
    public let dataLinkType: Int32
    /// Nil when the link type is not one we parse (frames are then passed through).
    public let linkType: LinkType?
    private let handle: OpaquePointer
    public private(set) var framesRead = 0

    public init(path: String) throws(CaptureError) {
        self.path = path
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            throw .cannotOpen(path: path, reason: String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        handle = h
        dataLinkType = pcap_datalink(h)
        linkType = LinkType(rawValue: dataLinkType)
    }

    deinit { pcap_close(handle) }

    public func next() throws(CaptureError) -> CapturedFrame? {
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        let rc = pcap_next_ex(handle, &header, &data)
        switch rc {
        case 1:
            guard let h = header?.pointee, let d = data else { return nil }
            framesRead += 1
            let ts = UInt64(max(0, h.ts.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, h.ts.tv_usec))
            return CapturedFrame(timestampNanoseconds: ts, bytes: UnsafeRawBufferPointer(start: d, count: Int(h.caplen)),
                                 originalLength: Int(h.len))
        case -2:
            return nil
        default:
            throw .readFailed(path: path, reason: String(cString: pcap_geterr(handle)))
        }
    }
}

/// Writes classic pcap (microsecond timestamps) through libpcap: what tshark, tcpdump and
/// every receiver tool read.
public final class CaptureWriter {
    public let path: String
    private let dead: OpaquePointer
    private let dumper: OpaquePointer
    public private(set) var framesWritten = 0
    public private(set) var bytesWritten = 0
    private var closed = false

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
        dead = d
        dumper = dump
        // libpcap writes through stdio with its default (small) buffer: one write(2) every few
        // packets. A 1 MiB buffer makes capture output cheap next to everything else.
        if let file = pcap_dump_file(dump) { setvbuf(file, nil, _IOFBF, 1 << 20) }
    }

    public func write(timestampNanoseconds: UInt64, bytes: UnsafeRawBufferPointer) {
        guard !closed, let base = bytes.baseAddress else { return }
        var h = pcap_pkthdr()
        h.ts.tv_sec = Int(timestampNanoseconds / 1_000_000_000)
        h.ts.tv_usec = Int(timestampNanoseconds % 1_000_000_000 / 1_000)
        h.caplen = UInt32(bytes.count)
        h.len = UInt32(bytes.count)
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &h, base.assumingMemoryBound(to: UInt8.self))
        framesWritten += 1
        bytesWritten += bytes.count
    }

    public func write(timestampNanoseconds: UInt64, bytes: [UInt8]) {
        bytes.withUnsafeBytes { write(timestampNanoseconds: timestampNanoseconds, bytes: $0) }
    }

    /// Flushes and closes; further writes are ignored.
    public func close() {
        guard !closed else { return }
        closed = true
        pcap_dump_close(dumper)
        pcap_close(dead)
    }

    deinit { close() }
}

/// RFC 1071 one's-complement sum, 8 octets at a time.
public enum InternetChecksum {
    /// Adds `count` octets at `p` to a running 64-bit accumulator (fold later).
    @inline(__always)
    public static func add(_ p: UnsafeRawPointer, _ count: Int, to sum: inout UInt64) {
        var i = 0
        var s = sum
        // 32-bit big-endian words summed into 64 bits cannot overflow for any IP datagram.
        while i + 4 <= count {
            s &+= UInt64(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
        }
        if i + 2 <= count {
            s &+= UInt64(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt16.self)))
            i += 2
        }
        if i < count { s &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << 8 }
        sum = s
    }

    @inline(__always)
    public static func add16(_ v: UInt16, to sum: inout UInt64) { sum &+= UInt64(v) }
    @inline(__always)
    public static func add32(_ v: UInt32, to sum: inout UInt64) { sum &+= UInt64(v) }

    /// Folds and complements.
    @inline(__always)
    public static func finish(_ sum: UInt64) -> UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
        return ~UInt16(truncatingIfNeeded: s)
    }

    public static func compute(_ bytes: [UInt8]) -> UInt16 {
        var s: UInt64 = 0
        bytes.withUnsafeBytes { if let b = $0.baseAddress { add(b, $0.count, to: &s) } }
        return finish(s)
    }
}

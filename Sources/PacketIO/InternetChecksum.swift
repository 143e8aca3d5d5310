import CInternetChecksum

/// RFC 1071 one's-complement sum, 8 octets at a time (regions of `longRegion` octets or more:
/// `CInternetChecksum`, 64 at a time with AVX2).
public enum InternetChecksum {
    /// From here on a region is summed in C: the call costs less than the vector loop saves
    /// (a whole UDP datagram in replay's write stage; headers stay inline).
    public static let longRegion = 128

    /// Adds `count` octets at `p` to a running accumulator of big-endian 16-bit words (fold
    /// later). The region must start at an even offset of the checksummed data.
    ///
    /// The one's-complement sum does not depend on byte order (RFC 1071 2(B)): the region is
    /// summed as native 64-bit words with end-around carry, four accumulators deep, folded to
    /// 16 bits and byte-swapped once — instead of a byte swap per 32-bit word.
    @inline(__always)
    public static func add(_ p: UnsafeRawPointer, _ count: Int, to sum: inout UInt64) {
        if count >= longRegion {
            sum &+= UInt64(mbms_csum16(p, count))
            return
        }
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0, d: UInt64 = 0
        var i = 0
        @inline(__always) func acc(_ s: inout UInt64, _ w: UInt64) {
            let (r, o) = s.addingReportingOverflow(w)
            s = r &+ (o ? 1 : 0)
        }
        while i + 32 <= count {
            acc(&a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            acc(&b, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
            acc(&c, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
            acc(&d, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
            i += 32
        }
        while i + 8 <= count {
            acc(&a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        // The tail: 0-7 octets, little-endian into one word (zero-padded, as RFC 1071 pads).
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            i += 1
        }
        acc(&b, tail)
        acc(&a, b)
        acc(&c, d)
        acc(&a, c)
        // Fold 64 -> 16 bits (end-around carry), then to big-endian word order.
        var s = (a & 0xFFFF_FFFF) &+ (a >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        sum &+= UInt64(UInt16(truncatingIfNeeded: s).byteSwapped)
    }

    /// `add`, copying the region to `destination` on the way: one pass over the octets (the
    /// regions must not overlap).
    @inline(__always)
    public static func addCopying(_ p: UnsafeRawPointer, _ count: Int, to destination: UnsafeMutableRawPointer, sum: inout UInt64) {
        sum &+= UInt64(mbms_csum16_copy(destination, p, count))
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

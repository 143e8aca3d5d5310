/// Bounded big-endian reader over one packet. Every read is checked; failures name the
/// structure and field and carry the byte offset within the packet.
struct PacketReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.position = start
        self.end = min(end ?? bytes.count, bytes.count)
    }

    var remaining: Int { end - position }

    mutating func readUInt8(_ structure: FLUTEStructure, _ field: String) throws(FLUTEPacketError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(structure: structure, field: field, offset: position, needed: 1, available: max(0, remaining)) }
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads `width` bytes (≤ 8) as an unsigned big-endian integer.
    mutating func readUInt(_ width: Int, _ structure: FLUTEStructure, _ field: String) throws(FLUTEPacketError) -> UInt64 {
        guard remaining >= width else { throw .truncated(structure: structure, field: field, offset: position, needed: width, available: max(0, remaining)) }
        var v: UInt64 = 0
        for i in 0..<width { v = v << 8 | UInt64(bytes[position + i]) }
        position += width
        return v
    }

    mutating func readBytes(_ count: Int, _ structure: FLUTEStructure, _ field: String) throws(FLUTEPacketError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(structure: structure, field: field, offset: position, needed: count, available: max(0, remaining)) }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }
}

/// Big-endian packet writer.
struct PacketWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func append(_ v: UInt8) { bytes.append(v) }
    mutating func append<C: Collection<UInt8>>(contentsOf c: C) { bytes.append(contentsOf: c) }
    /// Appends the low `width` bytes of `v`, big-endian.
    mutating func appendUInt(_ v: UInt64, width: Int) {
        for i in stride(from: width - 1, through: 0, by: -1) { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
}

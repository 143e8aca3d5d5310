/// Bounded big-endian reader over a DCF. Every read is checked against the end of the
/// enclosing box; failures name the box and field and carry the absolute byte offset.
struct DCFByteReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int
    let box: String

    init(_ bytes: [UInt8], from start: Int, to end: Int, box: String) {
        self.bytes = bytes
        self.position = start
        self.end = min(end, bytes.count)
        self.box = box
    }

    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    mutating func readUInt8(_ field: String) throws(DCFError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(box: box, field: field, offset: position) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readUInt(_ width: Int, _ field: String) throws(DCFError) -> UInt64 {
        guard remaining >= width else { throw .truncated(box: box, field: field, offset: position) }
        var v: UInt64 = 0
        for i in 0..<width { v = v << 8 | UInt64(bytes[position + i]) }
        position += width
        return v
    }

    mutating func readUInt16(_ field: String) throws(DCFError) -> UInt16 { UInt16(truncatingIfNeeded: try readUInt(2, field)) }
    mutating func readUInt32(_ field: String) throws(DCFError) -> UInt32 { UInt32(truncatingIfNeeded: try readUInt(4, field)) }
    mutating func readUInt64(_ field: String) throws(DCFError) -> UInt64 { try readUInt(8, field) }

    mutating func readBytes(_ count: Int, _ field: String) throws(DCFError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(box: box, field: field, offset: position) }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func skip(to offset: Int) { position = min(max(position, offset), end) }
}

/// Big-endian writer used by the box serialiser.
struct DCFByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append(_ v: UInt8) { bytes.append(v) }
    mutating func append<C: Collection<UInt8>>(contentsOf c: C) { bytes.append(contentsOf: c) }
    mutating func appendUInt16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    mutating func appendUInt32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func appendUInt64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
}

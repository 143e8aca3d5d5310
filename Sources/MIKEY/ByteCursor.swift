/// Bounds-checked big-endian reader over a byte array (swift-nio style cursor).
///
/// Every read checks the remaining length and throws `MIKEYError.truncated` naming the
/// payload being read; offsets reported are absolute (`base` + index).
struct ByteReader {
    let bytes: [UInt8]
    private(set) var index: Int
    let end: Int
    /// Added to local indices to report offsets relative to the whole message.
    let base: Int

    init(_ bytes: [UInt8], base: Int = 0) {
        self.bytes = bytes
        self.index = 0
        self.end = bytes.count
        self.base = base
    }

    var remaining: Int { end - index }
    var isAtEnd: Bool { index >= end }
    /// Absolute offset of the next octet.
    var offset: Int { base + index }

    mutating func require(_ n: Int, _ payload: MIKEYPayloadName, at start: Int? = nil) throws(MIKEYError) {
        guard n >= 0, remaining >= n else {
            throw .truncated(payload: payload, offset: start ?? offset, needed: n, available: max(remaining, 0))
        }
    }

    mutating func readUInt8(_ payload: MIKEYPayloadName) throws(MIKEYError) -> UInt8 {
        try require(1, payload)
        let v = bytes[index]
        index += 1
        return v
    }

    mutating func readUInt16(_ payload: MIKEYPayloadName) throws(MIKEYError) -> UInt16 {
        try require(2, payload)
        let v = UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
        index += 2
        return v
    }

    mutating func readUInt32(_ payload: MIKEYPayloadName) throws(MIKEYError) -> UInt32 {
        try require(4, payload)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[index + i]) }
        index += 4
        return v
    }

    mutating func readUInt64(_ payload: MIKEYPayloadName) throws(MIKEYError) -> UInt64 {
        try require(8, payload)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[index + i]) }
        index += 8
        return v
    }

    mutating func readBytes(_ n: Int, _ payload: MIKEYPayloadName) throws(MIKEYError) -> [UInt8] {
        try require(n, payload)
        let v = Array(bytes[index..<(index + n)])
        index += n
        return v
    }
}

/// Big-endian writer.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    var count: Int { bytes.count }

    mutating func write(_ v: UInt8) { bytes.append(v) }
    mutating func write(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    mutating func write(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(shift)) & 0xFF)) }
    }
    mutating func write(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(shift)) & 0xFF)) }
    }
    mutating func write(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    /// Copies straight from a buffer (used for key bytes, so no extra unzeroed array is made).
    mutating func write(_ v: UnsafeRawBufferPointer) { bytes.append(contentsOf: v) }

    /// Consumes the writer, zeroing nothing (callers with secrets zero the result themselves).
    func finish() -> [UInt8] { bytes }
}

/// Big-endian unsigned integer of 1–4 octets (KV Interval SEQl/SEQu, ROC rate R).
func bigEndianValue(_ bytes: [UInt8]) -> UInt32 {
    var v: UInt32 = 0
    for b in bytes.prefix(4) { v = v << 8 | UInt32(b) }
    return v
}

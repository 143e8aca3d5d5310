/// The MKI carried in every SRTP and SRTCP packet.
///
/// In MBMS it is `MSK ID ‖ MTK ID`, 6 octets (TS 33.246 6.6.2.1): Key Group (2) ‖
/// Key Number (2) ‖ MTK ID (2). Other lengths (0–8 octets) are accepted so that the
/// RFC 3711 / libsrtp reference packets (no MKI, 4-octet MKI) can be checked too.
public struct MasterKeyIdentifier: Hashable, Sendable, CustomStringConvertible {
    /// Up to 8 octets, right-aligned big-endian.
    public let value: UInt64
    public let length: Int

    public static let mbmsLength = 6

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count <= 8, "MKI longer than 8 octets is not supported")
        var v: UInt64 = 0
        for b in bytes { v = v << 8 | UInt64(b) }
        value = v
        length = bytes.count
    }

    /// TS 33.246 6.6.2.1: MKI = MSK ID (Key Group ‖ Key Number) ‖ MTK ID.
    public init(keyGroup: UInt16, keyNumber: UInt16, mtkID: UInt16) {
        value = UInt64(keyGroup) << 32 | UInt64(keyNumber) << 16 | UInt64(mtkID)
        length = Self.mbmsLength
    }

    public static let none = MasterKeyIdentifier(bytes: [])

    public var bytes: [UInt8] { (0..<length).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(length - 1 - $0))) } }

    /// MSK ID (4 octets) of an MBMS MKI.
    public var mskID: UInt32 { UInt32(truncatingIfNeeded: value >> 16) }
    public var keyGroup: UInt16 { UInt16(truncatingIfNeeded: value >> 32) }
    public var keyNumber: UInt16 { UInt16(truncatingIfNeeded: value >> 16) }
    /// MTK ID (2 octets) of an MBMS MKI.
    public var mtkID: UInt16 { UInt16(truncatingIfNeeded: value) }

    /// Reads `length` octets at `pointer`.
    @inline(__always)
    static func read(_ pointer: UnsafeRawPointer, length: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<length { v = v << 8 | UInt64(pointer.load(fromByteOffset: i, as: UInt8.self)) }
        return v
    }

    /// Writes the MKI octets at `pointer`.
    @inline(__always)
    func write(to pointer: UnsafeMutableRawPointer) {
        if length == Self.mbmsLength {   // MSK ID ‖ MTK ID: two big-endian stores
            pointer.storeBytes(of: UInt32(truncatingIfNeeded: value >> 16).bigEndian, as: UInt32.self)
            pointer.storeBytes(of: UInt16(truncatingIfNeeded: value).bigEndian, toByteOffset: 4, as: UInt16.self)
            return
        }
        var v = value
        var i = length - 1
        while i >= 0 {
            pointer.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
            v >>= 8
            i -= 1
        }
    }

    public var description: String {
        length == Self.mbmsLength
            ? "MKI(keyGroup: \(keyGroup), keyNumber: \(keyNumber), mtkID: \(mtkID))"
            : "MKI(\(bytes.map { String(format2: $0) }.joined()))"
    }
}

extension String {
    init(format2 byte: UInt8) {
        let d = Array("0123456789abcdef")
        self = String([d[Int(byte >> 4)], d[Int(byte & 0xF)]])
    }
}

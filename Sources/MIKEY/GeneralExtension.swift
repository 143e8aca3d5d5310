/// One Key ID entry of the RFC 4563 Key ID information (EXT type 3), header
/// Key ID Type (8) || Key ID Length (16) (mikey.md 4.2, M-3).
public enum KeyIDEntry: Equatable, Sendable {
    case keyDomainID(KeyDomainID)   // Key ID Type 0, 3 octets
    case mskID(MSKID)               // Key ID Type 1, 4 octets
    case mtkID(MTKID)               // Key ID Type 2, 2 octets

    var type: UInt8 {
        switch self {
        case .keyDomainID: return 0
        case .mskID: return 1
        case .mtkID: return 2
        }
    }
}

/// Key ID information (RFC 4563; TS 33.246 6.4.4 figures 6.4a/6.4b): Key Domain ID, MSK ID
/// and, in MTK messages, MTK ID. Entries keep their wire order for exact re-encoding.
public struct KeyIDInformation: Equatable, Sendable {
    public var entries: [KeyIDEntry]
    public init(entries: [KeyIDEntry]) { self.entries = entries }

    /// The order TS 33.246 6.4.4 uses: Key Domain ID, MSK ID, [MTK ID].
    public init(keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID? = nil) {
        entries = [.keyDomainID(keyDomainID), .mskID(mskID)]
        if let mtkID { entries.append(.mtkID(mtkID)) }
    }

    public var keyDomainID: KeyDomainID? {
        for case .keyDomainID(let v) in entries { return v }
        return nil
    }
    public var mskID: MSKID? {
        for case .mskID(let v) in entries { return v }
        return nil
    }
    public var mtkID: MTKID? {
        for case .mtkID(let v) in entries { return v }
        return nil
    }

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 18)
        for e in entries {
            w.write(e.type)
            switch e {
            case .keyDomainID(let d): w.write(UInt16(3)); w.write(d.bytes)
            case .mskID(let m): w.write(UInt16(4)); w.write(m.rawValue)
            case .mtkID(let t): w.write(UInt16(2)); w.write(t.rawValue)
            }
        }
        return w.finish()
    }

    /// Strict: known types with their exact lengths, each at most once, filling the data exactly.
    static func decode(_ data: [UInt8], base: Int) throws(MIKEYError) -> KeyIDInformation {
        var r = ByteReader(data, base: base)
        var entries: [KeyIDEntry] = []
        var seen: Set<UInt8> = []
        while !r.isAtEnd {
            let start = r.offset
            let type = try r.readUInt8(.keyIDInformation)
            let length = Int(try r.readUInt16(.keyIDInformation))
            let expected: Int
            switch type {
            case 0: expected = 3
            case 1: expected = 4
            case 2: expected = 2
            default:
                throw .invalidValue(payload: .keyIDInformation, offset: start, field: "Key ID Type", value: Int(type),
                                    rule: "RFC 4563 / TS 33.246 6.4.4: types 0 Key Domain ID, 1 MSK ID, 2 MTK ID")
            }
            guard length == expected else {
                throw .lengthMismatch(payload: .keyIDInformation, offset: start + 1, field: "Key ID Length",
                                      declared: length, actual: expected, rule: "TS 33.246 6.4.4: fixed Key ID sizes 3/4/2")
            }
            guard seen.insert(type).inserted else {
                throw .misplacedPayload(payload: .keyIDInformation, offset: start, rule: "TS 33.246 6.4.4: Key ID Type \(type) repeated")
            }
            let value = try r.readBytes(length, .keyIDInformation)
            switch type {
            case 0:
                guard let d = KeyDomainID(bytes: value) else {
                    throw .lengthMismatch(payload: .keyIDInformation, offset: start + 3, field: "Key Domain ID", declared: 3, actual: value.count, rule: "TS 33.246 6.3.1")
                }
                entries.append(.keyDomainID(d))
            case 1: entries.append(.mskID(MSKID(rawValue: bigEndianValue(value))))
            default: entries.append(.mtkID(MTKID(UInt16(bigEndianValue(value)))))
            }
        }
        return KeyIDInformation(entries: entries)
    }
}

/// General Extension payload (RFC 3830 6.15, type 21): Type (8) || Length (16) || Data.
/// Type 3 is the Key ID information; any other type is kept as opaque bytes and still counts
/// in the KEMAC MAC (TS 33.246 6.5.3).
public enum GeneralExtension: Equatable, Sendable {
    public static let keyIDType: UInt8 = 3

    case keyID(KeyIDInformation)
    case opaque(type: UInt8, data: [UInt8])

    func encode(into w: inout ByteWriter) {
        switch self {
        case .keyID(let info):
            let data = info.encode()
            w.write(Self.keyIDType); w.write(UInt16(data.count)); w.write(data)
        case .opaque(let type, let data):
            w.write(type); w.write(UInt16(truncatingIfNeeded: data.count)); w.write(data)
        }
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> GeneralExtension {
        let type = try r.readUInt8(.generalExtension)
        let lengthOffset = r.offset
        let length = Int(try r.readUInt16(.generalExtension))
        guard r.remaining >= length else {
            throw .lengthMismatch(payload: .generalExtension, offset: lengthOffset, field: "Length", declared: length,
                                  actual: r.remaining, rule: "RFC 3830 6.15: Length counts the Data octets")
        }
        let dataOffset = r.offset
        let data = try r.readBytes(length, .generalExtension)
        if type == keyIDType {
            return .keyID(try KeyIDInformation.decode(data, base: dataOffset))
        }
        return .opaque(type: type, data: data)
    }
}

/// OMA DRM v2.0 DCF boxes as TS 33.246 6.6.3.2 uses them (`spec/dcf.md` §3–4).
///
/// Value types for the wire structures; each knows how to write its payload and how to parse
/// itself from a bounded reader. Box headers (size/type[/largesize], version/flags for
/// FullBoxes) are handled by `BoxHeader` / `BoxSerializer` below.

/// A four-character box type or brand.
public struct FourCC: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    /// `text` must be four ASCII characters; anything else is truncated or padded with spaces.
    public init(_ text: String) {
        var b = Array(text.utf8.prefix(4))
        while b.count < 4 { b.append(0x20) }
        bytes = b
    }
    public init(bytes: [UInt8]) { self.bytes = Array(bytes.prefix(4)) + [UInt8](repeating: 0x20, count: max(0, 4 - bytes.count)) }
    public var description: String { String(decoding: bytes, as: UTF8.self) }

    public static let ftyp = FourCC("ftyp"), odcf = FourCC("odcf"), odrm = FourCC("odrm"), odhe = FourCC("odhe")
    public static let ohdr = FourCC("ohdr"), obki = FourCC("obki"), odda = FourCC("odda"), mdri = FourCC("mdri")
    public static let odfs = FourCC("odfs"), grpi = FourCC("grpi"), udta = FourCC("udta")
}

/// EncryptionMethod of the Common Headers box (`dcf.md` 4.4).
public enum EncryptionMethod: UInt8, Sendable {
    case null = 0x00
    case aes128CBC = 0x01
    case aes128CTR = 0x02
}

/// PaddingScheme of the Common Headers box (`dcf.md` 4.4).
public enum PaddingScheme: UInt8, Sendable {
    case none = 0x00
    case rfc2630 = 0x01
}

/// A box this codec does not interpret, kept byte-exact (type + payload after the 8/16-byte header).
public struct UninterpretedBox: Equatable, Sendable {
    public var type: FourCC
    public var payload: [UInt8]
    public init(type: FourCC, payload: [UInt8]) { self.type = type; self.payload = payload }
}

/// 'ftyp' FileTypeBox — the "Fixed DCF header" (`dcf.md` 4.1).
public struct FileTypeBox: Equatable, Sendable {
    public var majorBrand: FourCC
    public var minorVersion: UInt32
    public var compatibleBrands: [FourCC]
    /// MBMS DCFs: brand 'odcf', minor version 2 (TS 33.246 6.6.3.2).
    public static let mbms = FileTypeBox(majorBrand: .odcf, minorVersion: 2, compatibleBrands: [.odcf])
    public init(majorBrand: FourCC, minorVersion: UInt32, compatibleBrands: [FourCC]) {
        self.majorBrand = majorBrand; self.minorVersion = minorVersion; self.compatibleBrands = compatibleBrands
    }
}

/// 'obki' OMA BCAST Key Info box in the 'ohdr' ExtendedHeaders (`dcf.md` 4.5).
public struct OMABCASTKeyInfoBox: Equatable, Sendable {
    /// 0x02: reserved by OMA BCAST for 3GPP MBMS (TS 33.246 6.6.3.2).
    public static let keyIDType3GPPMBMS: UInt8 = 0x02
    public var keyIDType: UInt8
    /// For MBMS: ASCII of base64(Key Domain ID ‖ MSK ID ‖ MTK ID).
    public var keyID: [UInt8]
    public var keyIssuerURL: String?
    public var shortTermKeyMessage: [UInt8]?
    public var terminalBindingKeyID: UInt32?
    public var terminalBindingKeyIssuerURL: String?

    public init(keyIDType: UInt8 = OMABCASTKeyInfoBox.keyIDType3GPPMBMS, keyID: [UInt8], keyIssuerURL: String? = nil,
                shortTermKeyMessage: [UInt8]? = nil, terminalBindingKeyID: UInt32? = nil, terminalBindingKeyIssuerURL: String? = nil) {
        self.keyIDType = keyIDType; self.keyID = keyID; self.keyIssuerURL = keyIssuerURL
        self.shortTermKeyMessage = shortTermKeyMessage; self.terminalBindingKeyID = terminalBindingKeyID
        self.terminalBindingKeyIssuerURL = terminalBindingKeyIssuerURL
    }

    /// The MBMS profile: KeyIDType 0x02, KeyID = base64(KDID ‖ MSK ID ‖ MTK ID).
    public init(mbmsKeyID: MBMSKeyID, keyIssuerURL: String? = nil) {
        self.init(keyID: Array(mbmsKeyID.base64.utf8), keyIssuerURL: keyIssuerURL)
    }

    /// The MBMS key identifier, when KeyIDType is 0x02 and the KeyID decodes.
    public var mbmsKeyID: MBMSKeyID? {
        guard keyIDType == Self.keyIDType3GPPMBMS else { return nil }
        return MBMSKeyID(base64: String(decoding: keyID, as: UTF8.self))
    }
}

/// 'ohdr' Common Headers box (`dcf.md` 4.4).
public struct CommonHeadersBox: Equatable, Sendable {
    public enum ExtendedHeader: Equatable, Sendable {
        case keyInfo(OMABCASTKeyInfoBox)
        case other(UninterpretedBox)
    }
    public var encryptionMethod: EncryptionMethod
    public var paddingScheme: PaddingScheme
    public var plaintextLength: UInt64
    public var contentID: [UInt8]
    /// Empty for MBMS (TS 33.246 6.6.3.2: the RightsIssuerURL is not used).
    public var rightsIssuerURL: [UInt8]
    /// Raw TextualHeaders: `Name:Value` strings, each terminated by 0x00.
    public var textualHeaders: [UInt8]
    public var extendedHeaders: [ExtendedHeader]

    public init(encryptionMethod: EncryptionMethod, paddingScheme: PaddingScheme, plaintextLength: UInt64,
                contentID: [UInt8], rightsIssuerURL: [UInt8] = [], textualHeaders: [UInt8] = [],
                extendedHeaders: [ExtendedHeader] = []) {
        self.encryptionMethod = encryptionMethod; self.paddingScheme = paddingScheme
        self.plaintextLength = plaintextLength; self.contentID = contentID
        self.rightsIssuerURL = rightsIssuerURL; self.textualHeaders = textualHeaders
        self.extendedHeaders = extendedHeaders
    }

    /// The first 'obki' box among the ExtendedHeaders.
    public var keyInfo: OMABCASTKeyInfoBox? {
        for case let .keyInfo(k) in extendedHeaders { return k }
        return nil
    }
}

/// 'odhe' DRM (discrete media) Headers box (`dcf.md` 4.3).
public struct DRMHeadersBox: Equatable, Sendable {
    /// MIME type of the plaintext.
    public var contentType: String
    public var commonHeaders: CommonHeadersBox
    /// Other children (e.g. 'udta'), kept as they are.
    public var otherBoxes: [UninterpretedBox]
    public init(contentType: String, commonHeaders: CommonHeadersBox, otherBoxes: [UninterpretedBox] = []) {
        self.contentType = contentType; self.commonHeaders = commonHeaders; self.otherBoxes = otherBoxes
    }
}

/// 'odda' Content Object box (`dcf.md` 4.7): EncryptedDataLength(64) ‖ EncryptedData.
public struct ContentObjectBox: Equatable, Sendable {
    public var encryptedData: [UInt8]
    public init(encryptedData: [UInt8]) { self.encryptedData = encryptedData }
}

/// 'odrm' OMA DRM Container box (`dcf.md` 4.2): one 'odhe' then one 'odda'.
public struct DRMContainerBox: Equatable, Sendable {
    public var headers: DRMHeadersBox
    public var contentObject: ContentObjectBox
    public init(headers: DRMHeadersBox, contentObject: ContentObjectBox) { self.headers = headers; self.contentObject = contentObject }
}

/// 'odfs' OMADRMSignature box, 3GPP extension (TS 33.246 6.6.3.2; `dcf.md` 4.9).
public struct OMADRMSignatureBox: Equatable, Sendable {
    public static let methodNull: UInt8 = 0x00
    public static let methodHMACSHA1: UInt8 = 0x01
    public var signatureMethod: UInt8
    public var signature: [UInt8]
    public init(signatureMethod: UInt8, signature: [UInt8]) { self.signatureMethod = signatureMethod; self.signature = signature }
}

/// 'mdri' Mutable DRM Information box (plain Box, container; `dcf.md` 4.8).
public struct MutableDRMInformationBox: Equatable, Sendable {
    public var signature: OMADRMSignatureBox?
    public var otherBoxes: [UninterpretedBox]
    public init(signature: OMADRMSignatureBox?, otherBoxes: [UninterpretedBox] = []) { self.signature = signature; self.otherBoxes = otherBoxes }
}

/// One DCF file: 'ftyp', one 'odrm', optionally 'mdri' (last).
public struct DCFFile: Equatable, Sendable {
    public var fileType: FileTypeBox
    public var container: DRMContainerBox
    public var mutableInformation: MutableDRMInformationBox?
    public init(fileType: FileTypeBox = .mbms, container: DRMContainerBox, mutableInformation: MutableDRMInformationBox? = nil) {
        self.fileType = fileType; self.container = container; self.mutableInformation = mutableInformation
    }
}

// MARK: - Box header parsing

/// A parsed ISO BMFF box header (ISO/IEC 14496-12 4.2).
struct BoxHeader {
    let type: FourCC
    let start: Int          // offset of the size field
    let payloadStart: Int   // after size/type[/largesize]
    let end: Int            // one past the last byte

    /// Reads a box header at the reader's position; the box must fit inside the reader's bound.
    /// `allowToEnd`: size 0 ("extends to end of file") is only legal at top level.
    static func read(_ r: inout DCFByteReader, allowToEnd: Bool) throws(DCFError) -> BoxHeader {
        let start = r.position
        let size32 = try r.readUInt32("box size")
        let type = FourCC(bytes: try r.readBytes(4, "box type"))
        var size = UInt64(size32)
        if size32 == 1 {
            size = try r.readUInt64("largesize")
            guard size >= 16 else {
                throw .invalidBoxSize(box: type.description, offset: start, size: size, rule: "largesize below the 16-byte header, ISO/IEC 14496-12 4.2")
            }
        } else if size32 == 0 {
            guard allowToEnd else {
                throw .invalidBoxSize(box: type.description, offset: start, size: 0, rule: "size 0 (to end of file) is only allowed for a top-level box, ISO/IEC 14496-12 4.2")
            }
            size = UInt64(r.end - start)
        } else if size32 < 8 {
            throw .invalidBoxSize(box: type.description, offset: start, size: size, rule: "size below the 8-byte header, ISO/IEC 14496-12 4.2")
        }
        let available = UInt64(r.end - start)
        guard size <= available else {
            throw .invalidBoxSize(box: type.description, offset: start, size: size, rule: "box extends \(size - available) bytes beyond its parent")
        }
        return BoxHeader(type: type, start: start, payloadStart: r.position, end: start + Int(size))
    }
}

extension DCFByteReader {
    /// Reads and ignores FullBox version/flags (`dcf.md` 3: flags are ignored on read).
    mutating func readFullBoxHeader() throws(DCFError) -> (version: UInt8, flags: UInt32) {
        let v = try readUInt32("FullBox version/flags")
        return (UInt8(v >> 24), v & 0x00FF_FFFF)
    }
}

// MARK: - Serialisation

/// Writes boxes with 32-bit sizes unless the type is listed in `largeSizeTypes` or the box is
/// larger than 2^32 − 1 bytes (`dcf.md` 2).
struct BoxSerializer {
    let largeSizeTypes: Set<FourCC>

    func box(_ type: FourCC, fullBox: Bool, payload: [UInt8]) -> [UInt8] {
        var w = DCFByteWriter()
        let extra = fullBox ? 4 : 0
        let small = 8 + extra + payload.count
        if largeSizeTypes.contains(type) || small > Int(UInt32.max) {
            w.appendUInt32(1)
            w.append(contentsOf: type.bytes)
            w.appendUInt64(UInt64(16 + extra + payload.count))
        } else {
            w.appendUInt32(UInt32(small))
            w.append(contentsOf: type.bytes)
        }
        if fullBox { w.appendUInt32(0) } // version 0, flags 0 (dcf.md 3)
        w.append(contentsOf: payload)
        return w.bytes
    }
}

extension FileTypeBox {
    func payload() -> [UInt8] {
        var w = DCFByteWriter()
        w.append(contentsOf: majorBrand.bytes)
        w.appendUInt32(minorVersion)
        for b in compatibleBrands { w.append(contentsOf: b.bytes) }
        return w.bytes
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> FileTypeBox {
        let major = FourCC(bytes: try r.readBytes(4, "major_brand"))
        let minor = try r.readUInt32("minor_version")
        guard r.remaining % 4 == 0 else {
            throw .invalidField(box: "ftyp", field: "compatible_brands", offset: r.position, rule: "not a whole number of 4-byte brands, ISO/IEC 14496-12 4.3")
        }
        var brands: [FourCC] = []
        while !r.isAtEnd { brands.append(FourCC(bytes: try r.readBytes(4, "compatible_brands"))) }
        return FileTypeBox(majorBrand: major, minorVersion: minor, compatibleBrands: brands)
    }
}

extension OMABCASTKeyInfoBox {
    func payload() throws(DCFError) -> [UInt8] {
        var w = DCFByteWriter()
        var flags: UInt8 = 0
        if keyIssuerURL != nil { flags |= 0x80 }
        if shortTermKeyMessage != nil { flags |= 0x40 }
        if terminalBindingKeyID != nil { flags |= 0x20 }
        if terminalBindingKeyIssuerURL != nil { flags |= 0x10 }
        w.append(flags)
        w.append(keyIDType)
        guard keyID.count <= 0xFF else { throw .unrepresentable(field: "obki KeyIDLength", value: UInt64(keyID.count)) }
        w.append(UInt8(keyID.count))
        w.append(contentsOf: keyID)
        if let url = keyIssuerURL {
            let u = Array(url.utf8)
            guard u.count <= 0xFFFF else { throw .unrepresentable(field: "obki KeyIssuerURLLength", value: UInt64(u.count)) }
            w.appendUInt16(UInt16(u.count)); w.append(contentsOf: u)
        }
        if let stkm = shortTermKeyMessage {
            guard stkm.count <= 0xFFFF else { throw .unrepresentable(field: "obki STKMLength", value: UInt64(stkm.count)) }
            w.appendUInt16(UInt16(stkm.count)); w.append(contentsOf: stkm)
        }
        if let tbk = terminalBindingKeyID {
            w.appendUInt32(tbk)
            if let url = terminalBindingKeyIssuerURL {
                let u = Array(url.utf8)
                guard u.count <= 0xFFFF else { throw .unrepresentable(field: "obki TBKIssuerURLLength", value: UInt64(u.count)) }
                w.appendUInt16(UInt16(u.count)); w.append(contentsOf: u)
            }
        } else if terminalBindingKeyIssuerURL != nil {
            throw .unrepresentable(field: "obki TBKIssuerURL without TerminalBindingKeyID", value: 0)
        }
        return w.bytes
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> OMABCASTKeyInfoBox {
        _ = try r.readFullBoxHeader()
        let flagOffset = r.position
        let flags = try r.readUInt8("flags")
        guard flags & 0x0F == 0 else {
            throw .invalidField(box: "obki", field: "reserved bits", offset: flagOffset, rule: "must be 0, OMA BCAST OMABCASTKeyInfoBox")
        }
        if flags & 0x10 != 0 && flags & 0x20 == 0 {
            throw .invalidField(box: "obki", field: "TBKIssuerURLPresent", offset: flagOffset, rule: "set without TBKPresent, OMA BCAST OMABCASTKeyInfoBox")
        }
        let type = try r.readUInt8("KeyIDType")
        let idLength = Int(try r.readUInt8("KeyIDLength"))
        let keyID = try r.readBytes(idLength, "KeyID")
        var box = OMABCASTKeyInfoBox(keyIDType: type, keyID: keyID)
        if flags & 0x80 != 0 {
            let n = Int(try r.readUInt16("KeyIssuerURLLength"))
            box.keyIssuerURL = String(decoding: try r.readBytes(n, "KeyIssuerURL"), as: UTF8.self)
        }
        if flags & 0x40 != 0 {
            let n = Int(try r.readUInt16("STKMLength"))
            box.shortTermKeyMessage = try r.readBytes(n, "STKM")
        }
        if flags & 0x20 != 0 {
            box.terminalBindingKeyID = try r.readUInt32("TerminalBindingKeyID")
            if flags & 0x10 != 0 {
                let n = Int(try r.readUInt16("TBKIssuerURLLength"))
                box.terminalBindingKeyIssuerURL = String(decoding: try r.readBytes(n, "TBKIssuerURL"), as: UTF8.self)
            }
        }
        guard r.isAtEnd else {
            throw .lengthMismatch(box: "obki", field: "box size", offset: r.position, declared: UInt64(r.end - r.position), actual: 0)
        }
        return box
    }
}

extension CommonHeadersBox {
    func payload(_ s: BoxSerializer) throws(DCFError) -> [UInt8] {
        var w = DCFByteWriter()
        w.append(encryptionMethod.rawValue)
        w.append(paddingScheme.rawValue)
        w.appendUInt64(plaintextLength)
        for (name, field) in [("ContentIDLength", contentID), ("RightsIssuerURLLength", rightsIssuerURL), ("TextualHeadersLength", textualHeaders)] {
            guard field.count <= 0xFFFF else { throw .unrepresentable(field: "ohdr \(name)", value: UInt64(field.count)) }
            w.appendUInt16(UInt16(field.count))
        }
        w.append(contentsOf: contentID)
        w.append(contentsOf: rightsIssuerURL)
        w.append(contentsOf: textualHeaders)
        for h in extendedHeaders {
            switch h {
            case .keyInfo(let k): w.append(contentsOf: s.box(.obki, fullBox: true, payload: try k.payload()))
            case .other(let b): w.append(contentsOf: s.box(b.type, fullBox: false, payload: b.payload))
            }
        }
        return w.bytes
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> CommonHeadersBox {
        _ = try r.readFullBoxHeader()
        let methodOffset = r.position
        let methodRaw = try r.readUInt8("EncryptionMethod")
        guard let method = EncryptionMethod(rawValue: methodRaw) else {
            throw .invalidField(box: "ohdr", field: "EncryptionMethod \(methodRaw)", offset: methodOffset, rule: "only 0 NULL, 1 AES_128_CBC, 2 AES_128_CTR are defined, OMA DCF v2.0")
        }
        let paddingRaw = try r.readUInt8("PaddingScheme")
        guard let padding = PaddingScheme(rawValue: paddingRaw) else {
            throw .invalidField(box: "ohdr", field: "PaddingScheme \(paddingRaw)", offset: methodOffset + 1, rule: "only 0 NONE and 1 RFC_2630 are defined, OMA DCF v2.0")
        }
        let expectedPadding: PaddingScheme = method == .aes128CBC ? .rfc2630 : .none
        guard padding == expectedPadding else {
            throw .invalidField(box: "ohdr", field: "PaddingScheme", offset: methodOffset + 1, rule: "CBC requires RFC_2630 padding, CTR and NULL require none (dcf.md 4.4)")
        }
        let plaintextLength = try r.readUInt64("PlaintextLength")
        let cidLength = Int(try r.readUInt16("ContentIDLength"))
        let riLength = Int(try r.readUInt16("RightsIssuerURLLength"))
        let textLength = Int(try r.readUInt16("TextualHeadersLength"))
        let cid = try r.readBytes(cidLength, "ContentID")
        let ri = try r.readBytes(riLength, "RightsIssuerURL")
        let text = try r.readBytes(textLength, "TextualHeaders")
        var headers: [ExtendedHeader] = []
        while !r.isAtEnd {
            let h = try BoxHeader.read(&r, allowToEnd: false)
            var sub = DCFByteReader(r.bytes, from: h.payloadStart, to: h.end, box: h.type.description)
            if h.type == .obki {
                headers.append(.keyInfo(try OMABCASTKeyInfoBox.parse(&sub)))
            } else {
                headers.append(.other(UninterpretedBox(type: h.type, payload: try sub.readBytes(sub.remaining, "payload"))))
            }
            r.skip(to: h.end)
        }
        return CommonHeadersBox(encryptionMethod: method, paddingScheme: padding, plaintextLength: plaintextLength,
                                contentID: cid, rightsIssuerURL: ri, textualHeaders: text, extendedHeaders: headers)
    }
}

extension DRMHeadersBox {
    func payload(_ s: BoxSerializer) throws(DCFError) -> [UInt8] {
        var w = DCFByteWriter()
        let ct = Array(contentType.utf8)
        guard ct.count <= 0xFF else { throw .unrepresentable(field: "odhe ContentTypeLength", value: UInt64(ct.count)) }
        w.append(UInt8(ct.count))
        w.append(contentsOf: ct)
        w.append(contentsOf: s.box(.ohdr, fullBox: true, payload: try commonHeaders.payload(s)))
        for b in otherBoxes { w.append(contentsOf: s.box(b.type, fullBox: false, payload: b.payload)) }
        return w.bytes
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> DRMHeadersBox {
        _ = try r.readFullBoxHeader()
        let n = Int(try r.readUInt8("ContentTypeLength"))
        let contentType = String(decoding: try r.readBytes(n, "ContentType"), as: UTF8.self)
        var common: CommonHeadersBox?
        var others: [UninterpretedBox] = []
        while !r.isAtEnd {
            let h = try BoxHeader.read(&r, allowToEnd: false)
            var sub = DCFByteReader(r.bytes, from: h.payloadStart, to: h.end, box: h.type.description)
            if h.type == .ohdr {
                guard common == nil else {
                    throw .unexpectedBox("ohdr", offset: h.start, in: "odhe", rule: "exactly one Common Headers box, OMA DCF v2.0")
                }
                common = try CommonHeadersBox.parse(&sub)
            } else {
                others.append(UninterpretedBox(type: h.type, payload: try sub.readBytes(sub.remaining, "payload")))
            }
            r.skip(to: h.end)
        }
        guard let common else { throw .missingBox("ohdr", in: "odhe") }
        return DRMHeadersBox(contentType: contentType, commonHeaders: common, otherBoxes: others)
    }
}

extension ContentObjectBox {
    func payload() -> [UInt8] {
        var w = DCFByteWriter()
        w.appendUInt64(UInt64(encryptedData.count))
        w.append(contentsOf: encryptedData)
        return w.bytes
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> ContentObjectBox {
        _ = try r.readFullBoxHeader()
        let lengthOffset = r.position
        let length = try r.readUInt64("EncryptedDataLength")
        guard length == UInt64(r.remaining) else {
            throw .lengthMismatch(box: "odda", field: "EncryptedDataLength", offset: lengthOffset, declared: length, actual: UInt64(r.remaining))
        }
        return ContentObjectBox(encryptedData: try r.readBytes(r.remaining, "EncryptedData"))
    }
}

extension DRMContainerBox {
    func serialize(_ s: BoxSerializer) throws(DCFError) -> [UInt8] {
        let odhe = s.box(.odhe, fullBox: true, payload: try headers.payload(s))
        let odda = s.box(.odda, fullBox: true, payload: contentObject.payload())
        return s.box(.odrm, fullBox: true, payload: odhe + odda)
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> DRMContainerBox {
        _ = try r.readFullBoxHeader()
        var headers: DRMHeadersBox?
        var content: ContentObjectBox?
        while !r.isAtEnd {
            let h = try BoxHeader.read(&r, allowToEnd: false)
            var sub = DCFByteReader(r.bytes, from: h.payloadStart, to: h.end, box: h.type.description)
            switch h.type {
            case .odhe:
                guard headers == nil, content == nil else {
                    throw .unexpectedBox("odhe", offset: h.start, in: "odrm", rule: "one 'odhe' before the 'odda', OMA DCF v2.0")
                }
                headers = try DRMHeadersBox.parse(&sub)
            case .odda:
                guard headers != nil, content == nil else {
                    throw .unexpectedBox("odda", offset: h.start, in: "odrm", rule: "one 'odda' after the 'odhe', OMA DCF v2.0")
                }
                content = try ContentObjectBox.parse(&sub)
            default:
                break // unknown children of 'odrm' are skipped
            }
            r.skip(to: h.end)
        }
        guard let headers else { throw .missingBox("odhe", in: "odrm") }
        guard let content else { throw .missingBox("odda", in: "odrm") }
        return DRMContainerBox(headers: headers, contentObject: content)
    }
}

extension MutableDRMInformationBox {
    func serialize(_ s: BoxSerializer) -> [UInt8] {
        var payload: [UInt8] = []
        if let sig = signature {
            payload += s.box(.odfs, fullBox: true, payload: [sig.signatureMethod] + sig.signature)
        }
        for b in otherBoxes { payload += s.box(b.type, fullBox: false, payload: b.payload) }
        return s.box(.mdri, fullBox: false, payload: payload)
    }

    static func parse(_ r: inout DCFByteReader) throws(DCFError) -> MutableDRMInformationBox {
        var signature: OMADRMSignatureBox?
        var others: [UninterpretedBox] = []
        while !r.isAtEnd {
            let h = try BoxHeader.read(&r, allowToEnd: false)
            var sub = DCFByteReader(r.bytes, from: h.payloadStart, to: h.end, box: h.type.description)
            if h.type == .odfs {
                guard signature == nil else {
                    throw .unexpectedBox("odfs", offset: h.start, in: "mdri", rule: "one OMADRMSignature box, TS 33.246 6.6.3.2")
                }
                _ = try sub.readFullBoxHeader()
                let methodOffset = sub.position
                let method = try sub.readUInt8("SignatureMethod")
                guard method == OMADRMSignatureBox.methodNull || method == OMADRMSignatureBox.methodHMACSHA1 else {
                    throw .invalidField(box: "odfs", field: "SignatureMethod \(method)", offset: methodOffset,
                                        rule: "only 0 NULL and 1 HMAC-SHA1 are defined, TS 33.246 6.6.3.2")
                }
                signature = OMADRMSignatureBox(signatureMethod: method, signature: try sub.readBytes(sub.remaining, "Signature"))
            } else {
                others.append(UninterpretedBox(type: h.type, payload: try sub.readBytes(sub.remaining, "payload")))
            }
            r.skip(to: h.end)
        }
        return MutableDRMInformationBox(signature: signature, otherBoxes: others)
    }
}

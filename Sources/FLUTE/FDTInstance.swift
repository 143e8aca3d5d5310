import BoundedXML

/// FDT-Instance: the file delivery table carried on TOI 0 (RFC 3926 §3.4.2; `flute.md` 7).
public struct FDTInstance: Hashable, Sendable {
    public static let namespace2005 = "urn:IETF:metadata:2005:FLUTE:FDT"
    /// RFC 6726 (FLUTE v2) namespace; accepted on input, never written (`flute.md` 7.1).
    public static let namespaceRFC6726 = "urn:ietf:params:xml:ns:fdt"
    public static let namespaceMBMS2008 = "urn:3GPP:metadata:2008:MBMS:FLUTE:FDT_ext"
    /// NTP seconds = Unix seconds + this.
    public static let ntpUnixOffset: UInt64 = 2_208_988_800

    /// Expires: the 32 most significant bits of a 64-bit NTP timestamp (NTP seconds).
    public var expires: UInt32
    public var complete: Bool?
    public var contentType: String?
    public var contentEncoding: String?
    /// Instance-wide FEC OTI defaults.
    public var fec: FDTFECParameters
    /// mbms2008:FullFDT: this instance lists every file of the session.
    public var fullFDT: Bool?
    public var files: [FDTFile]

    public init(expires: UInt32, complete: Bool? = nil, contentType: String? = nil, contentEncoding: String? = nil,
                fec: FDTFECParameters = FDTFECParameters(), fullFDT: Bool? = nil, files: [FDTFile]) {
        self.expires = expires; self.complete = complete; self.contentType = contentType
        self.contentEncoding = contentEncoding; self.fec = fec; self.fullFDT = fullFDT; self.files = files
    }

    /// The OTI of `file` with the instance defaults applied, when complete enough to partition
    /// (FEC Encoding ID 0; transfer length known; E and B known).
    public func objectTransmissionInformation(for file: FDTFile) -> ObjectTransmissionInformation? {
        let encodingID = file.fec.encodingID ?? fec.encodingID ?? 0
        guard encodingID == 0,
              let e = file.fec.encodingSymbolLength ?? fec.encodingSymbolLength,
              let b = file.fec.maximumSourceBlockLength ?? fec.maximumSourceBlockLength,
              e > 0, e <= UInt64(UInt16.max), b > 0, b <= UInt64(UInt32.max),
              let l = file.transferLength ?? ((file.contentEncoding ?? contentEncoding) == nil ? file.contentLength : nil)
        else { return nil }
        return ObjectTransmissionInformation(transferLength: l, encodingSymbolLength: Int(e), maximumSourceBlockLength: Int(b))
    }
}

/// FEC-OTI-* attributes (instance defaults or per-file overrides).
public struct FDTFECParameters: Hashable, Sendable {
    public var encodingID: UInt64?
    public var instanceID: UInt64?
    public var maximumSourceBlockLength: UInt64?
    public var encodingSymbolLength: UInt64?
    public var maxNumberOfEncodingSymbols: UInt64?
    public var schemeSpecificInfo: String?

    public init(encodingID: UInt64? = nil, instanceID: UInt64? = nil, maximumSourceBlockLength: UInt64? = nil,
                encodingSymbolLength: UInt64? = nil, maxNumberOfEncodingSymbols: UInt64? = nil, schemeSpecificInfo: String? = nil) {
        self.encodingID = encodingID; self.instanceID = instanceID
        self.maximumSourceBlockLength = maximumSourceBlockLength; self.encodingSymbolLength = encodingSymbolLength
        self.maxNumberOfEncodingSymbols = maxNumberOfEncodingSymbols; self.schemeSpecificInfo = schemeSpecificInfo
    }

    /// Attribute order as `flute.md` 7.2 lists them.
    var attributes: [(String, String)] {
        var a: [(String, String)] = []
        if let v = encodingID { a.append(("FEC-OTI-FEC-Encoding-ID", String(v))) }
        if let v = instanceID { a.append(("FEC-OTI-FEC-Instance-ID", String(v))) }
        if let v = maximumSourceBlockLength { a.append(("FEC-OTI-Maximum-Source-Block-Length", String(v))) }
        if let v = encodingSymbolLength { a.append(("FEC-OTI-Encoding-Symbol-Length", String(v))) }
        if let v = maxNumberOfEncodingSymbols { a.append(("FEC-OTI-Max-Number-of-Encoding-Symbols", String(v))) }
        if let v = schemeSpecificInfo { a.append(("FEC-OTI-Scheme-Specific-Info", v)) }
        return a
    }
}

/// A File entry of an FDT Instance (`flute.md` 7.3).
public struct FDTFile: Hashable, Sendable {
    public var toi: UInt64
    public var contentLocation: String
    public var contentType: String?
    public var contentEncoding: String?
    public var contentLength: UInt64?
    public var transferLength: UInt64?
    /// base64 of the MD5 of the transport object.
    public var contentMD5: String?
    public var fec: FDTFECParameters

    public init(toi: UInt64, contentLocation: String, contentType: String? = nil, contentEncoding: String? = nil,
                contentLength: UInt64? = nil, transferLength: UInt64? = nil, contentMD5: String? = nil,
                fec: FDTFECParameters = FDTFECParameters()) {
        self.toi = toi; self.contentLocation = contentLocation; self.contentType = contentType
        self.contentEncoding = contentEncoding; self.contentLength = contentLength
        self.transferLength = transferLength; self.contentMD5 = contentMD5; self.fec = fec
    }
}

// MARK: - Writing

extension FDTInstance {
    /// The FDT Instance as UTF-8 XML: declaration, one line per element, attributes in the
    /// order of `flute.md` 7.2/7.3, values escaped. Text is generated directly. Refuses values
    /// with characters XML 1.0 cannot carry (§2.2: controls other than TAB, LF, CR).
    /// `namespace`: the 2005 FLUTE namespace MBMS uses (`flute.md` 7.1); RFC 6726's only on request.
    public func xml(namespace: String = FDTInstance.namespace2005) throws(FDTWriteError) -> [UInt8] {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FDT-Instance xmlns=\"\(try Self.escape(namespace, attribute: "xmlns"))\""
        if fullFDT != nil { s += " xmlns:mbms2008=\"\(Self.namespaceMBMS2008)\"" }
        var attrs: [(String, String)] = [("Expires", String(expires))]
        if let c = complete { attrs.append(("Complete", c ? "true" : "false")) }
        if let v = contentType { attrs.append(("Content-Type", v)) }
        if let v = contentEncoding { attrs.append(("Content-Encoding", v)) }
        attrs += fec.attributes
        if let f = fullFDT { attrs.append(("mbms2008:FullFDT", f ? "true" : "false")) }
        for (k, v) in attrs { s += " \(k)=\"\(try Self.escape(v, attribute: k))\"" }
        s += ">\n"
        for f in files {
            var fa: [(String, String)] = [("TOI", String(f.toi)), ("Content-Location", f.contentLocation)]
            if let v = f.contentType { fa.append(("Content-Type", v)) }
            if let v = f.contentEncoding { fa.append(("Content-Encoding", v)) }
            if let v = f.contentLength { fa.append(("Content-Length", String(v))) }
            if let v = f.transferLength { fa.append(("Transfer-Length", String(v))) }
            if let v = f.contentMD5 { fa.append(("Content-MD5", v)) }
            fa += f.fec.attributes
            s += " <File"
            for (k, v) in fa { s += " \(k)=\"\(try Self.escape(v, attribute: k))\"" }
            s += "/>\n"
        }
        s += "</FDT-Instance>\n"
        return Array(s.utf8)
    }

    /// XML 1.0 attribute-value escaping (also of white space that would be normalised).
    static func escape(_ v: String, attribute: String) throws(FDTWriteError) -> String {
        var out = ""
        out.reserveCapacity(v.utf8.count)
        for ch in v.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#x9;"
            case "\n": out += "&#xA;"
            case "\r": out += "&#xD;"
            default:
                guard ch.value >= 0x20, ch.value != 0xFFFE, ch.value != 0xFFFF else {
                    throw .characterNotAllowedInXML(attribute: attribute, scalar: ch.value)
                }
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}

/// Why an FDT Instance could not be written.
public enum FDTWriteError: Error, Equatable, Sendable, CustomStringConvertible {
    case characterNotAllowedInXML(attribute: String, scalar: UInt32)
    public var description: String {
        switch self {
        case let .characterNotAllowedInXML(attribute, scalar):
            return "FDT attribute \(attribute): character U+\(String(scalar, radix: 16, uppercase: true)) cannot appear in XML 1.0 (§2.2)"
        }
    }
}

// MARK: - Parsing

extension FDTInstance {
    /// Parses an FDT Instance: refuses DTDs/entities, bounded by `limits`; unknown elements and
    /// attributes (3GPP extensions, `sv:delimiter`, ...) are skipped.
    public init(parsing xml: [UInt8], limits: FDTParserLimits = FDTParserLimits()) throws(FDTParseError) {
        let root: XMLNode
        do { root = try BoundedXMLParser.parse(xml, limits: limits.xml, resolvingNamespaces: true) } catch { throw FDTParseError(error) }
        guard root.localName == "FDT-Instance",
              root.namespaceURI == Self.namespace2005 || root.namespaceURI == Self.namespaceRFC6726 else {
            throw .notAnFDTInstance(root: root.localName, namespace: root.namespaceURI)
        }
        let ns = root.namespaceURI
        guard let expiresAttr = root.attribute("Expires") else {
            throw .missingAttribute(element: "FDT-Instance", attribute: "Expires", offset: root.offset)
        }
        guard let expires = UInt32(expiresAttr.value.trimmingSpaces) else {
            throw .invalidAttribute(element: "FDT-Instance", attribute: "Expires", value: expiresAttr.value, offset: expiresAttr.offset,
                                    rule: "decimal NTP seconds, 32 bits, RFC 3926 §3.4.2")
        }
        self.expires = expires
        complete = try Self.boolean(root, "Complete")
        contentType = root.attribute("Content-Type")?.value
        contentEncoding = root.attribute("Content-Encoding")?.value
        fec = try Self.fecParameters(root)
        fullFDT = try Self.boolean(root, "FullFDT", namespace: Self.namespaceMBMS2008)
        var files: [FDTFile] = []
        var seen: Set<UInt64> = []
        for child in root.children where child.localName == "File" && child.namespaceURI == ns {
            guard let toiAttr = child.attribute("TOI") else { throw .missingAttribute(element: "File", attribute: "TOI", offset: child.offset) }
            guard let toi = UInt64(toiAttr.value.trimmingSpaces), toi > 0 else {
                throw .invalidAttribute(element: "File", attribute: "TOI", value: toiAttr.value, offset: toiAttr.offset,
                                        rule: "positiveInteger; TOI 0 is the FDT itself, RFC 3926 §3.4.2")
            }
            guard let location = child.attribute("Content-Location") else {
                throw .missingAttribute(element: "File", attribute: "Content-Location", offset: child.offset)
            }
            guard seen.insert(toi).inserted else { throw .duplicateTOI(toi, offset: child.offset) }
            files.append(FDTFile(toi: toi, contentLocation: location.value,
                                 contentType: child.attribute("Content-Type")?.value,
                                 contentEncoding: child.attribute("Content-Encoding")?.value,
                                 contentLength: try Self.unsigned(child, "Content-Length"),
                                 transferLength: try Self.unsigned(child, "Transfer-Length"),
                                 contentMD5: child.attribute("Content-MD5")?.value,
                                 fec: try Self.fecParameters(child)))
        }
        self.files = files
    }

    private static func unsigned(_ node: XMLNode, _ name: String) throws(FDTParseError) -> UInt64? {
        guard let a = node.attribute(name) else { return nil }
        guard let v = UInt64(a.value.trimmingSpaces) else {
            throw .invalidAttribute(element: node.localName, attribute: name, value: a.value, offset: a.offset, rule: "xs:unsignedLong")
        }
        return v
    }

    private static func boolean(_ node: XMLNode, _ name: String, namespace: String? = nil) throws(FDTParseError) -> Bool? {
        guard let a = node.attribute(name, namespace: namespace) else { return nil }
        switch a.value.trimmingSpaces {
        case "true", "1": return true
        case "false", "0": return false
        default: throw .invalidAttribute(element: node.localName, attribute: name, value: a.value, offset: a.offset, rule: "xs:boolean")
        }
    }

    private static func fecParameters(_ node: XMLNode) throws(FDTParseError) -> FDTFECParameters {
        FDTFECParameters(encodingID: try unsigned(node, "FEC-OTI-FEC-Encoding-ID"),
                         instanceID: try unsigned(node, "FEC-OTI-FEC-Instance-ID"),
                         maximumSourceBlockLength: try unsigned(node, "FEC-OTI-Maximum-Source-Block-Length"),
                         encodingSymbolLength: try unsigned(node, "FEC-OTI-Encoding-Symbol-Length"),
                         maxNumberOfEncodingSymbols: try unsigned(node, "FEC-OTI-Max-Number-of-Encoding-Symbols"),
                         schemeSpecificInfo: node.attribute("FEC-OTI-Scheme-Specific-Info")?.value)
    }
}

extension String {
    /// XML white space trimmed (xs:unsignedLong etc. collapse white space).
    var trimmingSpaces: Substring {
        let ws: Set<Character> = [" ", "\t", "\n", "\r"]
        var s = Substring(self)
        while let f = s.first, ws.contains(f) { s = s.dropFirst() }
        while let l = s.last, ws.contains(l) { s = s.dropLast() }
        return s
    }
}

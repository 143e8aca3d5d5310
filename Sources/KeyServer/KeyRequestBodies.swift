import Foundation
import MIKEY

/// Request types of `/keymanagement?requesttype=…` (TS 33.246 Annex G; CR to TS 26.237 for `authorize`).
public enum KeyRequestType: String, Sendable, CaseIterable {
    case register
    case deregister
    case mskRequest = "msk-request"
    case authorize
}

/// MIME types of the bodies (TS 33.246 Annex G, TS 26.346 Annex C; `keyserver.md` §4).
public enum KeyServerContentType {
    public static let register = "application/mbms-register+xml"
    public static let deregister = "application/mbms-deregister+xml"
    /// Also the type of the deregistration response (TS 33.246 Annex G).
    public static let registerResponse = "application/mbms-register-response+xml"
    public static let mskRequest = "application/mbms-msk+xml"
    public static let mskResponse = "application/mbms-msk-response+xml"
    public static let authorize = "application/mbms-authorize+xml"
}

/// Element names and namespaces of the emitted response documents (`keyserver.md` §5.3/§5.4,
/// ambiguity K5: TS 26.346 §11 schemas not obtainable, so configurable).
public struct KeyServerVocabulary: Sendable, Equatable {
    public var registerResponseRoot = "mbmsRegisterResponse"
    public var registerResponseNamespace = "urn:3GPP:metadata:2005:MBMS:mbmsRegisterResponse"
    public var mskResponseRoot = "mskResponse"
    /// Confirmed namespace (TS 26.346 §11.8).
    public var mskResponseNamespace = "urn:3GPP:metadata:2005:MBMS:mskResponse"
    public var serviceIDElement = "serviceId"
    public var keyElement = "key"
    public var keyDomainAttribute = "keyDomainID"
    public var mskIDAttribute = "mskID"
    public init() {}
}

/// One (Key Domain ID, MSK ID) pair of an MSK request, with the text the UE sent (echoed back,
/// `keyserver.md` §5.2 rule 4) and the decoded values (nil: undecodable → item 400).
public struct MSKRequestItem: Equatable, Sendable {
    public var keyDomainText: String
    public var mskIDText: String
    public var keyDomainID: KeyDomainID?
    public var mskID: MSKID?

    public init(keyDomainText: String, mskIDText: String) {
        self.keyDomainText = keyDomainText
        self.mskIDText = mskIDText
        keyDomainID = KeyRequestBodies.decodeID(keyDomainText, octets: 3).flatMap { KeyDomainID(bytes: $0) }
        mskID = KeyRequestBodies.decodeID(mskIDText, octets: 4).map { b in
            MSKID(rawValue: UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3]))
        }
    }
}

/// The SCF's `authorize` body (`keyserver.md` §5.5, recommended shape).
public struct AuthorizeRequestBody: Equatable, Sendable {
    public var serviceIDs: [String]
    public var ueAddress: String?
}

/// Tolerant readers of the request bodies (`keyserver.md` §5.2) and writers of the responses.
public enum KeyRequestBodies {
    /// Most items (service IDs or MSK pairs) in one request.
    public static let maximumItems = 256
    /// Longest service ID or ID text accepted.
    public static let maximumItemLength = 1024

    static let serviceIDNames: Set<String> = ["serviceid", "userserviceid"]
    static let keyDomainNames: Set<String> = ["keydomainid", "keydomain"]
    static let mskIDNames: Set<String> = ["mskid"]
    static let ueAddressNames: Set<String> = ["ueipaddress", "ueaddress"]

    private static func trimmed(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Service IDs of a register/deregister/authorize body, in document order, duplicates
    /// dropped (§5.2 rule 2: any element named serviceId/userServiceId, or such an attribute).
    public static func serviceIDs(from body: [UInt8]) throws(KeyServerXMLError) -> [String] {
        let root = try BodyXMLParser.parse(body)
        return try serviceIDs(in: root)
    }

    static func serviceIDs(in root: BodyXMLElement) throws(KeyServerXMLError) -> [String] {
        var ids: [String] = []
        var seen: Set<String> = []
        var tooLong: Int?
        root.walk { e in
            var found: [String] = []
            if serviceIDNames.contains(e.localName.lowercased()) { found.append(trimmed(e.text)) }
            if let a = e.attribute(anyOf: serviceIDNames) { found.append(trimmed(a)) }
            for id in found where !id.isEmpty {
                if id.utf8.count > maximumItemLength { tooLong = e.offset; continue }
                if seen.insert(id).inserted { ids.append(id) }
            }
        }
        if let at = tooLong { throw .limitExceeded("service ID length", offset: at, limit: maximumItemLength) }
        guard ids.count <= maximumItems else { throw .limitExceeded("number of service IDs", offset: 0, limit: maximumItems) }
        guard !ids.isEmpty else { throw .missingContent("no service ID (TS 33.246 6.3.2.1: at least one)") }
        return ids
    }

    /// The (Key Domain ID, MSK ID) pairs of an msk-request body (§5.2 rule 3): every element
    /// carrying both values as attributes or child elements.
    public static func mskItems(from body: [UInt8]) throws(KeyServerXMLError) -> [MSKRequestItem] {
        let root = try BodyXMLParser.parse(body)
        var items: [MSKRequestItem] = []
        var tooLong: Int?
        root.walk { e in
            func value(_ names: Set<String>) -> String? {
                if let a = e.attribute(anyOf: names) { return trimmed(a) }
                return e.children.first { names.contains($0.localName.lowercased()) }.map { trimmed($0.text) }
            }
            guard let kd = value(keyDomainNames), let msk = value(mskIDNames) else { return }
            if kd.utf8.count > 64 || msk.utf8.count > 64 { tooLong = e.offset; return }
            items.append(MSKRequestItem(keyDomainText: kd, mskIDText: msk))
        }
        if let at = tooLong { throw .limitExceeded("ID length", offset: at, limit: 64) }
        guard items.count <= maximumItems else { throw .limitExceeded("number of MSK items", offset: 0, limit: maximumItems) }
        guard !items.isEmpty else { throw .missingContent("no (Key Domain ID, MSK ID) pair (TS 33.246 6.3.2.2)") }
        return items
    }

    /// The `authorize` body: service IDs and the UE IP address (§5.5).
    public static func authorize(from body: [UInt8]) throws(KeyServerXMLError) -> AuthorizeRequestBody {
        let root = try BodyXMLParser.parse(body)
        let ids = try serviceIDs(in: root)
        var address: String?
        root.walk { e in
            if address == nil, ueAddressNames.contains(e.localName.lowercased()) { address = trimmed(e.text) }
        }
        return AuthorizeRequestBody(serviceIDs: ids, ueAddress: address)
    }

    /// Decodes a Key Domain ID (3 octets) or MSK ID (4 octets) text trying hex (exactly 2n
    /// digits, optional 0x), then base64 (4 chars for 3 octets, 8 chars ending "==" for 4),
    /// then decimal that fits (§5.2 rule 3; the order makes `001010` hex).
    public static func decodeID(_ text: String, octets: Int) -> [UInt8]? {
        var s = Substring(trimmed(text))
        guard octets == 3 || octets == 4, !s.isEmpty, s.utf8.count <= 64 else { return nil }
        var hexText = s
        if hexText.hasPrefix("0x") || hexText.hasPrefix("0X") { hexText = hexText.dropFirst(2) }
        if hexText.utf8.count == 2 * octets, hexText.utf8.allSatisfy(isHexDigit), let v = UInt32(hexText, radix: 16) {
            return bigEndian(v, octets: octets)
        }
        let base64Length = octets == 3 ? 4 : 8
        if s.utf8.count == base64Length, octets == 3 || s.hasSuffix("=="), let d = Data(base64Encoded: String(s)), d.count == octets {
            return Array(d)
        }
        if s.hasPrefix("+") { s = s.dropFirst() }
        if s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), s.utf8.count <= 10, let v = UInt64(s), v < (UInt64(1) << (8 * octets)) {
            return bigEndian(UInt32(v), octets: octets)
        }
        return nil
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    private static func bigEndian(_ v: UInt32, octets: Int) -> [UInt8] {
        (0..<octets).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32(octets - 1 - $0))) }
    }

    /// The (de)registration response (§5.3): one `<status code="…">` per service ID.
    public static func registerResponse(_ items: [(serviceID: String, status: Int)], vocabulary v: KeyServerVocabulary = .init()) -> [UInt8] {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<\(v.registerResponseRoot) xmlns=\"\(xmlEscaped(v.registerResponseNamespace))\">\n"
        for item in items {
            s += " <status code=\"\(item.status)\"><\(v.serviceIDElement)>\(xmlEscaped(item.serviceID))</\(v.serviceIDElement)></status>\n"
        }
        s += "</\(v.registerResponseRoot)>\n"
        return Array(s.utf8)
    }

    /// The MSK response (§5.4): one `<status code="…">` per pair, echoing the UE's text.
    public static func mskResponse(_ items: [(item: MSKRequestItem, status: Int)], vocabulary v: KeyServerVocabulary = .init()) -> [UInt8] {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<\(v.mskResponseRoot) xmlns=\"\(xmlEscaped(v.mskResponseNamespace))\">\n"
        for e in items {
            s += " <status code=\"\(e.status)\"><\(v.keyElement) \(v.keyDomainAttribute)=\"\(xmlEscaped(e.item.keyDomainText))\" \(v.mskIDAttribute)=\"\(xmlEscaped(e.item.mskIDText))\"/></status>\n"
        }
        s += "</\(v.mskResponseRoot)>\n"
        return Array(s.utf8)
    }
}

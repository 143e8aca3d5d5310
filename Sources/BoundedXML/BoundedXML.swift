/// A small, bounded, non-validating XML 1.0 + Namespaces reader: FDT Instances (FLUTE) and the
/// key server's request bodies share it.
///
/// Why a hand parser instead of FoundationXML's `XMLParser`: FDT Instances use a tiny subset
/// of XML (elements, attributes, character data, comments, the XML declaration), and so do the
/// key-request bodies. A parser
/// that *cannot* process DTDs, entity declarations or external entities is safer than
/// configuring libxml2 not to (billion laughs, XXE), it reports byte offsets for the house
/// error style, its memory is bounded by the limits below, and it behaves the same on Linux
/// and macOS. Any `<!DOCTYPE`/`<!ENTITY` (and any other `<!` markup except comments and
/// CDATA) is refused before parsing starts; only the five predefined entities and numeric
/// character references are expanded.
public struct BoundedXMLElement: Sendable {
    public struct Attribute: Sendable {
        public var prefix: String?
        public var localName: String
        public var namespaceURI: String?
        public var value: String
        public var offset: Int
    }
    public var prefix: String?
    public var localName: String
    public var namespaceURI: String?
    public var attributes: [Attribute]
    public var children: [BoundedXMLElement]
    public var text: String
    public var offset: Int

    public func attribute(_ localName: String, namespace: String? = nil) -> Attribute? {
        attributes.first { $0.localName == localName && $0.namespaceURI == namespace }
    }
}


/// Bounds applied while parsing.
public struct BoundedXMLLimits: Equatable, Sendable {
    /// Largest document accepted, in bytes.
    public var maximumBytes: Int
    /// Deepest element nesting.
    public var maximumDepth: Int
    /// Most elements in one document.
    public var maximumElements: Int
    /// Most attributes on one element.
    public var maximumAttributesPerElement: Int

    public init(maximumBytes: Int, maximumDepth: Int, maximumElements: Int, maximumAttributesPerElement: Int) {
        self.maximumBytes = maximumBytes; self.maximumDepth = maximumDepth
        self.maximumElements = maximumElements; self.maximumAttributesPerElement = maximumAttributesPerElement
    }
}

/// Why a document was refused: the XML-level rules (each module maps them to its own typed
/// errors). Offsets are byte offsets into the document.
public enum BoundedXMLError: Error, Equatable, Sendable {
    case tooLarge(size: Int, limit: Int)
    /// A DTD or entity declaration (refused outright: billion laughs, external entities).
    case forbiddenDeclaration(String, offset: Int)
    case malformed(offset: Int, rule: String)
    case limitExceeded(String, offset: Int, limit: Int)
    case undefinedEntity(String, offset: Int)
    case unboundPrefix(String, offset: Int)
}

public struct BoundedXMLParser {
    private let b: [UInt8]
    private var i = 0
    private let limits: BoundedXMLLimits
    private var elementCount = 0
    /// Namespaces in XML 1.0: resolve prefixes (an undeclared one is an error), or drop them
    /// and keep local names only (the key server's tolerant reading, keyserver.md §5.2).
    private let resolvesNamespaces: Bool

    static let xmlNamespace = "http://www.w3.org/XML/1998/namespace"

    init(_ bytes: [UInt8], limits: BoundedXMLLimits, resolvingNamespaces: Bool) {
        self.b = bytes
        self.limits = limits
        resolvesNamespaces = resolvingNamespaces
    }

    /// The document's root element.
    public static func parse(_ bytes: [UInt8], limits: BoundedXMLLimits, resolvingNamespaces: Bool = true) throws(BoundedXMLError) -> BoundedXMLElement {
        var p = BoundedXMLParser(bytes, limits: limits, resolvingNamespaces: resolvingNamespaces)
        return try p.parseDocument()
    }

    /// Refuses DTDs and entity declarations before any parsing.
    static func precheck(_ bytes: [UInt8], limits: BoundedXMLLimits) throws(BoundedXMLError) {
        guard bytes.count <= limits.maximumBytes else { throw .tooLarge(size: bytes.count, limit: limits.maximumBytes) }
        for (needle, name) in [(Array("<!DOCTYPE".utf8), "<!DOCTYPE"), (Array("<!ENTITY".utf8), "<!ENTITY")] {
            if let at = find(needle, in: bytes, from: 0, caseInsensitive: true) { throw .forbiddenDeclaration(name, offset: at) }
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int, caseInsensitive: Bool = false) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count, from >= 0 else { return nil }
        var k = from
        while k + needle.count <= hay.count {
            var match = true
            for j in 0..<needle.count {
                var c = hay[k + j], n = needle[j]
                if caseInsensitive { c = lower(c); n = lower(n) }
                if c != n { match = false; break }
            }
            if match { return k }
            k += 1
        }
        return nil
    }

    private static func lower(_ c: UInt8) -> UInt8 { (0x41...0x5A).contains(c) ? c + 0x20 : c }

    mutating func parseDocument() throws(BoundedXMLError) -> BoundedXMLElement {
        try Self.precheck(b, limits: limits)
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        var root: BoundedXMLElement?
        while i < b.count {
            skipWhitespace()
            guard i < b.count else { break }
            guard b[i] == UInt8(ascii: "<") else { throw .malformed(offset: i, rule: "character data outside the root element, XML 1.0 §2.1") }
            if try skipMiscMarkup() { continue }
            guard root == nil else { throw .malformed(offset: i, rule: "a second root element, XML 1.0 §2.1") }
            root = try parseElement(depth: 1, scope: ["xml": Self.xmlNamespace])
        }
        guard let root else { throw .malformed(offset: i, rule: "no root element, XML 1.0 §2.1") }
        return root
    }

    private mutating func skipWhitespace() {
        while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
    }

    private func at(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return i + u.count <= b.count && Array(b[i..<(i + u.count)]) == u
    }

    /// Skips `<?...?>`, `<!--...-->`; refuses other `<!` markup. Returns false at a tag.
    private mutating func skipMiscMarkup() throws(BoundedXMLError) -> Bool {
        if at("<?") {
            guard let end = Self.find(Array("?>".utf8), in: b, from: i + 2) else { throw .malformed(offset: i, rule: "unterminated processing instruction, XML 1.0 §2.6") }
            i = end + 2
            return true
        }
        if at("<!--") {
            guard let end = Self.find(Array("-->".utf8), in: b, from: i + 4) else { throw .malformed(offset: i, rule: "unterminated comment, XML 1.0 §2.5") }
            i = end + 3
            return true
        }
        if at("<!") && !at("<![CDATA[") { throw .forbiddenDeclaration("markup declaration '<!'", offset: i) }
        return false
    }

    private static func isNameByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), 0x80...0xFF:
            return true
        default:
            return false
        }
    }

    private mutating func parseName() throws(BoundedXMLError) -> String {
        let start = i
        while i < b.count, Self.isNameByte(b[i]) { i += 1 }
        guard i > start, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[start]), b[start] != UInt8(ascii: "-"), b[start] != UInt8(ascii: ".") else {
            throw .malformed(offset: start, rule: "expected a name, XML 1.0 §2.3")
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private static func split(_ qname: String) -> (prefix: String?, local: String) {
        guard let colon = qname.firstIndex(of: ":") else { return (nil, qname) }
        return (String(qname[..<colon]), String(qname[qname.index(after: colon)...]))
    }

    private mutating func parseElement(depth: Int, scope parentScope: [String: String]) throws(BoundedXMLError) -> BoundedXMLElement {
        let start = i
        guard depth <= limits.maximumDepth else { throw .limitExceeded("element nesting", offset: start, limit: limits.maximumDepth) }
        elementCount += 1
        guard elementCount <= limits.maximumElements else { throw .limitExceeded("element count", offset: start, limit: limits.maximumElements) }
        i += 1 // '<'
        let qname = try parseName()
        var raw: [(name: String, value: String, offset: Int)] = []
        var selfClosing = false
        while true {
            let beforeSpace = i
            skipWhitespace()
            guard i < b.count else { throw .malformed(offset: i, rule: "unterminated start tag, XML 1.0 §3.1") }
            if b[i] == UInt8(ascii: ">") { i += 1; break }
            if at("/>") { i += 2; selfClosing = true; break }
            guard i > beforeSpace else { throw .malformed(offset: i, rule: "attributes must be separated by white space, XML 1.0 §3.1") }
            let attrOffset = i
            let name = try parseName()
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: "=") else { throw .malformed(offset: i, rule: "expected '=' after attribute name, XML 1.0 §3.1") }
            i += 1
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") else {
                throw .malformed(offset: i, rule: "attribute value must be quoted, XML 1.0 §3.1")
            }
            let quote = b[i]
            i += 1
            let valueStart = i
            while i < b.count, b[i] != quote {
                guard b[i] != UInt8(ascii: "<") else { throw .malformed(offset: i, rule: "'<' in attribute value, XML 1.0 §3.1") }
                i += 1
            }
            guard i < b.count else { throw .malformed(offset: valueStart, rule: "unterminated attribute value, XML 1.0 §3.1") }
            let value = try decodeText(valueStart..<i, normalizeWhitespace: true)
            i += 1
            guard !raw.contains(where: { $0.name == name }) else { throw .malformed(offset: attrOffset, rule: "duplicate attribute \(name), XML 1.0 §3.1") }
            raw.append((name, value, attrOffset))
            guard raw.count <= limits.maximumAttributesPerElement else {
                throw .limitExceeded("attribute count", offset: attrOffset, limit: limits.maximumAttributesPerElement)
            }
        }
        var scope = parentScope
        for a in raw {
            if a.name == "xmlns" { scope[""] = a.value } else if a.name.hasPrefix("xmlns:") { scope[String(a.name.dropFirst(6))] = a.value }
        }
        let (prefix, local) = Self.split(qname)
        var ns: String? = nil
        if !resolvesNamespaces {
            ns = nil
        } else if let prefix {
            guard let uri = scope[prefix] else { throw .unboundPrefix(prefix, offset: start) }
            ns = uri
        } else {
            ns = scope[""].flatMap { $0.isEmpty ? nil : $0 }
        }
        var attributes: [BoundedXMLElement.Attribute] = []
        for a in raw where a.name != "xmlns" && !a.name.hasPrefix("xmlns:") {
            let (p, l) = Self.split(a.name)
            var uri: String?
            if let p, resolvesNamespaces {
                guard let u = scope[p] else { throw .unboundPrefix(p, offset: a.offset) }
                uri = u
            }
            attributes.append(.init(prefix: p, localName: l, namespaceURI: uri, value: a.value, offset: a.offset))
        }
        var node = BoundedXMLElement(prefix: prefix, localName: local, namespaceURI: ns, attributes: attributes, children: [], text: "", offset: start)
        if selfClosing { return node }
        while true {
            guard i < b.count else { throw .malformed(offset: start, rule: "element \(qname) is not closed, XML 1.0 §3") }
            if b[i] == UInt8(ascii: "<") {
                if at("</") {
                    let endOffset = i
                    i += 2
                    let closing = try parseName()
                    skipWhitespace()
                    guard i < b.count, b[i] == UInt8(ascii: ">") else { throw .malformed(offset: i, rule: "expected '>' in end tag, XML 1.0 §3.1") }
                    i += 1
                    guard closing == qname else { throw .malformed(offset: endOffset, rule: "end tag </\(closing)> does not match <\(qname)>, XML 1.0 §3") }
                    return node
                }
                if at("<![CDATA[") {
                    guard let end = Self.find(Array("]]>".utf8), in: b, from: i + 9) else { throw .malformed(offset: i, rule: "unterminated CDATA section, XML 1.0 §2.7") }
                    node.text += String(decoding: b[(i + 9)..<end], as: UTF8.self)
                    i = end + 3
                    continue
                }
                if try skipMiscMarkup() { continue }
                node.children.append(try parseElement(depth: depth + 1, scope: scope))
            } else {
                let textStart = i
                while i < b.count, b[i] != UInt8(ascii: "<") { i += 1 }
                node.text += try decodeText(textStart..<i, normalizeWhitespace: false)
            }
        }
    }

    /// Expands the five predefined entities and character references; anything else is refused.
    private func decodeText(_ range: Range<Int>, normalizeWhitespace: Bool) throws(BoundedXMLError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var k = range.lowerBound
        while k < range.upperBound {
            let c = b[k]
            if c == UInt8(ascii: "&") {
                guard let semi = b[k..<range.upperBound].firstIndex(of: UInt8(ascii: ";")), semi - k <= 12 else {
                    throw .malformed(offset: k, rule: "'&' not starting a reference, XML 1.0 §4.1")
                }
                let name = String(decoding: b[(k + 1)..<semi], as: UTF8.self)
                switch name {
                case "lt": out.append(UInt8(ascii: "<"))
                case "gt": out.append(UInt8(ascii: ">"))
                case "amp": out.append(UInt8(ascii: "&"))
                case "quot": out.append(UInt8(ascii: "\""))
                case "apos": out.append(UInt8(ascii: "'"))
                default:
                    guard name.hasPrefix("#") else { throw .undefinedEntity(name, offset: k) }
                    let digits = name.dropFirst()
                    let value = digits.hasPrefix("x") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits, radix: 10)
                    guard let value, let scalar = Unicode.Scalar(value), value != 0 else {
                        throw .malformed(offset: k, rule: "invalid character reference, XML 1.0 §4.1")
                    }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                }
                k = semi + 1
            } else {
                out.append(normalizeWhitespace && (c == 0x09 || c == 0x0A || c == 0x0D) ? 0x20 : c)
                k += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

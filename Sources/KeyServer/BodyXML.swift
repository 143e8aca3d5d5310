/// A bounded, non-validating XML 1.0 reader for the key-request bodies.
///
/// Follows `Sources/FLUTE/BoundedXML.swift` (same rules: no DTDs, no entity declarations, only
/// the five predefined entities and character references, byte offsets in errors, bounded
/// size/depth/element count). FLUTE keeps that parser internal, so this is the key server's
/// own copy of the subset it needs; namespaces are not resolved (prefixes are dropped), as
/// `keyserver.md` §5.2 rule 1 ignores them.

/// Why a request body was refused (→ 400). Offsets are byte offsets into the body.
public enum KeyServerXMLError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(size: Int, limit: Int)
    /// A DTD, entity declaration or other `<!` markup (billion laughs, XXE).
    case forbiddenDeclaration(String, offset: Int)
    case malformed(offset: Int, rule: String)
    case limitExceeded(String, offset: Int, limit: Int)
    case undefinedEntity(String, offset: Int)
    /// The document parsed but lacks what the request type needs (e.g. no service ID).
    case missingContent(String)

    public var description: String {
        switch self {
        case let .tooLarge(size, limit): return "request body of \(size) bytes exceeds \(limit)"
        case let .forbiddenDeclaration(what, offset): return "request body: \(what) at offset \(offset) refused (no DTDs or entity declarations)"
        case let .malformed(offset, rule): return "request body: malformed XML at offset \(offset) (\(rule))"
        case let .limitExceeded(what, offset, limit): return "request body: \(what) at offset \(offset) exceeds \(limit)"
        case let .undefinedEntity(name, offset): return "request body: entity '&\(name);' at offset \(offset) is not predefined (XML 1.0 §4.6)"
        case let .missingContent(what): return "request body: \(what)"
        }
    }
}

struct BodyXMLElement: Sendable {
    struct Attribute: Sendable {
        var localName: String
        var value: String
    }
    var localName: String
    var attributes: [Attribute]
    var children: [BodyXMLElement]
    var text: String
    var offset: Int

    /// First attribute whose local name matches one of `names` case-insensitively.
    func attribute(anyOf names: Set<String>) -> String? {
        attributes.first { names.contains($0.localName.lowercased()) }?.value
    }

    /// Depth-first, document order.
    func walk(_ body: (BodyXMLElement) -> Void) {
        body(self)
        for c in children { c.walk(body) }
    }
}

struct BodyXMLLimits: Sendable {
    var maximumBytes = KeyServerModule.maximumBodyBytes
    var maximumDepth = 16
    var maximumElements = 4096
    var maximumAttributesPerElement = 32
}

struct BodyXMLParser {
    private let b: [UInt8]
    private var i = 0
    private let limits: BodyXMLLimits
    private var elementCount = 0

    init(_ bytes: [UInt8], limits: BodyXMLLimits = .init()) {
        b = bytes
        self.limits = limits
    }

    static func parse(_ bytes: [UInt8], limits: BodyXMLLimits = .init()) throws(KeyServerXMLError) -> BodyXMLElement {
        var p = BodyXMLParser(bytes, limits: limits)
        return try p.parseDocument()
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int, caseInsensitive: Bool = false) -> Int? {
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

    mutating func parseDocument() throws(KeyServerXMLError) -> BodyXMLElement {
        guard b.count <= limits.maximumBytes else { throw .tooLarge(size: b.count, limit: limits.maximumBytes) }
        // Refused before parsing (XML 1.0 §2.8/§4.2 are never processed).
        for name in ["<!DOCTYPE", "<!ENTITY"] {
            if let at = Self.find(Array(name.utf8), in: b, from: 0, caseInsensitive: true) { throw .forbiddenDeclaration(name, offset: at) }
        }
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        var root: BodyXMLElement?
        while i < b.count {
            skipWhitespace()
            guard i < b.count else { break }
            guard b[i] == UInt8(ascii: "<") else { throw .malformed(offset: i, rule: "character data outside the root element, XML 1.0 §2.1") }
            if try skipMiscMarkup() { continue }
            guard root == nil else { throw .malformed(offset: i, rule: "a second root element, XML 1.0 §2.1") }
            root = try parseElement(depth: 1)
        }
        guard let root else { throw .malformed(offset: i, rule: "no root element, XML 1.0 §2.1") }
        return root
    }

    private mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
    }

    private func at(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return i + u.count <= b.count && b[i..<(i + u.count)].elementsEqual(u)
    }

    private mutating func skipMiscMarkup() throws(KeyServerXMLError) -> Bool {
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

    private mutating func parseName() throws(KeyServerXMLError) -> String {
        let start = i
        while i < b.count, Self.isNameByte(b[i]) { i += 1 }
        guard i > start, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[start]), b[start] != UInt8(ascii: "-"), b[start] != UInt8(ascii: ".") else {
            throw .malformed(offset: start, rule: "expected a name, XML 1.0 §2.3")
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private static func localName(_ qname: String) -> String {
        guard let colon = qname.lastIndex(of: ":") else { return qname }
        return String(qname[qname.index(after: colon)...])
    }

    private mutating func parseElement(depth: Int) throws(KeyServerXMLError) -> BodyXMLElement {
        let start = i
        guard depth <= limits.maximumDepth else { throw .limitExceeded("element nesting", offset: start, limit: limits.maximumDepth) }
        elementCount += 1
        guard elementCount <= limits.maximumElements else { throw .limitExceeded("element count", offset: start, limit: limits.maximumElements) }
        i += 1 // '<'
        let qname = try parseName()
        var names: Set<String> = []
        var attributes: [BodyXMLElement.Attribute] = []
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
            guard names.insert(name).inserted else { throw .malformed(offset: attrOffset, rule: "duplicate attribute \(name), XML 1.0 §3.1") }
            guard names.count <= limits.maximumAttributesPerElement else {
                throw .limitExceeded("attribute count", offset: attrOffset, limit: limits.maximumAttributesPerElement)
            }
            if name == "xmlns" || name.hasPrefix("xmlns:") { continue }
            attributes.append(.init(localName: Self.localName(name), value: value))
        }
        var node = BodyXMLElement(localName: Self.localName(qname), attributes: attributes, children: [], text: "", offset: start)
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
                node.children.append(try parseElement(depth: depth + 1))
            } else {
                let textStart = i
                while i < b.count, b[i] != UInt8(ascii: "<") { i += 1 }
                node.text += try decodeText(textStart..<i, normalizeWhitespace: false)
            }
        }
    }

    /// Expands the five predefined entities and character references; anything else is refused.
    private func decodeText(_ range: Range<Int>, normalizeWhitespace: Bool) throws(KeyServerXMLError) -> String {
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
                    guard let value, value != 0, let scalar = Unicode.Scalar(value) else {
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

/// XML escaping for emitted attribute values and text (XML 1.0 §2.4, §3.1).
func xmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for ch in s.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}

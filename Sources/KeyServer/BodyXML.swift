import BoundedXML

/// The key-request bodies through the shared bounded XML reader (`Sources/BoundedXML`: no DTDs,
/// no entity declarations, only the five predefined entities and character references, byte
/// offsets in errors, bounded size/depth/element count); namespaces are not resolved (prefixes
/// are dropped), as `keyserver.md` §5.2 rule 1 ignores them.

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

/// A parsed request body: the shared bounded reader's element (`BoundedXML`), read with
/// namespaces ignored (prefixes dropped, local names kept: keyserver.md §5.2 rule 1).
typealias BodyXMLElement = BoundedXMLElement

extension BoundedXMLElement {
    /// First attribute whose local name matches one of `names` case-insensitively.
    func attribute(anyOf names: Set<String>) -> String? {
        attributes.first { names.contains($0.localName.lowercased()) }?.value
    }

    /// Depth-first, document order.
    func walk(_ body: (BoundedXMLElement) -> Void) {
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

enum BodyXMLParser {
    static func parse(_ bytes: [UInt8], limits: BodyXMLLimits = .init()) throws(KeyServerXMLError) -> BodyXMLElement {
        do {
            return try BoundedXMLParser.parse(bytes, limits: BoundedXMLLimits(maximumBytes: limits.maximumBytes, maximumDepth: limits.maximumDepth,
                                                                                maximumElements: limits.maximumElements,
                                                                                maximumAttributesPerElement: limits.maximumAttributesPerElement),
                                              resolvingNamespaces: false)
        } catch {
            switch error {
            case let .tooLarge(size, limit): throw .tooLarge(size: size, limit: limit)
            case let .forbiddenDeclaration(what, offset): throw .forbiddenDeclaration(what, offset: offset)
            case let .malformed(offset, rule): throw .malformed(offset: offset, rule: rule)
            case let .limitExceeded(what, offset, limit): throw .limitExceeded(what, offset: offset, limit: limit)
            case let .undefinedEntity(name, offset): throw .undefinedEntity(name, offset: offset)
            case let .unboundPrefix(prefix, offset): throw .malformed(offset: offset, rule: "prefix \(prefix) not declared")   // not raised when namespaces are ignored
            }
        }
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

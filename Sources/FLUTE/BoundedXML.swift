import BoundedXML

// FDT Instances are read by the shared bounded XML reader (`BoundedXML`): no DTDs, no entity
// declarations, bounded size, depth and element count, namespaces resolved.
typealias XMLNode = BoundedXMLElement

public struct FDTParserLimits: Equatable, Sendable {
    /// Largest FDT Instance accepted, in bytes.
    public var maximumBytes: Int
    /// Deepest element nesting.
    public var maximumDepth: Int
    /// Most elements in one instance.
    public var maximumElements: Int
    /// Most attributes on one element.
    public var maximumAttributesPerElement: Int

    public init(maximumBytes: Int = 1 << 20, maximumDepth: Int = 16, maximumElements: Int = 100_000, maximumAttributesPerElement: Int = 64) {
        self.maximumBytes = maximumBytes; self.maximumDepth = maximumDepth
        self.maximumElements = maximumElements; self.maximumAttributesPerElement = maximumAttributesPerElement
    }
}

/// Why an FDT Instance was refused. Offsets are byte offsets into the XML.
public enum FDTParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(size: Int, limit: Int)
    /// A DTD or entity declaration (refused outright: billion laughs, external entities).
    case forbiddenDeclaration(String, offset: Int)
    case malformed(offset: Int, rule: String)
    case limitExceeded(String, offset: Int, limit: Int)
    case undefinedEntity(String, offset: Int)
    case unboundPrefix(String, offset: Int)
    /// The root element is not an FDT-Instance in a FLUTE FDT namespace.
    case notAnFDTInstance(root: String, namespace: String?)
    case missingAttribute(element: String, attribute: String, offset: Int)
    case invalidAttribute(element: String, attribute: String, value: String, offset: Int, rule: String)
    /// One instance maps a TOI twice (RFC 3926 §3.4.2: a TOI names one file).
    case duplicateTOI(UInt64, offset: Int)

    public var description: String {
        switch self {
        case let .tooLarge(size, limit): return "FDT Instance of \(size) bytes exceeds the limit of \(limit)"
        case let .forbiddenDeclaration(what, offset): return "FDT Instance: \(what) at offset \(offset) refused (no DTDs or entity declarations)"
        case let .malformed(offset, rule): return "FDT Instance: malformed XML at offset \(offset) (\(rule))"
        case let .limitExceeded(what, offset, limit): return "FDT Instance: \(what) at offset \(offset) exceeds the limit of \(limit)"
        case let .undefinedEntity(name, offset): return "FDT Instance: entity '&\(name);' at offset \(offset) is not predefined (XML 1.0 §4.6)"
        case let .unboundPrefix(prefix, offset): return "FDT Instance: prefix '\(prefix)' at offset \(offset) is not declared (Namespaces in XML 1.0 §5)"
        case let .notAnFDTInstance(root, ns): return "XML root '\(root)' in namespace \(ns ?? "none") is not an FDT-Instance (RFC 3926 §3.4.2)"
        case let .missingAttribute(element, attribute, offset): return "FDT \(element) at offset \(offset): required attribute \(attribute) missing (RFC 3926 §3.4.2)"
        case let .invalidAttribute(element, attribute, value, offset, rule): return "FDT \(element) at offset \(offset): \(attribute)=\"\(value)\" invalid (\(rule))"
        case let .duplicateTOI(toi, offset): return "FDT Instance: TOI \(toi) listed twice (second at offset \(offset))"
        }
    }
}


extension FDTParserLimits {
    var xml: BoundedXMLLimits {
        BoundedXMLLimits(maximumBytes: maximumBytes, maximumDepth: maximumDepth, maximumElements: maximumElements,
                         maximumAttributesPerElement: maximumAttributesPerElement)
    }
}

extension FDTParseError {
    init(_ e: BoundedXMLError) {
        switch e {
        case let .tooLarge(size, limit): self = .tooLarge(size: size, limit: limit)
        case let .forbiddenDeclaration(what, offset): self = .forbiddenDeclaration(what, offset: offset)
        case let .malformed(offset, rule): self = .malformed(offset: offset, rule: rule)
        case let .limitExceeded(what, offset, limit): self = .limitExceeded(what, offset: offset, limit: limit)
        case let .undefinedEntity(name, offset): self = .undefinedEntity(name, offset: offset)
        case let .unboundPrefix(prefix, offset): self = .unboundPrefix(prefix, offset: offset)
        }
    }
}

import CryptoCore

/// Why a DCF could not be written, parsed, verified or decrypted.
///
/// Every parse error names the box, the field or rule, and the byte offset (from the start of
/// the DCF) where it was found. Rules cite ISO/IEC 14496-12 (box syntax), OMA-TS-DRM-DCF-V2_0
/// (as reconstructed in `spec/dcf.md`) or TS 33.246 6.6.3.2. Never carries key material.
public enum DCFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the field needs.
    case truncated(box: String, field: String, offset: Int)
    /// A box `size` that is below its header, beyond its parent, or 0 where not allowed.
    case invalidBoxSize(box: String, offset: Int, size: UInt64, rule: String)
    /// A mandatory box is absent.
    case missingBox(String, in: String)
    /// A box appears where the format does not allow it (or more than once).
    case unexpectedBox(String, offset: Int, in: String, rule: String)
    /// A field holds a value the format forbids.
    case invalidField(box: String, field: String, offset: Int, rule: String)
    /// A length field disagrees with the bytes present.
    case lengthMismatch(box: String, field: String, offset: Int, declared: UInt64, actual: UInt64)
    /// The DCF is larger than the configured bound.
    case tooLarge(size: Int, limit: Int)
    /// The `odfs` HMAC-SHA1 does not match (TS 33.246 6.6.3.2): the file must be rejected.
    case signatureMismatch
    /// The file carries no `odfs` signature but the caller requires one.
    case signatureMissing
    /// CBC padding or length checks failed after decryption (RFC 2630 6.3 / OMA DCF 5.1).
    case decryptionFailed(reason: String)
    /// A value cannot be represented in the field the writer must put it in.
    case unrepresentable(field: String, value: UInt64)
    /// A key or IV of the wrong size was given to the writer or reader.
    case invalidKeyMaterial(String)
    /// The crypto layer refused (key length, backend failure).
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case let .truncated(box, field, offset):
            return "DCF '\(box)' box: \(field) truncated at offset \(offset)"
        case let .invalidBoxSize(box, offset, size, rule):
            return "DCF '\(box)' box at offset \(offset): size \(size) invalid (\(rule))"
        case let .missingBox(box, parent):
            return "DCF: mandatory '\(box)' box missing in \(parent)"
        case let .unexpectedBox(box, offset, parent, rule):
            return "DCF: unexpected '\(box)' box at offset \(offset) in \(parent) (\(rule))"
        case let .invalidField(box, field, offset, rule):
            return "DCF '\(box)' box: \(field) at offset \(offset) invalid (\(rule))"
        case let .lengthMismatch(box, field, offset, declared, actual):
            return "DCF '\(box)' box: \(field) at offset \(offset) declares \(declared) bytes, \(actual) present"
        case let .tooLarge(size, limit):
            return "DCF of \(size) bytes exceeds the limit of \(limit) bytes"
        case .signatureMismatch:
            return "DCF 'odfs' HMAC-SHA1 signature does not match (TS 33.246 6.6.3.2): file rejected"
        case .signatureMissing:
            return "DCF carries no 'odfs' signature but integrity protection is required (TS 33.246 6.6.3.2)"
        case let .decryptionFailed(reason):
            return "DCF content could not be decrypted: \(reason)"
        case let .unrepresentable(field, value):
            return "DCF writer: \(field) value \(value) does not fit its field"
        case let .invalidKeyMaterial(what):
            return "DCF: \(what)"
        case let .crypto(error):
            return "DCF crypto: \(error)"
        }
    }
}

/// Errors from the crypto layer. Never carries key material.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The OpenSSL found at run time is older than the one this build needs.
    case openSSLTooOld(found: String, required: String)
    /// A key of an unsupported length was given.
    case invalidKeyLength(algorithm: String, got: Int, allowed: [Int])
    /// An IV or nonce of the wrong length was given.
    case invalidIVLength(algorithm: String, got: Int, expected: Int)
    /// Ciphertext for a block mode is not a multiple of the block size, or padding is wrong.
    case invalidCiphertext(algorithm: String, reason: String)
    /// OpenSSL reported a failure in an operation that should not fail.
    case backendFailure(operation: String)
    /// The system CSPRNG could not deliver bytes.
    case randomUnavailable

    public var description: String {
        switch self {
        case let .openSSLTooOld(found, required):
            return "OpenSSL \(found) is too old: mbms-gateway needs OpenSSL \(required) or newer (install libssl3 / libssl-dev from your distribution)"
        case let .invalidKeyLength(algorithm, got, allowed):
            return "\(algorithm): key of \(got) bytes; allowed lengths: \(allowed.map(String.init).joined(separator: ", "))"
        case let .invalidIVLength(algorithm, got, expected):
            return "\(algorithm): IV of \(got) bytes; expected \(expected)"
        case let .invalidCiphertext(algorithm, reason):
            return "\(algorithm): invalid ciphertext (\(reason))"
        case let .backendFailure(operation):
            return "OpenSSL failed in \(operation)"
        case .randomUnavailable:
            return "the system random number generator returned no bytes"
        }
    }
}

import CryptoCore
import Foundation

/// Secrets given on the command line are visible in process listings; `--muk-file` reads the
/// hex from a file instead (whitespace ignored). Exactly one of the two may be given.
enum SecretInput {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// A MUK is Ks_(ext/int)_NAF: 32 octets (TS 33.220 B.3, TS 33.246 6.1). Anything else — a
    /// truncated paste, a key of another kind — is refused rather than used.
    static let mukLength = 32

    static func muk(_ hex: String) throws -> SecretBytes {
        guard var bytes = try? Hex.decode(hex) else {
            throw Failure(description: "--muk: not hex; give the MUK (Ks_NAF) as 64 hex digits")
        }
        defer { SecureZero.zero(&bytes) }
        guard bytes.count == mukLength else {
            throw Failure(description: "--muk: \(bytes.count) octets; a MUK is Ks_(ext/int)_NAF, 32 octets = 64 hex digits (TS 33.246 6.1)")
        }
        return SecretBytes(bytes)
    }

    static func mukHex(_ hex: String?, file: String?) throws -> String? {
        switch (hex, file) {
        case (nil, nil): return nil
        case (.some, .some): throw Failure(description: "give either --muk or --muk-file, not both")
        case (.some(let h), nil): return h
        case (nil, .some(let path)):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw Failure(description: "--muk-file \(path): cannot read it; give a file holding the MUK as hex digits")
            }
            return String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace }
        }
    }
}

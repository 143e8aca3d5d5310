import Foundation

/// Secrets given on the command line are visible in process listings; `--muk-file` reads the
/// hex from a file instead (whitespace ignored). Exactly one of the two may be given.
enum SecretInput {
    struct Failure: Error, CustomStringConvertible { var description: String }

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

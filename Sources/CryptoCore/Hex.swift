/// Hex conversion for configuration, tests and diagnostics (never for logging secrets).
public enum Hex {
    public enum DecodingError: Error, Equatable, Sendable {
        case oddLength(Int)
        case invalidCharacter(offset: Int)
    }

    /// Decodes a hex string; spaces, colons and a leading "0x" are ignored.
    public static func decode(_ text: String) throws(DecodingError) -> [UInt8] {
        var s = Substring(text)
        if s.hasPrefix("0x") || s.hasPrefix("0X") { s = s.dropFirst(2) }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count / 2)
        var high: UInt8? = nil
        var offset = 0
        for c in s.utf8 {
            defer { offset += 1 }
            if c == 0x20 || c == 0x3A || c == 0x0A || c == 0x09 { continue }
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            default: throw .invalidCharacter(offset: offset)
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        if high != nil { throw .oddLength(out.count * 2 + 1) }
        return out
    }

    public static func encode<C: Collection<UInt8>>(_ bytes: C) -> String {
        let digits: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xF)]) }
        return s
    }
}

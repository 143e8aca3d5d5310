/// An IPv4 or IPv6 address as a value (no Foundation, no sockaddr in the API).
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    public var isMulticast: Bool {
        switch self {
        case .v4(let a): return a >> 28 == 0xE
        case .v6(let h, _): return h >> 56 == 0xFF
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 text IPv6 ("::" compression, no zone).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let v = IPAddress.parseV6(text) else { return nil }
            self = v
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var a: UInt32 = 0
            for p in parts {
                guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt32(p), v <= 255 else { return nil }
                a = a << 8 | v
            }
            self = .v4(a)
        }
    }

    private static func parseV6(_ text: String) -> IPAddress? {
        // Split at the one "::" if present (without Foundation).
        let chars = Array(text)
        var halves: [String] = [text]
        var i = 0
        while i + 1 < chars.count {
            if chars[i] == ":" && chars[i + 1] == ":" {
                guard halves.count == 1 else { return nil }
                halves = [String(chars[..<i]), String(chars[(i + 2)...])]
                i += 2
                continue
            }
            i += 1
        }
        if halves.count == 2 && (halves[0].hasSuffix(":") || halves[1].hasPrefix(":")) { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<4 { h = h << 16 | UInt64(all[i]) }
        for i in 4..<8 { l = l << 16 | UInt64(all[i]) }
        return .v6(h, l)
    }

    public var description: String {
        switch self {
        case .v4(let a): return "\(a >> 24).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF)"
        case .v6(let h, let l):
            let g = (0..<4).map { UInt16(truncatingIfNeeded: h >> (48 - 16 * UInt64($0))) } + (0..<4).map { UInt16(truncatingIfNeeded: l >> (48 - 16 * UInt64($0))) }
            // Longest run of zero groups becomes "::" (RFC 5952).
            var best = (start: -1, length: 0), i = 0
            while i < 8 {
                if g[i] == 0 {
                    var j = i
                    while j < 8 && g[j] == 0 { j += 1 }
                    if j - i > best.length && j - i > 1 { best = (i, j - i) }
                    i = j
                } else { i += 1 }
            }
            func hex(_ r: ArraySlice<UInt16>) -> String { r.map { String($0, radix: 16) }.joined(separator: ":") }
            if best.start < 0 { return hex(g[0..<8]) }
            return hex(g[0..<best.start]) + "::" + hex(g[(best.start + best.length)..<8])
        }
    }
}

/// Address and UDP port: "239.255.10.1:5020" or "[ff0e::1]:5020".
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    public init?(_ text: String) {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let a = IPAddress(String(host)), let p = UInt16(portText) else { return nil }
        self.init(a, p)
    }

    public var description: String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }
}

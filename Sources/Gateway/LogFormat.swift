import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How the long-running commands (`run`, `keyserver`) write their log lines to stderr.
/// (issue 19 finding 11: swift-log's stream handler wrote `key=value` with values as they were,
/// so `error=no such file` could not be split back into keys and values.)
public enum LogFormat: String, CaseIterable, Sendable {
    /// logfmt: `ts=… level=info logger=mbms-gateway msg="gateway stopped" reason=signal`; a
    /// value with a space, `=`, `"` or a control character is quoted, `"` and `\` escaped.
    case logfmt
    /// One JSON object per line: ts, level, logger, msg, then the metadata (nested metadata as
    /// JSON objects and arrays).
    case json
}

/// swift-log handler writing `LogFormat` lines to stderr, one `write` per line (lines of
/// several threads never interleave). Keys are never logged: the callers' metadata has none.
public struct GatewayLogHandler: LogHandler {
    public let label: String
    public let format: LogFormat
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Where lines go: stderr, or a test's sink.
    let sink: @Sendable (String) -> Void

    public init(label: String, format: LogFormat, level: Logger.Level = .info,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.init(label: label, format: format, level: level, metadataProvider: metadataProvider, sink: Self.standardError)
    }

    init(label: String, format: LogFormat, level: Logger.Level, metadataProvider: Logger.MetadataProvider?,
         sink: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.format = format
        logLevel = level
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let p = metadataProvider { all.merge(p.get()) { _, new in new } }
        if let m = event.metadata { all.merge(m) { _, new in new } }
        sink(Self.line(format: format, time: Date(), level: event.level, label: label, message: event.message.description, metadata: all))
    }

    /// One line (with its newline). Metadata keys in order; a key that clashes with one of the
    /// fixed fields gets a `_` in front.
    static func line(format: LogFormat, time: Date, level: Logger.Level, label: String, message: String,
                     metadata: Logger.Metadata) -> String {
        let fixed = [("ts", timestamp(time)), ("level", level.rawValue), ("logger", label), ("msg", message)]
        let reserved = Set(fixed.map(\.0))
        let extra = metadata.map { (reserved.contains($0.key) ? "_" + $0.key : $0.key, $0.value) }.sorted { $0.0 < $1.0 }
        switch format {
        case .logfmt:
            var out = fixed.map { "\($0.0)=\(logfmtValue($0.1))" }.joined(separator: " ")
            for (k, v) in extra { out += " \(logfmtKey(k))=\(logfmtValue(flatten(v)))" }
            return out + "\n"
        case .json:
            var out = "{" + fixed.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",")
            for (k, v) in extra { out += ",\(jsonString(k)):\(json(v))" }
            return out + "}\n"
        }
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp(_ d: Date) -> String {
        let t = d.timeIntervalSince1970
        var secs = time_t(t.rounded(.down))
        var parts = tm()
        gmtime_r(&secs, &parts)
        let ms = Int((t - Double(secs)) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(999, max(0, ms)))
    }

    /// A logfmt key: anything that would end it (space, `=`, `"`, control) becomes `_`.
    static func logfmtKey(_ k: String) -> String {
        let cleaned = String(k.unicodeScalars.map { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x20 || $0.value == 0x7F ? "_" : Character($0) })
        return cleaned.isEmpty ? "_" : cleaned
    }

    /// A logfmt value: bare when it has no space, `=`, `"`, `\` or control character and is
    /// not empty; otherwise quoted with `"` and `\` escaped and controls as \n, \t, \r, \u{…}.
    static func logfmtValue(_ v: String) -> String {
        let needsQuotes = v.isEmpty || v.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }
        guard needsQuotes else { return v }
        // The quoted form is a JSON string: one escaping rule for both formats.
        return jsonString(v)
    }

    /// Nested metadata as one string (logfmt has no nesting).
    static func flatten(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): return "[" + d.sorted { $0.key < $1.key }.map { "\($0.key): \(flatten($0.value))" }.joined(separator: ", ") + "]"
        }
    }

    static func json(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return jsonString(s)
        case .stringConvertible(let c): return jsonString(c.description)
        case .array(let a): return "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string (RFC 8259 7): `"` and `\` escaped, control characters as \n, \r, \t or \u00XX.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                // DEL too: a terminal showing a logfmt line should not act on it (JSON allows it escaped).
                if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// One write(2) per line to fd 2 (retried on a short write or EINTR).
    static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        guard !bytes.isEmpty else { return }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { b -> Int in
                guard let base = b.baseAddress else { return -1 }
                return write(2, base + off, b.count - off)
            }
            if n < 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }

    /// Installs the handler process-wide (`LoggingSystem.bootstrap`, once per process).
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in GatewayLogHandler(label: label, format: format, level: level) }
    }
}

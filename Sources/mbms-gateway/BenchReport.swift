import Foundation

/// What `mbms-gateway bench` measured: the same figures for the table and for `--json`.
struct BenchReport: Codable {
    struct Machine: Codable {
        var cpu: String
        /// Of aes, sha_ni, avx2, avx512f, vaes: those /proc/cpuinfo lists.
        var cpuFlags: [String]
        var cores: Int
        var openssl: String
        /// Debian libsrtp2 loaded at run time, or why not.
        var libsrtp: String
        var multiHash: String
        /// The batched AES-CM keystream code ("vaes" or "openssl"; MBMS_BATCHAES forces it).
        var batchAES: String
        /// How allocations are counted ("interposed malloc (glibc)" or why not).
        var mallocCounter: String
    }

    /// One measured configuration. `gbitPerSecond` counts RTP payload bits (no headers, no tag).
    struct Row: Codable {
        var name: String
        /// "160", "1200" or "160-1200" (a mix).
        var payloadBytes: String
        var packets: Int
        var nsPerPacket: Double
        var packetsPerSecond: Double
        var gbitPerSecond: Double
        /// Heap allocations per packet during the measured loop (nil where not counted).
        var mallocsPerPacket: Double?
    }

    struct Ratio: Codable {
        var name: String
        var value: Double
        var meaning: String
    }

    struct Case: Codable {
        var name: String
        var rows: [Row] = []
        var ratios: [Ratio] = []
        var notes: [String] = []
    }

    var machine: Machine
    var quick: Bool
    var cases: [Case]
}

extension BenchReport.Row {
    init(name: String, payloadBytes: String, packets: Int, seconds: Double, payloadOctets: Double, mallocs: UInt64? = nil) {
        let s = max(seconds, 1e-9)
        let n = max(packets, 1)
        self.init(name: name, payloadBytes: payloadBytes, packets: packets, nsPerPacket: s * 1e9 / Double(n),
                  packetsPerSecond: Double(packets) / s, gbitPerSecond: payloadOctets * 8 / s / 1e9,
                  mallocsPerPacket: mallocs.map { Double($0) / Double(n) })
    }
}

/// The machine: CPU model and flags, cores.
enum MachineInfo {
    static func cpu() -> (model: String, flags: [String]) {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n")
        let model = lines.first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown (no /proc/cpuinfo)"
        let flags = lines.first { $0.hasPrefix("flags") }.map { $0.split(separator: " ") } ?? []
        let wanted = ["aes", "sha_ni", "avx2", "avx512f", "vaes"].filter { flags.contains(Substring($0)) }
        return (model, wanted)
    }

    static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }
}

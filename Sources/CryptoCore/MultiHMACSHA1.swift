import CMultiHash

/// Which multi-message HMAC-SHA1 implementation runs (see `HMACSHA1Batch`).
public enum MultiHash {
    public enum Implementation: String, Sendable, CaseIterable {
        /// Portable C SHA-1 compression (FIPS 180-4), one message at a time.
        case scalar
        /// OpenSSL's SHA1_Update/SHA1_Final resumed from the keyed states, one message at a time.
        case openssl
        /// Intel SHA extensions, up to four messages interleaved.
        case shani

        var code: Int32 {
            switch self {
            case .scalar: Int32(MBMS_MH_SCALAR)
            case .openssl: Int32(MBMS_MH_OPENSSL)
            case .shani: Int32(MBMS_MH_SHANI)
            }
        }
    }

    /// Name of the active implementation: "shani", "scalar" or "openssl". Chosen on first
    /// use from `MBMS_MULTIHASH` (if set and available), else "shani" when CPUID reports the
    /// SHA extensions, else "openssl" (faster than the portable "scalar", which stays a reference).
    public static var implementation: String {
        String(cString: mbms_mh_implementation_name(mbms_mh_implementation()))
    }

    /// Whether `impl` can run on this CPU.
    public static func isAvailable(_ impl: Implementation) -> Bool { mbms_mh_available(impl.code) != 0 }

    /// Test and benchmark hook: forces `impl` (nil: back to the environment/CPUID choice).
    /// Process-wide; returns false and changes nothing when `impl` is unavailable.
    @discardableResult
    public static func select(_ impl: Implementation?) -> Bool {
        mbms_mh_select(impl?.code ?? -1) != 0
    }
}

/// HMAC-SHA1 (RFC 2104) of many messages per call, each message the concatenation of two
/// parts a_i ‖ b_i (SRTP: authenticated portion ‖ ROC, RFC 3711 4.2). The inner and outer
/// chaining values are computed once at keying; with the Intel SHA extensions several
/// messages are compressed interleaved (see Sources/CMultiHash/sha1_shani.c).
///
/// Byte-identical to `HMACSHA1` for the same key. Read-only after init: one instance may be
/// used from many threads at once.
public final class HMACSHA1Batch: @unchecked Sendable {
    public static let digestLength = 20
    private let key: UnsafeMutablePointer<mbms_mh_key>

    public init(key: UnsafeRawBufferPointer) { self.key = Self.makeKey(key) }
    public init(key: [UInt8]) { self.key = key.withUnsafeBytes { Self.makeKey($0) } }
    public init(key: SecretBytes) { self.key = key.withUnsafeBytes { Self.makeKey($0) } }

    private static func makeKey(_ k: UnsafeRawBufferPointer) -> UnsafeMutablePointer<mbms_mh_key> {
        let p = UnsafeMutablePointer<mbms_mh_key>.allocate(capacity: 1)
        mbms_mh_key_init(p, k.baseAddress?.assumingMemoryBound(to: UInt8.self), k.count)
        return p
    }

    deinit {
        mbms_mh_key_clear(key)
        key.deallocate()
    }

    /// digests[20 i ..< 20 i + 20] = HMAC-SHA1(key, a[i][0..<aLengths[i]] ‖ b[i][0..<bLengths[i]])
    /// for i in 0..<count. Any count (lanes run in groups of up to eight); lengths may differ;
    /// a pointer may be nil when its length is 0. Hot path: no allocation.
    @inline(__always)
    public func authenticate(count: Int,
                             a: UnsafePointer<UnsafeRawPointer?>, aLengths: UnsafePointer<Int>,
                             b: UnsafePointer<UnsafeRawPointer?>, bLengths: UnsafePointer<Int>,
                             digests: UnsafeMutableRawPointer) {
        guard count > 0 else { return }
        // size_t imports as Int: the length arrays pass through unchanged.
        mbms_mh_hmac_sha1(key, count, a, aLengths, b, bLengths, digests.assumingMemoryBound(to: UInt8.self))
    }

    /// digests[20 i ..< 20 i + 20] = HMAC-SHA1(key, messages[i][0..<lengths[i]]) for i in
    /// 0..<count: one-part messages. With the SHA extensions, messages of one length of at
    /// least 64 bytes (an SRTP batch of equal packets with the ROC written behind each one)
    /// take the fastest path: no lane set-up, whole blocks read in place. Hot path: no allocation.
    @inline(__always)
    public func authenticate(count: Int, messages: UnsafePointer<UnsafeRawPointer?>, lengths: UnsafePointer<Int>,
                             digests: UnsafeMutableRawPointer) {
        guard count > 0 else { return }
        mbms_mh_hmac_sha1(key, count, messages, lengths, nil, nil, digests.assumingMemoryBound(to: UInt8.self))
    }

    /// HMAC-SHA1 of each message (control plane and tests; allocates).
    public func authenticate(_ messages: [[UInt8]]) -> [[UInt8]] {
        let n = messages.count
        guard n > 0 else { return [] }
        let joined = messages.flatMap { $0 }
        var offsets: [Int] = []
        var start = 0
        for m in messages { offsets.append(start); start += m.count }
        let lengths = messages.map(\.count)
        var out = [UInt8](repeating: 0, count: n * Self.digestLength)
        joined.withUnsafeBytes { j in
            let pointers: [UnsafeRawPointer?] = (0..<n).map { i in
                lengths[i] == 0 ? nil : j.baseAddress.map { $0 + offsets[i] }
            }
            out.withUnsafeMutableBytes { o in
                guard let base = o.baseAddress else { return }
                authenticate(count: n, messages: pointers, lengths: lengths, digests: base)
            }
        }
        return (0..<n).map { Array(out[($0 * Self.digestLength)..<(($0 + 1) * Self.digestLength)]) }
    }
}

import CBatchAES

/// AES counter mode (RFC 3711 4.1.1 "AES-CM"; NIST SP 800-38A 6.5 CTR; RFC 6188 for 192/256-bit
/// keys) for many packets per call. On CPUs with VAES + AVX2 an own VAES kernel encrypts the
/// counter blocks IV_i + j two per instruction and XORs them straight into the packets;
/// elsewhere the counter blocks of all packets are encrypted together by one OpenSSL AES-ECB
/// call per 16 KiB chunk, then XORed in (AVX2 where available). See
/// Sources/CBatchAES/aes_cm_batch.c.
///
/// Byte-identical to `AESCounterMode` with the same key, IV by IV. The key is scheduled once;
/// an instance owns a fixed keystream scratch (zeroed on release) that every call mutates, so
/// it belongs to one thread at a time: give each worker its own (`copy()`).
public final class AESCounterModeBatch: @unchecked Sendable {
    public static let allowedKeyLengths = [16, 24, 32]
    public static let blockSize = 16

    private let ctx: OpaquePointer
    public let keyLength: Int

    /// Which AES code produces the keystream (process-wide).
    public enum Implementation: String, Sendable, CaseIterable {
        /// Counter blocks through one OpenSSL AES-ECB call per chunk, then the XOR loop; any CPU.
        case openssl
        /// Own VAES kernel (two blocks per VAESENC, XOR straight into the packets); CPUs with
        /// VAES, AVX2 and AES-NI. The XOR implementation does not apply to it.
        case vaes

        var code: Int32 {
            switch self {
            case .openssl: Int32(MBMS_BCM_AES_OPENSSL)
            case .vaes: Int32(MBMS_BCM_AES_VAES)
            }
        }
    }

    /// The active AES implementation: `.vaes` when CPUID reports it, unless
    /// `MBMS_BATCHAES=openssl` is set.
    public static var implementation: Implementation {
        Implementation(rawValue: implementationName) ?? .openssl
    }

    /// The active AES implementation's name ("openssl" or "vaes"), as the C side reports it.
    public static var implementationName: String {
        String(cString: mbms_bcm_aes_implementation_name(mbms_bcm_aes_implementation()))
    }

    public static func isAvailable(_ impl: Implementation) -> Bool { mbms_bcm_aes_available(impl.code) != 0 }

    /// Test and benchmark hook: forces the AES implementation (nil: back to the
    /// environment/CPUID choice). False, and nothing changes, when `impl` is unavailable.
    @discardableResult
    public static func select(implementation impl: Implementation?) -> Bool { mbms_bcm_aes_select(impl?.code ?? -1) != 0 }

    /// Which XOR loop runs (process-wide; OpenSSL AES path only).
    public enum XORImplementation: String, Sendable, CaseIterable {
        /// 8 bytes per step, any CPU.
        case portable
        /// 32 bytes per step, unaligned AVX2 loads and stores.
        case avx2

        var code: Int32 {
            switch self {
            case .portable: Int32(MBMS_BCM_XOR_PORTABLE)
            case .avx2: Int32(MBMS_BCM_XOR_AVX2)
            }
        }
    }

    /// The active XOR implementation: "avx2" when CPUID reports it, unless
    /// `MBMS_BATCHAES_XOR=portable` is set.
    public static var xorImplementation: String {
        String(cString: mbms_bcm_xor_implementation_name(mbms_bcm_xor_implementation()))
    }

    public static func isAvailable(_ impl: XORImplementation) -> Bool { mbms_bcm_xor_available(impl.code) != 0 }

    /// Test and benchmark hook: forces `impl` (nil: back to the environment/CPUID choice).
    @discardableResult
    public static func select(_ impl: XORImplementation?) -> Bool { mbms_bcm_xor_select(impl?.code ?? -1) != 0 }

    /// Counter blocks encrypted per OpenSSL call.
    public static var chunkBlocks: Int { mbms_bcm_chunk_blocks() }

    public init(key: UnsafeRawBufferPointer) throws(CryptoError) {
        guard Self.allowedKeyLengths.contains(key.count), let base = key.baseAddress else {
            throw .invalidKeyLength(algorithm: "AES-CM", got: key.count, allowed: Self.allowedKeyLengths)
        }
        guard let ctx = mbms_bcm_new(base.assumingMemoryBound(to: UInt8.self), key.count) else {
            throw .backendFailure(operation: "EVP_EncryptInit_ex(AES-ECB)")
        }
        self.ctx = ctx
        self.keyLength = key.count
    }

    public convenience init(key: [UInt8]) throws(CryptoError) {
        let result: Result<AESCounterModeBatch, CryptoError> = key.withUnsafeBytes { buffer in
            do throws(CryptoError) { return .success(try AESCounterModeBatch(key: buffer)) } catch { return .failure(error) }
        }
        try self.init(copying: try result.get())
    }

    public convenience init(key: SecretBytes) throws(CryptoError) {
        let result: Result<AESCounterModeBatch, CryptoError> = key.withUnsafeBytes { buffer in
            do throws(CryptoError) { return .success(try AESCounterModeBatch(key: buffer)) } catch { return .failure(error) }
        }
        try self.init(copying: try result.get())
    }

    private init(copying other: AESCounterModeBatch) throws(CryptoError) {
        guard let c = mbms_bcm_dup(other.ctx) else { throw .backendFailure(operation: "EVP_CIPHER_CTX_copy(AES-ECB)") }
        self.ctx = c
        self.keyLength = other.keyLength
    }

    /// An independent context and scratch with the same key, for another thread.
    public func copy() throws(CryptoError) -> AESCounterModeBatch { try AESCounterModeBatch(copying: self) }

    deinit { mbms_bcm_free(ctx) }   // zeroes the keystream scratch

    /// For i in 0..<count: `data[i][0..<lengths[i]]` ^= the keystream from counter block
    /// `ivs[16 i ..< 16 i + 16]`. A data pointer may be nil when its length is 0; buffers must
    /// not overlap. Hot path: no allocation. False only on an OpenSSL failure.
    @inline(__always)
    public func xorKeystreams(count: Int, ivs: UnsafeRawPointer, data: UnsafePointer<UnsafeMutableRawPointer?>,
                              lengths: UnsafePointer<Int>) -> Bool {
        guard count > 0 else { return true }
        // size_t imports as Int, void *const * as UnsafePointer<UnsafeMutableRawPointer?>.
        return mbms_bcm_xor(ctx, count, ivs.assumingMemoryBound(to: UInt8.self), data, lengths) == 1
    }

    /// Each message XOR its keystream from the matching 16-byte IV, as new arrays (tests and
    /// control plane; allocates).
    public func apply(ivs: [[UInt8]], to messages: [[UInt8]]) throws(CryptoError) -> [[UInt8]] {
        guard ivs.count == messages.count else { throw .invalidIVLength(algorithm: "AES-CM batch", got: ivs.count, expected: messages.count) }
        for iv in ivs where iv.count != Self.blockSize {
            throw .invalidIVLength(algorithm: "AES-CM", got: iv.count, expected: Self.blockSize)
        }
        let n = messages.count
        guard n > 0 else { return [] }
        let flatIVs = ivs.flatMap { $0 }
        var joined = messages.flatMap { $0 }
        let lengths = messages.map(\.count)
        var offsets: [Int] = []
        var start = 0
        for m in messages { offsets.append(start); start += m.count }
        let ok = joined.withUnsafeMutableBytes { j -> Bool in
            let pointers: [UnsafeMutableRawPointer?] = (0..<n).map { i in
                lengths[i] == 0 ? nil : j.baseAddress.map { $0 + offsets[i] }
            }
            return flatIVs.withUnsafeBytes { v in
                guard let ivBase = v.baseAddress else { return false }
                return xorKeystreams(count: n, ivs: ivBase, data: pointers, lengths: lengths)
            }
        }
        guard ok else { throw .backendFailure(operation: "AES-CM batch") }
        return (0..<n).map { Array(joined[offsets[$0]..<(offsets[$0] + lengths[$0])]) }
    }
}

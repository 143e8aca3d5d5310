import COpenSSL

/// AES in counter mode (RFC 3711 4.1.1 "AES-CM"; RFC 6188 for 192/256-bit keys).
///
/// The key schedule is computed once; each call only sets the 16-byte initial counter
/// block. An instance mutates its OpenSSL context on every call, so it belongs to one
/// thread at a time: give each worker its own (`copy()`).
public final class AESCounterMode: @unchecked Sendable {
    public static let allowedKeyLengths = [16, 24, 32]
    public static let blockSize = 16

    private let ctx: OpaquePointer
    public let keyLength: Int

    public init(key: UnsafeRawBufferPointer) throws(CryptoError) {
        guard Self.allowedKeyLengths.contains(key.count) else {
            throw .invalidKeyLength(algorithm: "AES-CM", got: key.count, allowed: Self.allowedKeyLengths)
        }
        guard let ctx = mbms_aes_ctr_new(key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count) else {
            throw .backendFailure(operation: "EVP_EncryptInit_ex(AES-CTR)")
        }
        self.ctx = ctx
        self.keyLength = key.count
    }

    public convenience init(key: [UInt8]) throws(CryptoError) {
        let result: Result<AESCounterMode, CryptoError> = key.withUnsafeBytes { buffer in
            do throws(CryptoError) { return .success(try AESCounterMode(key: buffer)) } catch { return .failure(error) }
        }
        self.init(copying: try result.get())
    }

    public convenience init(key: SecretBytes) throws(CryptoError) {
        let result: Result<AESCounterMode, CryptoError> = key.withUnsafeBytes { buffer in
            do throws(CryptoError) { return .success(try AESCounterMode(key: buffer)) } catch { return .failure(error) }
        }
        self.init(copying: try result.get())
    }

    private init(copying other: AESCounterMode) {
        let copy = EVP_CIPHER_CTX_new()!
        EVP_CIPHER_CTX_copy(copy, other.ctx)
        self.ctx = copy
        self.keyLength = other.keyLength
    }

    /// An independent context with the same key, for another thread.
    public func copy() -> AESCounterMode { AESCounterMode(copying: self) }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// XORs `count` bytes at `data` with the keystream that starts at counter block `iv` (16 bytes).
    /// Hot path: no allocation, no checks beyond OpenSSL's own.
    @inline(__always)
    public func xorKeystream(iv: UnsafeRawPointer, data: UnsafeMutableRawPointer, count: Int) -> Bool {
        mbms_aes_ctr_xor(ctx, iv.assumingMemoryBound(to: UInt8.self), data.assumingMemoryBound(to: UInt8.self), count) == 1
    }

    /// The first `count` keystream bytes from counter block `iv`.
    public func keystream(iv: [UInt8], count: Int) throws(CryptoError) -> [UInt8] {
        guard iv.count == Self.blockSize else { throw .invalidIVLength(algorithm: "AES-CM", got: iv.count, expected: 16) }
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { o in
            iv.withUnsafeBytes { i in
                mbms_aes_ctr_keystream(ctx, i.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       o.baseAddress?.assumingMemoryBound(to: UInt8.self), count) == 1
            }
        }
        guard ok else { throw .backendFailure(operation: "AES-CTR keystream") }
        return out
    }

    /// `data` XOR keystream from `iv`, as a new array (control-plane convenience).
    public func apply(iv: [UInt8], to data: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard iv.count == Self.blockSize else { throw .invalidIVLength(algorithm: "AES-CM", got: iv.count, expected: 16) }
        var out = data
        let ok = out.withUnsafeMutableBytes { o in
            iv.withUnsafeBytes { i in
                o.count == 0 || xorKeystream(iv: i.baseAddress!, data: o.baseAddress!, count: o.count)
            }
        }
        guard ok else { throw .backendFailure(operation: "AES-CTR") }
        return out
    }
}

import COpenSSL

/// Key material in memory that is zeroed when the last reference goes away.
///
/// Deliberately not `CustomStringConvertible` with its bytes: printing a `SecretBytes`
/// shows only its length, so keys cannot leak into logs by interpolation.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let storage: UnsafeMutableRawBufferPointer

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var array = Array(bytes)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(array.count, 1), alignment: 16)
        array.withUnsafeBytes { src in
            if let base = src.baseAddress { buffer.baseAddress!.copyMemory(from: base, byteCount: src.count) }
        }
        storage = buffer
        count = array.count
        SecureZero.zero(&array)
    }

    /// `count` fresh bytes from the CSPRNG.
    public static func random(count: Int) throws(CryptoError) -> SecretBytes {
        let secret = SecretBytes(zeroedCount: count)
        try SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: secret.storage[0..<count]))
        return secret
    }

    private init(zeroedCount: Int) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(zeroedCount, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        count = zeroedCount
    }

    deinit {
        mbms_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public let count: Int

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as a plain array, for code that must serialise the key (store, MIKEY KEMAC).
    /// The caller owns the copy and should zero it (`SecureZero.zero(&array)`).
    public func revealedBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    /// Constant-time comparison.
    public func isEqual(to other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in mbms_memcmp(a.baseAddress, b.baseAddress, count) == 0 } }
    }

    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}

/// Zeroing helpers for transient copies of secrets.
public enum SecureZero {
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { mbms_cleanse($0.baseAddress, $0.count) }
    }

    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        mbms_cleanse(buffer.baseAddress, buffer.count)
    }
}

/// Constant-time equality of two byte ranges (for tags and MACs).
public func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    if a.count == 0 { return true }
    return mbms_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
}

public func constantTimeEquals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    let x = Array(a), y = Array(b)
    return x.withUnsafeBytes { xa in y.withUnsafeBytes { yb in constantTimeEquals(xa, yb) } }
}

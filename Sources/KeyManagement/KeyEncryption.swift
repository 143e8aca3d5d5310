import MIKEY
import CryptoCore
import Foundation

/// Errors about the key-encryption key. Never carries key bytes.
public enum KeyEncryptionKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case notConfigured
    case malformed(source: String)
    case unreadable(path: String)
    case tooOpen(path: String, mode: String)
    case alreadyExists(path: String)
    case cannotCreate(path: String, reason: String)
    case symbolicLink(path: String)
    case notRegularFile(path: String)
    case wrongOwner(path: String, owner: UInt32)

    public var description: String {
        switch self {
        case .notConfigured:
            return "no key-encryption key: set MBMS_KEK (64 hex digits) or MBMS_KEK_FILE (path), or keyStore.kekFile in the configuration; `mbms-gateway keys init --create-kek` creates the file"
        case let .malformed(source):
            return "\(source): the key-encryption key must be exactly 64 hex digits (32 bytes); fix: regenerate it with `mbms-gateway keys init --create-kek`"
        case let .unreadable(path):
            return "\(path): cannot read the key-encryption key file; fix: check the path (MBMS_KEK_FILE or keyStore.kekFile) and its owner, or create it with `mbms-gateway keys init --create-kek`"
        case let .tooOpen(path, mode):
            return "\(path): the key-encryption key file has mode \(mode), readable by others; fix: chmod 600 \(path)"
        case let .alreadyExists(path):
            return "\(path): a key-encryption key file already exists; fix: keep it, or move it away deliberately (the store cannot be read without it)"
        case let .cannotCreate(path, reason):
            return "\(path): cannot create the key-encryption key file (\(reason)); fix: check that the directory exists and is writable"
        case let .symbolicLink(path):
            return "\(path): the key-encryption key file is a symbolic link; fix: point MBMS_KEK_FILE or keyStore.kekFile at the file itself"
        case let .notRegularFile(path):
            return "\(path): the key-encryption key file is not a regular file; fix: point MBMS_KEK_FILE or keyStore.kekFile at the 64-hex-digit KEK file"
        case let .wrongOwner(path, owner):
            return "\(path): the key-encryption key file belongs to uid \(owner), not to this user (uid \(geteuid())); fix: run as its owner, or chown it to this user"
        }
    }
}

/// The key-encryption key (KEK, 32 bytes) that seals MSKs and seeds at rest.
///
/// Sources, first match wins:
/// 1. `MBMS_KEK`: 64 hex digits in the environment;
/// 2. `MBMS_KEK_FILE`: path of a file with 64 hex digits (mode 0600, not readable by group/others);
/// 3. `keyStore.kekFile` in the configuration (same format).
public enum KeyEncryptionKey {
    public static let length = 32
    public static let environmentVariable = "MBMS_KEK"
    public static let environmentFileVariable = "MBMS_KEK_FILE"

    /// Loads the KEK. `environment` is a parameter so tests never touch the process environment.
    public static func load(environment: [String: String], configuredFile: String?) throws(KeyEncryptionKeyError) -> SecretBytes {
        if let hex = environment[environmentVariable] {
            return try decode(hex, source: environmentVariable)
        }
        if let path = environment[environmentFileVariable] ?? configuredFile {
            return try loadFile(path)
        }
        throw .notConfigured
    }

    /// Where `load` would read from (for messages), or nil when nothing is configured.
    public static func source(environment: [String: String], configuredFile: String?) -> String? {
        if environment[environmentVariable] != nil { return "$\(environmentVariable)" }
        return environment[environmentFileVariable] ?? configuredFile
    }

    /// Reads the KEK file through one descriptor (O_NOFOLLOW): what is checked (a regular file,
    /// ours, no group/other bits; `fstat`) is what is read, whatever happens to the path.
    public static func loadFile(_ path: String) throws(KeyEncryptionKeyError) -> SecretBytes {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ELOOP { throw .symbolicLink(path: path) }
            throw .unreadable(path: path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .unreadable(path: path) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path) }
        guard st.st_uid == geteuid() else { throw .wrongOwner(path: path, owner: st.st_uid) }
        guard st.st_mode & 0o077 == 0 else { throw .tooOpen(path: path, mode: String(st.st_mode & 0o777, radix: 8)) }
        // 64 hex digits and a newline, some whitespace: anything longer is not a KEK file.
        var bytes = [UInt8](repeating: 0, count: 4096)
        defer { SecureZero.zero(&bytes) }
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .unreadable(path: path) }
            if n == 0 { break }
            count += n
        }
        guard count < bytes.count else { throw .malformed(source: path) }
        var text = Array(bytes[0..<count])
        defer { SecureZero.zero(&text) }
        guard let string = String(validating: text, as: UTF8.self) else { throw .malformed(source: path) }
        return try decode(string, source: path)
    }

    static func decode(_ text: String, source: String) throws(KeyEncryptionKeyError) -> SecretBytes {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count == 2 * length, var raw = try? Hex.decode(trimmed), raw.count == length else {
            throw .malformed(source: source)
        }
        defer { SecureZero.zero(&raw) }
        return SecretBytes(raw)
    }

    /// Creates a new random KEK file, created with mode 0600 (O_CREAT|O_EXCL; never chmod afterwards).
    @discardableResult
    public static func createFile(at path: String) throws(KeyEncryptionKeyError) -> SecretBytes {
        let key: SecretBytes
        do { key = try SecretBytes.random(count: length) } catch { throw .cannotCreate(path: path, reason: "\(error)") }
        var text = Array((key.withUnsafeBytes { Hex.encode($0) } + "\n").utf8)
        defer { SecureZero.zero(&text) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            var st = stat()
            if e == EEXIST, lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFLNK { throw .symbolicLink(path: path) }
            if e == EEXIST { throw .alreadyExists(path: path) }
            throw .cannotCreate(path: path, reason: String(cString: strerror(e)))
        }
        defer { close(fd) }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == text.count, fsync(fd) == 0 else { throw .cannotCreate(path: path, reason: "short write") }
        return key
    }
}

/// Encryption of secrets at rest: AES-256-CTR then HMAC-SHA256 (encrypt-then-MAC), keys
/// derived from the KEK with HMAC-SHA256 under fixed labels, a random 16-byte initial counter
/// block per sealing, and the record's identity bound into the MAC so sealed values cannot be
/// moved between rows.
///
/// Layout: `0x01 (version) ‖ IV (16) ‖ ciphertext ‖ HMAC-SHA256(k_mac, 0x01 ‖ context ‖ 0x00 ‖ IV ‖ ciphertext)`.
public final class SecretSealer: @unchecked Sendable {
    private let encryptionKey: SecretBytes
    private let macKey: SecretBytes
    static let version: UInt8 = 1
    static let overhead = 1 + 16 + 32

    public enum Error: Swift.Error, Equatable, Sendable { case authenticationFailed(context: String), malformed(context: String), crypto(String) }

    public init(kek: SecretBytes) throws(CryptoError) {
        var k = kek.revealedBytes()
        defer { SecureZero.zero(&k) }
        var e = try HMACSHA256.authenticate(key: k, message: Array("mbms-gateway key store v1 encryption".utf8))
        var m = try HMACSHA256.authenticate(key: k, message: Array("mbms-gateway key store v1 authentication".utf8))
        encryptionKey = SecretBytes(e)
        macKey = SecretBytes(m)
        SecureZero.zero(&e)
        SecureZero.zero(&m)
    }

    /// A short value that identifies the KEK (stored so a wrong KEK is reported clearly).
    public func checkValue() throws(CryptoError) -> [UInt8] {
        Array(try mac(Array("kek check value".utf8)).prefix(8))
    }

    public func seal(_ secret: SecretBytes, context: String) throws(CryptoError) -> [UInt8] {
        let iv = try SecureRandom.bytes(count: 16)
        let ctr = try AESCounterMode(key: encryptionKey)
        var plain = secret.revealedBytes()
        defer { SecureZero.zero(&plain) }
        let ct = try ctr.apply(iv: iv, to: plain)
        let body = [Self.version] + iv + ct
        return body + (try mac(macInput(context: context, body: body)))
    }

    public func open(_ sealed: [UInt8], context: String) throws(Error) -> SecretBytes {
        guard sealed.count >= Self.overhead, sealed[0] == Self.version else { throw .malformed(context: context) }
        let body = Array(sealed[0..<(sealed.count - 32)]), tag = Array(sealed[(sealed.count - 32)...])
        let expected: [UInt8]
        do { expected = try mac(macInput(context: context, body: body)) } catch { throw .crypto("\(error)") }
        guard constantTimeEquals(expected, tag) else { throw .authenticationFailed(context: context) }
        do {
            let ctr = try AESCounterMode(key: encryptionKey)
            var plain = try ctr.apply(iv: Array(body[1..<17]), to: Array(body[17...]))
            defer { SecureZero.zero(&plain) }
            return SecretBytes(plain)
        } catch { throw .crypto("\(error)") }
    }

    /// HMAC-SHA256 under the sealer's MAC key of a canonical row encoding (`StoreRowEncoding`),
    /// domain-separated from seal tags by a leading 0x02 (seal MAC inputs begin with 0x01).
    public func rowMAC(_ encoding: [UInt8]) throws(CryptoError) -> [UInt8] {
        try mac([0x02] + encoding)
    }

    private func macInput(context: String, body: [UInt8]) -> [UInt8] {
        [body[0]] + Array(context.utf8) + [0] + body[1...]
    }

    private func mac(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        var k = macKey.revealedBytes()
        defer { SecureZero.zero(&k) }
        return try HMACSHA256.authenticate(key: k, message: message)
    }
}

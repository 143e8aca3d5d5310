import COpenSSL

/// Facts about the OpenSSL library linked at run time.
public enum OpenSSLRuntime {
    /// Oldest OpenSSL this build works with: the EVP provider API of 3.0.
    public static let minimumVersionNumber: UInt = 0x3000_0000
    public static let minimumVersionText = "3.0.0"

    /// The library's own version string, e.g. "OpenSSL 3.0.19 27 Jan 2026".
    public static var versionText: String {
        guard let text = mbms_openssl_version_text() else { return "unknown" }
        return String(cString: text)
    }

    public static var versionNumber: UInt { UInt(mbms_openssl_version_num()) }

    /// Call once at start-up: fails with a message that names the fix when OpenSSL is too old.
    public static func check() throws(CryptoError) {
        if versionNumber < minimumVersionNumber {
            throw .openSSLTooOld(found: versionText, required: minimumVersionText)
        }
    }
}

import Foundation
import NIOSSL

/// The key server's HTTPS profile (`keyserver.md` §7; TS 33.246 §6.7 CR, TS 33.210 §6.2):
/// TLS 1.2 and 1.3 only, a server certificate only (no CertificateRequest: UEs authenticate
/// with HTTP Digest inside TLS), no NULL, export, RC4 or 3DES suites — TLS 1.2 offers only
/// ECDHE suites with AEAD ciphers (AES-GCM, ChaCha20-Poly1305); TLS 1.3 suites are all AEAD.
public enum KeyServerTLS {
    /// TLS 1.2 cipher suites, in preference order (forward secrecy and AEAD only).
    public static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// How to make a certificate and key for a test or lab deployment (printed by `--help` and
    /// in errors).
    public static let makeCertificateHint =
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=bmsc.example.org"

    /// The server configuration from PEM files: the certificate chain (leaf first) and its
    /// private key. Errors name the file and the fix; they never contain key bytes.
    public static func serverConfiguration(certificatePath: String, keyPath: String) throws(KeyServerSetupError) -> TLSConfiguration {
        let certificatePEM = try readFile(certificatePath, what: "TLS certificate (keyServer.tls.certificate)")
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificatePEM)
        } catch {
            throw .tls("\(certificatePath): not a PEM certificate (\(error)); make one with: \(makeCertificateHint)")
        }
        guard !chain.isEmpty else {
            throw .tls("\(certificatePath): no certificate in the file (expected -----BEGIN CERTIFICATE-----); make one with: \(makeCertificateHint)")
        }
        var keyPEM = try readFile(keyPath, what: "TLS private key (keyServer.tls.key)")
        defer { for i in keyPEM.indices { keyPEM[i] = 0 } }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem)
        } catch {
            throw .tls("\(keyPath): not an unencrypted PEM private key; make the key with -nodes (\(makeCertificateHint))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.maximumTLSVersion = .tlsv13
        tls.certificateVerification = .none // never a CertificateRequest
        tls.cipherSuiteValues = tls12CipherSuites
        tls.renegotiationSupport = .none
        tls.sendCANameList = false
        // The context checks that the key belongs to the certificate.
        do {
            _ = try NIOSSLContext(configuration: tls)
        } catch {
            throw .tls("\(keyPath) does not fit \(certificatePath) (\(error)): give the key made together with the certificate")
        }
        return tls
    }

    private static func readFile(_ path: String, what: String) throws(KeyServerSetupError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .tls("\(what) \(path) does not exist; make a certificate and key with: \(makeCertificateHint)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .tls("\(what) \(path) cannot be read (permissions?): make it readable by the key server's user")
        }
        return [UInt8](data)
    }
}

/// Why the key server could not start. Every message names the file or address and the fix.
public enum KeyServerSetupError: Error, CustomStringConvertible, Sendable {
    case configuration(String)
    case tls(String)
    case listener(String)

    public var description: String {
        switch self {
        case let .configuration(m), let .tls(m), let .listener(m): return m
        }
    }
}

/// Verification payload (RFC 3830 6.9, type 9): Auth alg (8) || Ver data.
public struct VerificationPayload: Equatable, Sendable {
    public var authAlgorithm: MACAlgorithm
    public var verificationData: [UInt8]
    public init(authAlgorithm: MACAlgorithm, verificationData: [UInt8]) {
        self.authAlgorithm = authAlgorithm
        self.verificationData = verificationData
    }

    func encode(into w: inout ByteWriter) {
        w.write(authAlgorithm.rawValue)
        w.write(verificationData)
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> VerificationPayload {
        let start = r.offset
        let raw = try r.readUInt8(.verification)
        guard let alg = MACAlgorithm(rawValue: raw) else {
            throw .invalidValue(payload: .verification, offset: start, field: "Auth alg", value: Int(raw), rule: "RFC 3830 6.9: Auth alg 0 NULL, 1 HMAC-SHA-1-160")
        }
        return VerificationPayload(authAlgorithm: alg, verificationData: try r.readBytes(alg.macLength, .verification))
    }
}

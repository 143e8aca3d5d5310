/// One SP policy parameter: Type (8) || Length (8) || Value (RFC 3830 6.10).
public struct PolicyParameter: Equatable, Sendable {
    public var type: UInt8
    public var value: [UInt8]
    public init(type: UInt8, value: [UInt8]) {
        self.type = type
        self.value = value
    }
}

/// Security Policy payload (RFC 3830 6.10, type 10): Policy no (8) || Prot type (8) ||
/// Policy param length (16) || parameters. Parameters keep their wire order; the SRTP
/// meaning is in `SRTPPolicyParameters`.
public struct SecurityPolicyPayload: Equatable, Sendable {
    public static let protocolSRTP: UInt8 = 0

    public var policyNumber: UInt8
    public var protocolType: UInt8
    public var parameters: [PolicyParameter]

    public init(policyNumber: UInt8, protocolType: UInt8 = SecurityPolicyPayload.protocolSRTP, parameters: [PolicyParameter]) {
        self.policyNumber = policyNumber
        self.protocolType = protocolType
        self.parameters = parameters
    }

    public init(policyNumber: UInt8, srtp: SRTPPolicyParameters) {
        self.init(policyNumber: policyNumber, protocolType: Self.protocolSRTP, parameters: srtp.encodedParameters())
    }

    /// The SRTP reading of the parameters (prot type 0 only). `payloadOffset` is the message
    /// offset of this payload's first octet (its next-payload field), used in error offsets.
    public func srtpPolicy(payloadOffset: Int = 0) throws(MIKEYError) -> SRTPPolicyParameters {
        guard protocolType == Self.protocolSRTP else {
            throw .invalidValue(payload: .securityPolicy, offset: payloadOffset + 2, field: "Prot type", value: Int(protocolType),
                                rule: "TS 33.246 6.4.5.1: the SP of an MSK message describes SRTP (0)")
        }
        return try SRTPPolicyParameters(parameters: parameters, firstParameterOffset: payloadOffset + 5)
    }

    func encode(into w: inout ByteWriter) {
        w.write(policyNumber)
        w.write(protocolType)
        let total = parameters.reduce(0) { $0 + 2 + $1.value.count }
        w.write(UInt16(truncatingIfNeeded: total))
        for p in parameters {
            w.write(p.type)
            w.write(UInt8(truncatingIfNeeded: p.value.count))
            w.write(p.value)
        }
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> SecurityPolicyPayload {
        let start = r.offset
        let number = try r.readUInt8(.securityPolicy)
        let prot = try r.readUInt8(.securityPolicy)
        let total = Int(try r.readUInt16(.securityPolicy))
        guard r.remaining >= total else {
            throw .lengthMismatch(payload: .securityPolicy, offset: start + 2, field: "Policy param length", declared: total,
                                  actual: r.remaining, rule: "RFC 3830 6.10")
        }
        var sub = ByteReader(try r.readBytes(total, .securityPolicy), base: start + 4)
        var params: [PolicyParameter] = []
        while !sub.isAtEnd {
            let pOffset = sub.offset
            let type = try sub.readUInt8(.securityPolicy)
            let length = Int(try sub.readUInt8(.securityPolicy))
            guard sub.remaining >= length else {
                throw .lengthMismatch(payload: .securityPolicy, offset: pOffset + 1, field: "policy param \(type) length",
                                      declared: length, actual: sub.remaining, rule: "RFC 3830 6.10: parameters fill Policy param length exactly")
            }
            params.append(PolicyParameter(type: type, value: try sub.readBytes(length, .securityPolicy)))
        }
        return SecurityPolicyPayload(policyNumber: number, protocolType: prot, parameters: params)
    }
}

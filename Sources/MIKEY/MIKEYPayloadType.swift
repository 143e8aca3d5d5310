/// Next-payload / payload type numbers (IANA MIKEY payload registry; RFC 3830 6).
public enum MIKEYPayloadType {
    public static let last: UInt8 = 0
    public static let kemac: UInt8 = 1
    public static let timestamp: UInt8 = 5
    public static let identity: UInt8 = 6
    public static let verification: UInt8 = 9
    public static let securityPolicy: UInt8 = 10
    public static let rand: UInt8 = 11
    public static let keyData: UInt8 = 20
    public static let generalExtension: UInt8 = 21
}

/// RFC 1982 serial-number arithmetic for the 32-bit COUNTER (TS 33.246 6.4.3; mikey.md 8).
public enum SerialNumber {
    /// True iff `s1 < s2` in the RFC 1982 sense (SERIAL_BITS = 32). Equal or undefined
    /// (distance exactly 2^31) pairs are not "less".
    public static func isLess(_ s1: UInt32, _ s2: UInt32) -> Bool {
        let half: UInt32 = 1 << 31
        return (s1 < s2 && s2 &- s1 < half) || (s1 > s2 && s1 &- s2 > half)
    }
}

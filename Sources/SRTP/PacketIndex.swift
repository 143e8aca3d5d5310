/// RFC 3711 3.3.1 / Appendix A: the 48-bit packet index from a 16-bit SEQ, the ROC and s_l.
public struct RolloverCounterState: Sendable, Equatable {
    /// ROC: how often SEQ wrapped.
    public var roc: UInt32
    /// s_l: the highest SEQ accepted so far.
    public var highestSequence: UInt16
    /// False until the first packet (or, with RFC 4771 late join, the first authenticated ROC).
    public var isSynchronised: Bool

    public init(roc: UInt32 = 0, highestSequence: UInt16 = 0, isSynchronised: Bool = false) {
        self.roc = roc
        self.highestSequence = highestSequence
        self.isSynchronised = isSynchronised
    }

    /// The sender's ROC `v` for `seq` as guessed from ROC and s_l.
    @inline(__always)
    public func estimateROC(for seq: UInt16) -> UInt32 {
        let s = Int(seq), sl = Int(highestSequence)
        if sl < 32768 {
            return s - sl > 32768 ? roc &- 1 : roc
        } else {
            return sl - 32768 > s ? roc &+ 1 : roc
        }
    }

    /// State update after a packet with (v, seq) was accepted.
    @inline(__always)
    public mutating func accept(roc v: UInt32, sequence seq: UInt16) {
        if v == roc &+ 1 {
            roc = v
            highestSequence = seq
        } else if v == roc && seq > highestSequence {
            highestSequence = seq
        }
    }

    /// RFC 4771 4: an authenticated ROC-carrying packet resynchronises ROC and s_l.
    @inline(__always)
    public mutating func resynchronise(roc v: UInt32, sequence seq: UInt16) {
        roc = v
        highestSequence = seq
        isSynchronised = true
    }

    @inline(__always)
    static func index(roc: UInt32, sequence: UInt16) -> UInt64 { UInt64(roc) << 16 | UInt64(sequence) }
}

/// RFC 3711 3.3.2 sliding replay window over packet indices (128 entries, as libsrtp).
public struct ReplayWindow: Sendable, Equatable {
    public static let size: UInt64 = 128
    private var top: UInt64 = 0
    private var low: UInt64 = 0    // bit k: top − k received, k = 0...63
    private var high: UInt64 = 0   // bit k: top − 64 − k received
    private var started = false

    public init() {}

    /// Checks without recording (the window changes only after authentication).
    @inline(__always)
    public func check(_ index: UInt64) -> SRTPError? {
        guard started, index <= top else { return nil }
        let d = top - index
        if d >= Self.size { return .tooOld(index: index) }
        let seen = d < 64 ? (low >> d) & 1 : (high >> (d - 64)) & 1
        return seen == 1 ? .replayed(index: index) : nil
    }

    @inline(__always)
    public mutating func record(_ index: UInt64) {
        if !started {
            started = true
            top = index
            low = 1
            high = 0
            return
        }
        if index > top {
            let s = index - top
            if s >= 128 {
                low = 0; high = 0
            } else if s >= 64 {
                high = low << (s - 64)
                low = 0
            } else {
                high = (high << s) | (low >> (64 - s))
                low = low << s
            }
            low |= 1
            top = index
        } else {
            let d = top - index
            if d < 64 { low |= 1 << d } else if d < 128 { high |= 1 << (d - 64) }
        }
    }
}

import PacketIO

/// A capture's running clock, and which frame times are plausible on it (issue 19).
///
/// A capture's timestamps drive `replay`'s key lookups, MIKEY timing and FLUTE pacing; one
/// record with a bad time (t = 0, the year 2100: a broken capture tool, a hostile file) must
/// not make replay ask the key schedule about 1970 or 2100 — nor loop through 74 years of
/// MIKEY repeats. So the clock starts at the median of the capture's first frames (robust to a
/// few bad ones among them) and moves only forward, with each plausible frame; a frame more
/// than `bound` behind or ahead of it is implausible: passed through untouched (or dropped with
/// `--drop-unmatched`) and counted as `implausible_timestamp`, never used for key state or
/// timing. A capture with a real pause longer than the bound needs `--time-jump-limit` raised.
///
/// Pass 1 and pass 2 of `replay` run the same clock over the same frames in the same order,
/// so they agree on every frame.
public struct CaptureClock: Sendable {
    /// Nanoseconds either side of the clock a frame may be.
    public let bound: UInt64
    /// The running clock (nanoseconds, re-timed): the latest plausible frame time so far.
    public private(set) var now: UInt64
    /// Frames found implausible so far.
    public private(set) var rejected = 0

    /// How many of the capture's first frames the starting point is taken from.
    public static let seedFrames = 15
    public static let defaultBoundSeconds: Int64 = 3600

    public init(start: UInt64, boundSeconds: Int64) {
        bound = UInt64(max(1, boundSeconds)) &* 1_000_000_000
        now = start
    }

    /// Whether a frame at `t` is plausible; a plausible frame moves the clock forward.
    @inline(__always)
    public mutating func admit(_ t: UInt64) -> Bool {
        let behind = t < now ? now - t : 0
        let ahead = t > now ? t - now : 0
        guard behind <= bound, ahead <= bound else {
            rejected += 1
            return false
        }
        if t > now { now = t }
        return true
    }

    /// Where the clock starts, from the first frames' times (raw, not re-timed): their median,
    /// and the first of them within `boundSeconds` of it — the capture's real first frame,
    /// which `--start-time` moves to the given time. Nil for an empty list.
    public static func start(of times: [UInt64], boundSeconds: Int64) -> (median: UInt64, first: UInt64)? {
        guard !times.isEmpty else { return nil }
        let median = times.sorted()[times.count / 2]
        var probe = CaptureClock(start: median, boundSeconds: boundSeconds)
        let first = times.first { probe.admit($0) } ?? median
        return (median, first)
    }
}

import KeyManagement
import PacketIO

/// When MIKEY MTK messages go out for one session (TS 33.246 6.3.3.2.2, `DESIGN.md` §4):
/// the current MTK's message every `repeat` seconds on a grid from the schedule epoch, the
/// next MTK's from `announceLead` before the switch (its announce time is always an event),
/// and once `announceLead` before the session's first packet, so no MTK is used before its
/// message is out.
public struct MTKAnnouncer: Sendable {
    public let epoch: Int64
    public let period: Int64
    public let repeatInterval: Int64
    public let announceLead: Int64

    public init(_ c: ScheduleConfiguration) {
        epoch = c.epoch
        period = c.mtkPeriod
        repeatInterval = max(1, c.repeatInterval)
        announceLead = c.announceLead
    }

    /// The first event time strictly after `t`: the next repeat tick or the next announce time.
    public func nextEvent(after t: Int64) -> Int64 {
        let k = floorDiv(t - epoch, repeatInterval) + 1
        let tick = epoch + k * repeatInterval
        // Announce times are (epoch + n·P) − lead.
        let n = floorDiv(t + announceLead - epoch, period) + 1
        let announce = epoch + n * period - announceLead
        return min(tick, announce)
    }

    /// Pre-roll: the first message of a session whose first packet is at `firstPacket`.
    public func preroll(firstPacket: Int64) -> Int64 { firstPacket - announceLead }

    func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

/// What an injected MIKEY frame looks like in a capture: the link-layer header, source
/// address and hop limit of the session's own traffic.
struct InjectionTemplate: Sendable {
    var linkHeader: [UInt8]
    var source: IPAddress
    var hopLimit: UInt8
}

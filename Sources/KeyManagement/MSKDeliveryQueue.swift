import Foundation

/// One MSK message owed to a UE (TS 33.246 6.3.2.3, 6.3.2.1B, 6.3.2.2.4): the Key Distribution
/// function's durable work list. A restart resends what was not acknowledged; every send takes
/// a new MIKEY TS from the UE's counter (`KeyStore.nextMSKMessageCounter`), so none is reused.
public struct DeliveryRow: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The MSK (TS 33.246 6.4.5.1).
        case key
        /// Key validity SEQl > SEQu: the UE drops the MSK (6.3.2.1B).
        case invalidation
        /// Key Number 0, a KEMAC without key: the UE answers with an msk-request (6.3.2.2.4).
        case solicitedPull = "pull"
    }
    public enum State: String, Sendable {
        case pending
        /// Sent with the V bit; retransmitted until the verification message arrives.
        case awaitingVerification = "awaiting"
        case done
        case gaveUp = "gave-up"
    }
    public var id: Int64
    public var impi: String
    public var btid: String
    public var ueAddress: String
    public var keyGroup: UInt16
    /// 0: whatever MSK is current when it is sent.
    public var keyNumber: UInt16
    public var kind: Kind
    /// Why it was queued: registration, msk-request, rollover, deregistration, invalidation, pull.
    public var reason: String
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Int64
    /// The last message sent: its MIKEY TS, CSB ID and MSK ID (to match the verification message).
    public var lastTimestamp: UInt32?
    public var lastCSBID: UInt32?
    public var lastMSKID: UInt32?
    public var createdAt: Int64
    public var note: String?

    public init(id: Int64 = 0, impi: String, btid: String, ueAddress: String, keyGroup: UInt16, keyNumber: UInt16, kind: Kind,
                reason: String, state: State = .pending, attempts: Int = 0, nextAttemptAt: Int64, lastTimestamp: UInt32? = nil,
                lastCSBID: UInt32? = nil, lastMSKID: UInt32? = nil, createdAt: Int64, note: String? = nil) {
        self.id = id; self.impi = impi; self.btid = btid; self.ueAddress = ueAddress; self.keyGroup = keyGroup; self.keyNumber = keyNumber
        self.kind = kind; self.reason = reason; self.state = state; self.attempts = attempts; self.nextAttemptAt = nextAttemptAt
        self.lastTimestamp = lastTimestamp; self.lastCSBID = lastCSBID; self.lastMSKID = lastMSKID; self.createdAt = createdAt; self.note = note
    }

    public var isOpen: Bool { state == .pending || state == .awaitingVerification }
}

/// The delivery work list in the key store. On a store shared by several key servers, claiming
/// is per row (PostgreSQL: `FOR UPDATE SKIP LOCKED`), so no message is pushed twice.
public protocol MSKDeliveryQueue: AnyObject, Sendable {
    /// Queues deliveries; one already open for the same UE, key group, key number and kind is
    /// kept instead (returns how many were added).
    @discardableResult
    func enqueue(_ rows: [DeliveryRow]) throws -> Int
    /// Open deliveries whose next attempt is due, oldest first.
    func dueDeliveries(now: Int64, limit: Int) throws -> [DeliveryRow]
    func updateDelivery(_ row: DeliveryRow) throws
    /// The open delivery whose last message had this CSB ID and TS, for this B-TID.
    func awaitingDelivery(btid: String, csbID: UInt32, timestamp: UInt32) throws -> DeliveryRow?
    func deliveries(btid: String) throws -> [DeliveryRow]
    /// Whether this UE ever had a delivery of this key (in any state).
    func hasDelivery(btid: String, keyGroup: UInt16, keyNumber: UInt16, kind: DeliveryRow.Kind) throws -> Bool
    /// Rows per state (metrics, `keys show`).
    func deliveryCounts() throws -> [DeliveryRow.State: Int]
}

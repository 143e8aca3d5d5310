import CryptoCore
import Foundation

/// What the nonce table says about a (nonce, nc) pair.
public enum NonceVerdict: Equatable, Sendable {
    /// Issued by us, within its lifetime, nc above every nc accepted so far.
    case fresh
    /// Never issued, or forgotten (evicted / long expired): 401 with stale=false.
    case unknown
    /// Issued but past its lifetime: 401 with stale=true when the digest itself was right.
    case expired
    /// nc not above the high-water mark of this nonce: a replay (RFC 2617 3.2.2, RFC 7616 3.4).
    case replayed(highestAccepted: UInt32)
}

/// Server nonces for Digest (RFC 2617 3.2.1, RFC 7616 3.3): random, expiring, each nc usable
/// once (strictly increasing per nonce), bounded in number (oldest evicted). Pure: the time
/// and the random generator are parameters.
public struct NonceManager: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// How long a nonce may be used after it was issued.
        public var lifetime: TimeInterval
        /// How long after expiry a nonce is still remembered (to answer stale=true, not "unknown").
        public var staleMemory: TimeInterval
        /// Most nonces remembered; issuing one more evicts the oldest.
        public var maximumOutstanding: Int
        /// Random octets per nonce (hex-encoded on the wire).
        public var nonceBytes: Int

        public init(lifetime: TimeInterval = 300, staleMemory: TimeInterval = 300, maximumOutstanding: Int = 10_000, nonceBytes: Int = 16) {
            self.lifetime = lifetime; self.staleMemory = staleMemory
            self.maximumOutstanding = max(1, maximumOutstanding); self.nonceBytes = max(8, nonceBytes)
        }
    }

    struct Entry: Sendable {
        var issuedAt: Date
        /// 0: no nc accepted yet (nc values start at 1, RFC 2617 3.2.2).
        var highestNC: UInt32
    }

    public let configuration: Configuration
    private var entries: [String: Entry] = [:]
    /// Issue order for eviction; may hold names already removed (skipped when popped).
    private var order: [String] = []
    private var head = 0

    public init(configuration: Configuration = .init()) { self.configuration = configuration }

    /// Nonces currently remembered.
    public var count: Int { entries.count }

    /// A fresh nonce (lower-case hex of `nonceBytes` random octets), remembered from `now`.
    public mutating func issue<R: RandomNumberGenerator>(now: Date, using random: inout R) -> String {
        var nonce: String
        repeat {
            var bytes = [UInt8](repeating: 0, count: configuration.nonceBytes)
            for k in bytes.indices { bytes[k] = random.next() }
            nonce = Hex.encode(bytes)
        } while entries[nonce] != nil
        insert(nonce, issuedAt: now)
        return nonce
    }

    /// Remembers a nonce issued elsewhere (a shared store, tests), evicting the oldest over the cap.
    public mutating func insert(_ nonce: String, issuedAt: Date) {
        purge(now: issuedAt)
        if entries[nonce] == nil { order.append(nonce) }
        entries[nonce] = Entry(issuedAt: issuedAt, highestNC: 0)
        while entries.count > configuration.maximumOutstanding, head < order.count {
            let oldest = order[head]
            head += 1
            if oldest != nonce { entries[oldest] = nil }
        }
        compact()
    }

    /// The verdict for `nc` under `nonce` at `now`, without recording anything (the request
    /// digest is checked between `check` and `commit`, so a forged request cannot burn nc values).
    public func check(_ nonce: String, nc: UInt32, now: Date) -> NonceVerdict {
        guard let e = entries[nonce] else { return .unknown }
        if now.timeIntervalSince(e.issuedAt) > configuration.lifetime { return .expired }
        guard nc > e.highestNC else { return .replayed(highestAccepted: e.highestNC) }
        return .fresh
    }

    /// Checks again and, when fresh, records `nc` as the new high-water mark.
    @discardableResult
    public mutating func commit(_ nonce: String, nc: UInt32, now: Date) -> NonceVerdict {
        let verdict = check(nonce, nc: nc, now: now)
        if verdict == .fresh { entries[nonce]?.highestNC = nc }
        return verdict
    }

    /// Forgets nonces older than lifetime + staleMemory.
    public mutating func purge(now: Date) {
        let horizon = configuration.lifetime + configuration.staleMemory
        while head < order.count {
            let oldest = order[head]
            if let e = entries[oldest], now.timeIntervalSince(e.issuedAt) <= horizon { break }
            entries[oldest] = nil
            head += 1
        }
        compact()
    }

    private mutating func compact() {
        if head > 64, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

import CryptoCore

/// RTP packets protected up to their encryption, MACs and tails
/// (`SRTPProtector.protectRTP(batch:keys:stream:deferringCryptoTo:)`): headers checked, ROCs
/// computed and staged behind each packet, every slot's length and result final, the streams
/// advanced. `run` does the rest — AES-CM (RFC 3711 4.1.1), HMAC-SHA1 (4.2), MKI and tag —
/// group by group as the batch protect would have, on whichever thread holds the packets.
///
/// Why: `replay`'s lanes take the work step (flows, ROCs, key epochs) one at a time in capture
/// order; with the cipher and MAC work left here, each lane does it after handing the work turn
/// on, so the serial part of a batch is about a third of what it was.
///
/// Owned by one thread at a time (a replay batch's lane). Preallocated: no allocation per
/// group or packet.
public final class SRTPPendingCrypto: @unchecked Sendable {
    /// Groups it holds (`SRTPProtector.groupSize` packets each at most); a protect call that
    /// finds it full does the rest of its groups at once.
    public let capacity: Int
    private let stride = MemoryLayout<SRTPProtector.GroupScratch>.size
    private let scratch: UnsafeMutableRawPointer
    private let counts: UnsafeMutablePointer<(macs: Int, encryptions: Int, split: Int)>
    /// Per group, the keys it was laid out with (held until `reset`).
    private var keys: [SRTPSessionKeys?]
    public private(set) var groups = 0

    public init(groups capacity: Int) {
        self.capacity = max(1, capacity)
        scratch = .allocate(byteCount: self.capacity * stride, alignment: 64)
        counts = .allocate(capacity: self.capacity)
        counts.initialize(repeating: (0, 0, 0), count: self.capacity)
        keys = Array(repeating: nil, count: self.capacity)
    }

    deinit {
        // The scratch held IVs and digests of keyed computations: not left behind.
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * stride)
        scratch.deallocate()
        counts.deallocate()
    }

    public var isEmpty: Bool { groups == 0 }

    /// Scratch for the next group, laid out with `k`; nil when full. `commitGroup` follows.
    @inline(__always)
    func reserveGroup(_ k: SRTPSessionKeys) -> UnsafeMutableRawPointer? {
        guard groups < capacity else { return nil }
        keys[groups] = k
        return scratch + groups * stride
    }

    @inline(__always)
    func commitGroup(macs: Int, encryptions: Int, split: Int) {
        counts[groups] = (macs, encryptions, split)
        groups += 1
    }

    /// Calls `body` with the keys of every group (a run of groups with the same keys once):
    /// a caller that runs the groups on another thread makes its cipher contexts for them
    /// here first, while the keys' own contexts are still its alone (`SRTPSessionKeys.copy()`
    /// reads them).
    public func forEachKeys(_ body: (SRTPSessionKeys) -> Void) {
        var last: SRTPSessionKeys? = nil
        for g in 0..<groups {
            guard let k = keys[g], k !== last else { continue }
            body(k)
            last = k
        }
    }

    /// Encrypts, authenticates and finishes every group in order, then forgets them. Each
    /// group's payloads go through the AES-CM context of `cipherKeys(keys)` — the caller's own
    /// copy (`SRTPSessionKeys.copy()`) when other threads protect with the same keys, since a
    /// batch cipher context is mutated per call — and its MACs through the keys' HMAC states
    /// (read-only, shared). False if a cipher call failed or `cipherKeys` gave none: the
    /// packets of this run are then not protected and must not be sent.
    public func run(cipherKeys: (SRTPSessionKeys) -> SRTPSessionKeys?) -> Bool {
        defer { reset() }
        for g in 0..<groups {
            guard let k = keys[g] else { continue }
            let arrays = SRTPProtector.GroupArrays(scratch + g * stride)
            let c = counts[g]
            if c.encryptions > 0 {
                guard let cipher = cipherKeys(k)?.srtpCipherBatch,
                      cipher.xorKeystreams(count: c.encryptions, ivs: UnsafeRawPointer(arrays.ivs), data: arrays.encData, lengths: arrays.encLengths)
                else { return false }
            }
            SRTPProtector.authenticate(arrays, count: c.macs, split: c.split, auth: k.srtpAuthBatch, tail: SRTPProtector.TailWriter(mki: k.mki))
        }
        return true
    }

    /// Forgets every group (and releases the keys they held) without running them.
    public func reset() {
        for g in 0..<groups { keys[g] = nil }
        groups = 0
    }
}

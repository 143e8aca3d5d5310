import CryptoCore

/// Sender-side state of one SRTP stream (one SSRC): owned by exactly one thread.
///
/// The packet index (ROC ‖ SEQ, RFC 3711 3.3.1) it gives a packet is always one it has never
/// given before (`DESIGN.md` §7: an (MTK, SSRC, index) is used once, ever): upstream SEQs are
/// not trusted. A SEQ ahead of the highest one sent moves forward (across a wrap, the ROC + 1);
/// a SEQ behind it but inside the last `reorderWindow` indices takes that index if it is still
/// unused (a reordered packet), and is dropped as `indexReused` if the same index went out with
/// the same RTP timestamp (a duplicate). Anything else that goes back — a restarted encoder
/// with the same SSRC, a SEQ jump, a packet older than the window — starts the next ROC
/// (`rocJumps`): RFC 4771 carries the ROC in-band, so receivers follow at the next
/// ROC-carrying packet. The ROC also never leaves the block of ROC values this process
/// reserved for the MTK (`SenderIndexBlock`).
public struct SRTPSenderStream: Sendable, Equatable {
    /// ROC and s_l of the highest index sent so far (`isSynchronised`: anything sent yet).
    public var rollover: RolloverCounterState
    public var packets: UInt64 = 0
    /// Times a SEQ that went back started a higher ROC.
    public var rocJumps: UInt64 = 0
    /// Bit k: index top − k has been sent (top: `rollover`'s index).
    var used: UInt32 = 0
    /// The RTP timestamp sent with index i, at i mod `reorderWindow` (tells a duplicate from a
    /// new packet with a reused SEQ).
    var timestamps = SIMD32<UInt32>()

    /// Indices behind the highest one sent that a late packet may still take.
    public static let reorderWindow = 32

    public init(initialROC: UInt32 = 0) {
        rollover = RolloverCounterState(roc: initialROC)
    }

    /// The ROC for the packet with `seq` and RTP `timestamp`: an index never used before by this
    /// stream, with ROC in `floor..<limit`. Throws (nothing changed) for a duplicate or when the
    /// block is used up.
    @inline(__always)
    mutating func roc(for seq: UInt16, timestamp: UInt32, floor: UInt32, limit: UInt64) throws(SRTPError) -> UInt32 {
        let slot = Int(seq) & (Self.reorderWindow - 1)
        let roc = Int64(rollover.roc), sl = Int64(rollover.highestSequence), s = Int64(seq)
        // RFC 3711 3.3.1's estimate, in signed arithmetic (ROC 0 going back is ROC −1: older).
        var v: Int64
        if sl < 32768 { v = s - sl > 32768 ? roc - 1 : roc } else { v = sl - 32768 > s ? roc + 1 : roc }
        if !rollover.isSynchronised || roc < Int64(floor) {
            // First packet, or the stream enters a block above everything it sent.
            v = Swift.max(roc, Int64(floor))
            guard UInt64(v) < limit else { throw .senderIndexBlockExhausted }
            rollover = RolloverCounterState(roc: UInt32(v), highestSequence: seq, isSynchronised: true)
            used = 1
            timestamps[slot] = timestamp
            return UInt32(v)
        }
        let top = roc << 16 | sl
        let index = v << 16 | s
        if index > top {
            guard UInt64(v) < limit else { throw .senderIndexBlockExhausted }
            let shift = index - top
            used = shift >= Int64(Self.reorderWindow) ? 1 : used << UInt32(shift) | 1
            rollover.roc = UInt32(v)
            rollover.highestSequence = seq
            timestamps[slot] = timestamp
            return UInt32(v)
        }
        let behind = top - index
        if behind < Int64(Self.reorderWindow) {
            let bit: UInt32 = 1 << UInt32(behind)
            if used & bit == 0 {
                used |= bit
                timestamps[slot] = timestamp
                return UInt32(v)
            }
            if timestamps[slot] == timestamp { throw .senderIndexReused(index: UInt64(index)) }
        }
        // SEQ went back onto used (or unknown) indices: a new source. Next ROC, above all sent.
        v = roc + 1
        guard UInt64(v) < limit else { throw .senderIndexBlockExhausted }
        rollover.roc = UInt32(v)
        rollover.highestSequence = seq
        used = 1
        timestamps[slot] = timestamp
        rocJumps &+= 1
        return UInt32(v)
    }
}

/// Sender-side state of one SRTCP stream: the 31-bit SRTCP index (RFC 3711 3.4). It only
/// moves forward, and never leaves the block this process reserved for the MTK.
public struct SRTCPSenderStream: Sendable, Equatable {
    public var nextIndex: UInt32
    public init(firstIndex: UInt32 = 0) { nextIndex = firstIndex & 0x7FFF_FFFF }
}

/// One packet of a batch: a caller-owned buffer protected in place.
public struct SRTPPacketSlot {
    public var bytes: UnsafeMutableRawPointer
    /// Plaintext length on input; protected length on output when `error` is nil.
    public var length: Int
    /// Bytes available at `bytes` (length + tailroom).
    public var capacity: Int
    /// Why the packet was not protected (nil: protected).
    public var error: SRTPError?

    public init(bytes: UnsafeMutableRawPointer, length: Int, capacity: Int) {
        self.bytes = bytes
        self.length = length
        self.capacity = capacity
        self.error = nil
    }
}

/// SRTP/SRTCP protection (RFC 3711 3.3, 3.4; RFC 4771; TS 33.246 6.6.2) in place.
///
/// Stateless apart from its policy: keys (one key epoch) and per-stream state are passed
/// in, so the pipeline reads the current epoch once per batch and the stream state keeps
/// exactly one owner. No allocation, locking or copying per packet.
public struct SRTPProtector: Sendable {
    public let policy: SRTPPolicy

    public init(policy: SRTPPolicy) throws(SRTPPolicy.ValidationError) {
        try policy.validate()
        self.policy = policy
    }

    /// Protects the RTP packet at `packet` (`length` bytes of a `capacity`-byte buffer) in
    /// place and returns the SRTP length. The buffer needs `policy.maximumSRTPOverhead`
    /// bytes of tailroom.
    @inline(__always)
    public func protectRTP(_ packet: UnsafeMutableRawPointer, length: Int, capacity: Int,
                           keys: SRTPSessionKeys, stream: inout SRTPSenderStream) throws(SRTPError) -> Int {
        var mac = PendingMAC()
        let total = try encryptRTP(packet, length: length, capacity: capacity, keys: keys, stream: &stream, mac: &mac)
        if mac.length > 0 {
            var digest: (UInt64, UInt64, UInt32) = (0, 0, 0)
            withUnsafeMutableBytes(of: &digest) { d in
                guard let out = d.baseAddress else { return }
                withUnsafeBytes(of: mac.rocBE) { r in
                    // MAC over the authenticated portion ‖ ROC (RFC 3711 4.2); MKI excluded.
                    keys.srtpAuth.authenticate(packet, length, r.baseAddress, 4, into: out)
                }
                (packet + mac.tagOffset).copyMemory(from: out, byteCount: mac.length)
            }
        }
        return total
    }

    /// Where the MAC of a packet goes once it is computed (the batch path defers it).
    struct PendingMAC {
        var rocBE: UInt32 = 0
        var tagOffset = 0
        var length = 0   // 0: this packet carries no MAC
        /// The ROC is staged behind the packet (`stageROC`): the MAC input is the `length + 4`
        /// bytes at the packet, and the MKI and the RFC 4771 ROC field are still to be written.
        var staged = false
        var carriesROC = false
    }

    /// Protect up to the MAC: checks, ROC, payload encryption, MKI and (RFC 4771) the ROC
    /// field. Returns the SRTP length; `mac` says what remains to authenticate.
    @inline(__always)
    func encryptRTP(_ packet: UnsafeMutableRawPointer, length: Int, capacity: Int,
                    keys: SRTPSessionKeys, stream: inout SRTPSenderStream, mac: inout PendingMAC) throws(SRTPError) -> Int {
        var unused = PendingCipher()
        return try encryptRTP(packet, length: length, capacity: capacity, keys: keys, view: KeyView(keys), stream: &stream,
                              mac: &mac, deferEncryption: false, stageROC: false, cipher: &unused)
    }

    /// What the RTP protect reads from the session keys per packet, loaded once: the batch path
    /// builds it before its loop, since as far as the compiler knows every store through a
    /// packet pointer could change the keys object, and fields read through it would be
    /// reloaded (with their dependent loads) for every packet.
    /// Plain values only: a class reference in it was retained and released per packet when
    /// read (the batch path then spent ~9 ns per 160-byte packet in swift_retain/release).
    struct KeyView {
        let mki: MasterKeyIdentifier
        let salt: SaltWords
        /// Whether the policy encrypts (not the NULL cipher).
        let encrypts: Bool
        /// The ROC values this sender may use under this MTK (`SenderIndexBlock`).
        let rocFloor: UInt32
        let rocLimit: UInt64

        @inline(__always)
        init(_ keys: SRTPSessionKeys) {
            mki = keys.mki
            salt = keys.srtpSalt
            encrypts = keys.srtpCipher != nil
            rocFloor = keys.senderIndices.rocFloor
            rocLimit = keys.senderIndices.rocLimit
        }
    }

    /// What the batch path still has to encrypt: `count` bytes at `offset` with the keystream
    /// from counter block `iv` (RFC 3711 4.1.1), big-endian words as written by `SaltWords.iv`.
    struct PendingCipher {
        var iv: (UInt64, UInt64) = (0, 0)
        var offset = 0
        var count = 0   // 0: nothing to encrypt
    }

    /// As above; with `deferEncryption` the payload is left in the clear and `cipher` says
    /// what to encrypt (no check can fail after that point, so deferring changes no result).
    /// With `stageROC`, a packet with a MAC whose SRTP tail (MKI, ROC field, tag) is at least 4
    /// bytes long gets its ROC written big-endian right behind it instead of the MKI, so the
    /// MAC input of RFC 3711 4.2 (authenticated portion ‖ ROC) is one contiguous buffer; the
    /// tail then overwrites those 4 bytes (`mac.staged`: the caller writes MKI and ROC field).
    @inline(__always)
    func encryptRTP(_ packet: UnsafeMutableRawPointer, length: Int, capacity: Int,
                    keys fullKeys: SRTPSessionKeys, view keys: KeyView, stream: inout SRTPSenderStream, mac: inout PendingMAC,
                    deferEncryption: Bool, stageROC: Bool, cipher pending: inout PendingCipher) throws(SRTPError) -> Int {
        let headerLength = try RTPHeader.length(packet, length)
        try RTPHeader.checkPadding(packet, headerLength: headerLength, length: length)
        let seq = RTPHeader.sequenceNumber(packet)
        let layout = policy.tagLayout(sequenceNumber: seq)
        let mkiLength = keys.mki.length
        let total = length + mkiLength + layout.length
        guard total <= capacity else { throw .insufficientTailroom(needed: total, capacity: capacity) }

        let roc = try stream.roc(for: seq, timestamp: RTPHeader.timestamp(packet), floor: keys.rocFloor, limit: keys.rocLimit)
        let index = RolloverCounterState.index(roc: roc, sequence: seq)

        // Encrypt the payload (RFC 3711 4.1.1).
        if deferEncryption {
            pending = PendingCipher()
            if keys.encrypts, length > headerLength {
                pending = PendingCipher(iv: keys.salt.iv(ssrc: RTPHeader.ssrc(packet), index: index),
                                        offset: headerLength, count: length - headerLength)
            }
        } else if let cipher = fullKeys.srtpCipher, length > headerLength {
            var iv = keys.salt.iv(ssrc: RTPHeader.ssrc(packet), index: index)
            let ok = withUnsafeBytes(of: &iv) { v in
                v.baseAddress.map { cipher.xorKeystream(iv: $0, data: packet + headerLength, count: length - headerLength) } ?? false
            }
            guard ok else { throw .cryptoFailure }
        }

        // MKI, then the tag (RFC 3711 3.1; RFC 4771 3: ROC ‖ MAC on carrying packets).
        let tagOffset = length + mkiLength + (layout.carriesROC ? 4 : 0)
        if stageROC, layout.macLength > 0, total - length >= 4 {
            // Bytes length..<length+4 lie inside the tail, which the caller writes later.
            storeBE32(packet, length, roc)
            mac = PendingMAC(rocBE: roc.bigEndian, tagOffset: tagOffset, length: layout.macLength,
                             staged: true, carriesROC: layout.carriesROC)
        } else {
            keys.mki.write(to: packet + length)
            if layout.carriesROC { storeBE32(packet, length + mkiLength, roc) }
            mac = PendingMAC(rocBE: roc.bigEndian, tagOffset: tagOffset, length: layout.macLength)
        }
        stream.packets &+= 1
        return total
    }

    /// Protects an RTCP compound packet in place (RFC 3711 3.4; TS 33.246 6.6.2.1A: same
    /// master key and MKI as SRTP, integrity mandatory, encryption per policy).
    @inline(__always)
    public func protectRTCP(_ packet: UnsafeMutableRawPointer, length: Int, capacity: Int,
                            keys: SRTPSessionKeys, stream: inout SRTCPSenderStream) throws(SRTPError) -> Int {
        try RTPHeader.checkRTCP(packet, length)
        let mkiLength = keys.mki.length
        let total = length + 4 + mkiLength + policy.srtcpTagLength
        guard total <= capacity else { throw .insufficientTailroom(needed: total, capacity: capacity) }
        // Forward only, inside this process's block for the MTK (DESIGN.md §7).
        let block = keys.senderIndices
        let index = Swift.max(stream.nextIndex, block.srtcpFloor)
        guard index <= 0x7FFF_FFFF else { throw .srtcpIndexExhausted }
        guard UInt64(index) < block.srtcpLimit else { throw .senderIndexBlockExhausted }

        let encrypt = policy.srtcpEncryption && keys.srtcpCipher != nil
        if encrypt, let cipher = keys.srtcpCipher, length > 8 {
            var iv = keys.srtcpSalt.iv(ssrc: RTPHeader.rtcpSSRC(packet), index: UInt64(index))
            let ok = withUnsafeBytes(of: &iv) { cipher.xorKeystream(iv: $0.baseAddress!, data: packet + 8, count: length - 8) }
            guard ok else { throw .cryptoFailure }
        }
        storeBE32(packet, length, (encrypt ? 0x8000_0000 : 0) | index)
        keys.mki.write(to: packet + length + 4)
        var digest: (UInt64, UInt64, UInt32) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digest) { d in
            // Authenticated portion: header through the E ‖ SRTCP index word.
            keys.srtcpAuth.authenticate(packet, length + 4, nil, 0, into: d.baseAddress!)
            (packet + length + 4 + mkiLength).copyMemory(from: d.baseAddress!, byteCount: policy.srtcpTagLength)
        }
        stream.nextIndex = index + 1   // reaching 2^31 makes the next call throw
        return total
    }

    /// Protects a batch of RTP packets of one stream in place; each slot reports its result.
    /// Returns how many were protected. Byte-identical to protecting the slots one by one in
    /// order; the slots' buffers must not overlap.
    ///
    /// Packets go in groups of up to `groupSize`: headers are checked and ROCs computed per
    /// packet, each packet's ROC written big-endian right behind it (where its MKI goes, RFC
    /// 3711 3.1), then the payloads of the whole group are encrypted by one batched AES-CM call
    /// (`AESCounterModeBatch`, RFC 3711 4.1.1), then the group's MACs by one multi-message
    /// HMAC-SHA1 call (`HMACSHA1Batch`: interleaved SHA-NI lanes) over authenticated portion ‖
    /// ROC as one buffer per packet (RFC 3711 4.2), and last the MKI, the RFC 4771 ROC field
    /// and the tag over those staged bytes. A packet whose tail is shorter than 4 bytes (no MKI,
    /// a MAC under 4 bytes) keeps its ROC apart as the MAC's second part instead.
    @discardableResult
    public func protectRTP(batch: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                           stream: inout SRTPSenderStream) -> Int {
        protectRTP(batch: batch, keys: keys, stream: &stream, deferringCryptoTo: nil)
    }

    /// As above; with `pending`, each group is laid out (headers checked, ROCs computed and
    /// staged, each slot's length and result final, the stream advanced) and its encryption,
    /// MACs, MKIs and tags are left to `pending.run`, which may run later on another thread
    /// (`replay` does them outside its work turn). A group `pending` has no room for is done here.
    @discardableResult
    public func protectRTP(batch: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                           stream: inout SRTPSenderStream, deferringCryptoTo pending: SRTPPendingCrypto?) -> Int {
        let lanes = Self.groupSize
        let batchCipher = keys.srtpCipherBatch
        let deferEncryption = batchCipher != nil
        let view = KeyView(keys)
        let tail = TailWriter(mki: view.mki)
        // Per group (`GroupScratch` on the stack, or a group of `pending`; no allocation per
        // call): MAC a/b pointers and lengths, the ROCs (b parts), slot index, tag offset, MAC
        // length and where the MKI still goes; cipher data pointers, lengths, slot index and
        // IVs; the digests. A fixed-size value on the stack: withUnsafeTemporaryAllocation of
        // this size fell back to the heap (one malloc per call, seen by `mbms-gateway bench`'s
        // malloc counter).
        var storage = GroupScratch()
        return withUnsafeMutableBytes(of: &storage) { stack -> Int in
            guard let stackBase = stack.baseAddress else { return 0 }
            var ok = 0
            var i = batch.startIndex
            while i < batch.endIndex {
                let deferred = pending?.reserveGroup(keys)
                let g = GroupArrays(deferred ?? stackBase)
                var n = 0   // MAC lanes
                var e = 0   // payloads to encrypt
                var split = 0   // MAC lanes with the ROC apart (b part)
                // Check and lay out until `lanes` packets are taken (failures take no lane).
                let groupEnd = Swift.min(batch.endIndex, i + lanes)
                while i < groupEnd {
                    let packet = batch[i].bytes
                    let length = batch[i].length
                    do throws(SRTPError) {
                        var mac = PendingMAC()
                        var cipher = PendingCipher()
                        let total = try encryptRTP(packet, length: length, capacity: batch[i].capacity,
                                                   keys: keys, view: view, stream: &stream, mac: &mac,
                                                   deferEncryption: deferEncryption, stageROC: true, cipher: &cipher)
                        if cipher.count > 0 {
                            g.encData[e] = packet + cipher.offset
                            g.encLengths[e] = cipher.count
                            g.encSlot[e] = i
                            (g.ivs + 16 * e).storeBytes(of: cipher.iv.0, as: UInt64.self)
                            (g.ivs + 16 * e + 8).storeBytes(of: cipher.iv.1, as: UInt64.self)
                            e += 1
                        }
                        if mac.length > 0 {
                            g.a[n] = UnsafeRawPointer(packet)
                            g.rocs[n] = mac.rocBE
                            if mac.staged {
                                g.aLengths[n] = length + 4
                                g.bLengths[n] = 0
                                g.staged[n] = length | (mac.carriesROC ? Self.stagedROCField : 0)
                            } else {
                                g.aLengths[n] = length
                                g.b[n] = UnsafeRawPointer(g.rocs + n)
                                g.bLengths[n] = 4
                                g.staged[n] = -1
                                split += 1
                            }
                            g.slotIndex[n] = i
                            g.tagOffset[n] = mac.tagOffset
                            g.macLength[n] = mac.length
                            n += 1
                        }
                        batch[i].length = total
                        batch[i].error = nil
                        ok += 1
                    } catch {
                        batch[i].error = error
                    }
                    i += 1
                }
                if deferred != nil {
                    pending?.commitGroup(macs: n, encryptions: e, split: split)
                    continue
                }
                if e > 0, let batchCipher,
                   !batchCipher.xorKeystreams(count: e, ivs: UnsafeRawPointer(g.ivs), data: g.encData, lengths: g.encLengths) {
                    // As the single-packet path: the packet fails with the ROC already advanced.
                    for k in 0..<e {
                        let s = g.encSlot[k]
                        batch[s].length = (g.encData[k].map { $0 - batch[s].bytes } ?? 0) + g.encLengths[k]
                        batch[s].error = .cryptoFailure
                        ok -= 1
                        stream.packets &-= 1
                    }
                    var kept = 0
                    split = 0
                    for k in 0..<n where batch[g.slotIndex[k]].error == nil {
                        g.a[kept] = g.a[k]; g.aLengths[kept] = g.aLengths[k]
                        g.rocs[kept] = g.rocs[k]; g.b[kept] = UnsafeRawPointer(g.rocs + kept); g.bLengths[kept] = g.bLengths[k]
                        g.slotIndex[kept] = g.slotIndex[k]; g.tagOffset[kept] = g.tagOffset[k]; g.macLength[kept] = g.macLength[k]
                        g.staged[kept] = g.staged[k]
                        if g.bLengths[kept] != 0 { split += 1 }
                        kept += 1
                    }
                    n = kept
                }
                Self.authenticate(g, count: n, split: split, auth: keys.srtpAuthBatch, tail: tail)
            }
            return ok
        }
    }

    /// One group's arrays, bound in its scratch (`groupScratchBytes`): eleven word arrays, the
    /// ROCs, the IVs (16 bytes per packet), the digests (20 bytes per packet).
    struct GroupArrays {
        let a: UnsafeMutablePointer<UnsafeRawPointer?>
        let aLengths: UnsafeMutablePointer<Int>
        let b: UnsafeMutablePointer<UnsafeRawPointer?>
        let bLengths: UnsafeMutablePointer<Int>
        let slotIndex: UnsafeMutablePointer<Int>
        let tagOffset: UnsafeMutablePointer<Int>
        let macLength: UnsafeMutablePointer<Int>
        /// Per MAC lane: -1, nothing left to write before the tag; else the MKI offset (staged
        /// ROC), with `stagedROCField` set when the RFC 4771 ROC field follows the MKI.
        let staged: UnsafeMutablePointer<Int>
        let encData: UnsafeMutablePointer<UnsafeMutableRawPointer?>
        let encLengths: UnsafeMutablePointer<Int>
        let encSlot: UnsafeMutablePointer<Int>
        let rocs: UnsafeMutablePointer<UInt32>
        let ivs: UnsafeMutableRawPointer
        let digests: UnsafeMutableRawPointer

        @inline(__always)
        init(_ base: UnsafeMutableRawPointer) {
            let lanes = SRTPProtector.groupSize
            let w = 8 * lanes
            a = (base + 0).bindMemory(to: UnsafeRawPointer?.self, capacity: lanes)
            aLengths = (base + w).bindMemory(to: Int.self, capacity: lanes)
            b = (base + 2 * w).bindMemory(to: UnsafeRawPointer?.self, capacity: lanes)
            bLengths = (base + 3 * w).bindMemory(to: Int.self, capacity: lanes)
            slotIndex = (base + 4 * w).bindMemory(to: Int.self, capacity: lanes)
            tagOffset = (base + 5 * w).bindMemory(to: Int.self, capacity: lanes)
            macLength = (base + 6 * w).bindMemory(to: Int.self, capacity: lanes)
            staged = (base + 7 * w).bindMemory(to: Int.self, capacity: lanes)
            encData = (base + 8 * w).bindMemory(to: UnsafeMutableRawPointer?.self, capacity: lanes)
            encLengths = (base + 9 * w).bindMemory(to: Int.self, capacity: lanes)
            encSlot = (base + 10 * w).bindMemory(to: Int.self, capacity: lanes)
            rocs = (base + 11 * w).bindMemory(to: UInt32.self, capacity: lanes)
            ivs = base + 11 * w + 4 * lanes
            digests = ivs + 16 * lanes
        }
    }

    /// The MKI as the tails take it: the 6 TS 33.246 octets in memory order in the low bytes of
    /// one word, for the two-store fast path on little-endian hosts.
    struct TailWriter {
        let mki: MasterKeyIdentifier
        let mbmsTail: Bool
        let mkiWord: UInt64

        @inline(__always)
        init(mki: MasterKeyIdentifier) {
            self.mki = mki
            mbmsTail = mki.length == MasterKeyIdentifier.mbmsLength && UInt16(1).littleEndian == 1
            mkiWord = (UInt64(UInt32(truncatingIfNeeded: mki.value >> 16).bigEndian)
                | UInt64(UInt16(truncatingIfNeeded: mki.value).bigEndian) << 32)
        }
    }

    /// A laid-out group's MACs by one multi-message HMAC-SHA1 call, then each packet's tail:
    /// MKI (over the staged ROC), RFC 4771 ROC field, tag.
    @inline(__always)
    static func authenticate(_ g: GroupArrays, count n: Int, split: Int, auth: HMACSHA1Batch, tail: TailWriter) {
        guard n > 0 else { return }
        if split == 0 {
            auth.authenticate(count: n, messages: g.a, lengths: g.aLengths, digests: g.digests)
        } else {
            for k in 0..<n where g.bLengths[k] == 0 { g.b[k] = nil }
            auth.authenticate(count: n, a: g.a, aLengths: g.aLengths, b: g.b, bLengths: g.bLengths, digests: g.digests)
        }
        for k in 0..<n {
            guard let packet = UnsafeMutableRawPointer(mutating: g.a[k]) else { continue }   // the slot's bytes
            let at = g.staged[k]
            if at >= 0, at & stagedROCField == 0, tail.mbmsTail, g.macLength[k] == 10 {
                // TS 33.246 MKI (6 octets) ‖ 80-bit tag, no RFC 4771 ROC field: the 16-byte
                // tail as two 8-byte stores (octets 0-5 MKI, 6-7 the tag's first two, 8-15
                // the rest).
                let d = g.digests + 20 * k
                let tagHead = UInt64(d.loadUnaligned(as: UInt16.self)) << 48
                (packet + at).storeBytes(of: tail.mkiWord | tagHead, as: UInt64.self)
                (packet + at + 8).storeBytes(of: d.loadUnaligned(fromByteOffset: 2, as: UInt64.self), as: UInt64.self)
                continue
            }
            if at >= 0 {
                // Over the staged ROC: the MKI (RFC 3711 3.1), then on RFC 4771 carrying
                // packets the ROC field in front of the MAC.
                let mkiOffset = at & ~stagedROCField
                tail.mki.write(to: packet + mkiOffset)
                if at & stagedROCField != 0 {
                    (packet + g.tagOffset[k] - 4).storeBytes(of: g.rocs[k], as: UInt32.self)
                }
            }
            copyTag(to: packet + g.tagOffset[k], from: g.digests + 20 * k, count: g.macLength[k])
        }
    }

    /// Flag in the batch path's per-lane `staged` word: the RFC 4771 ROC field is to be written.
    static let stagedROCField = 1 << 62

    /// The first `count` bytes of a digest as the tag: fixed-size stores for the HMAC-SHA1-80
    /// and -32 tags (RFC 3711 5.2: 80 bits, or 32 for the low-overhead transform).
    @inline(__always)
    static func copyTag(to tag: UnsafeMutableRawPointer, from digest: UnsafeRawPointer, count: Int) {
        switch count {
        case 10:
            tag.storeBytes(of: digest.loadUnaligned(as: UInt64.self), as: UInt64.self)
            tag.storeBytes(of: digest.loadUnaligned(fromByteOffset: 8, as: UInt16.self), toByteOffset: 8, as: UInt16.self)
        case 4:
            tag.storeBytes(of: digest.loadUnaligned(as: UInt32.self), as: UInt32.self)
        default:
            tag.copyMemory(from: digest, byteCount: count)
        }
    }

    /// Packets per group: one batched AES-CM call and one multi-message HMAC call (CMultiHash
    /// runs its lanes eight at a time) each. 16 measured best on the development EPYC (srtp-bench,
    /// 32-packet batches): 8 leaves the per-call cost visible at 160 B (~215 vs ~162 ns/packet),
    /// 32 makes the group's payloads plus the 16 KiB keystream scratch outgrow L1 before the
    /// MACs read them back at 1200 B; with the ROC staged in place (one-part HMAC path) 8 and 4
    /// were no faster at 1200 B and slower at 160 B. The scratch below is laid out for it.
    static let groupSize = 16
    /// Eleven word arrays, the 4-byte ROCs, 16-byte IVs and 20-byte digests, per lane.
    static let groupScratchBytes = (11 * 8 + 4 + 16 + 20) * groupSize

    /// 2048 bytes of stack scratch for one group (≥ `groupScratchBytes`); zeroed once per
    /// call, so no larger than needed.
    struct GroupScratch {
        var words = (SIMD64<UInt64>(), SIMD64<UInt64>(), SIMD64<UInt64>(), SIMD64<UInt64>())
    }

    /// Protects a batch of RTCP packets of one stream in place.
    @discardableResult
    public func protectRTCP(batch: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                            stream: inout SRTCPSenderStream) -> Int {
        var ok = 0
        for i in batch.indices {
            do throws(SRTPError) {
                batch[i].length = try protectRTCP(batch[i].bytes, length: batch[i].length, capacity: batch[i].capacity,
                                                  keys: keys, stream: &stream)
                batch[i].error = nil
                ok += 1
            } catch {
                batch[i].error = error
            }
        }
        return ok
    }

    // MARK: - Array conveniences (control plane, tests, demo)

    /// Protects `packet` (grown to hold MKI and tag).
    public func protectRTP(_ packet: inout [UInt8], keys: SRTPSessionKeys, stream: inout SRTPSenderStream) throws(SRTPError) {
        let length = packet.count
        packet.append(contentsOf: repeatElement(0, count: policy.maximumSRTPOverhead))
        var result: Result<Int, SRTPError> = .success(0)
        packet.withUnsafeMutableBytes { b in
            do throws(SRTPError) { result = .success(try protectRTP(b.baseAddress!, length: length, capacity: b.count, keys: keys, stream: &stream)) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let n): packet.removeSubrange(n...)
        case .failure(let e): packet.removeSubrange(length...); throw e
        }
    }

    public func protectRTCP(_ packet: inout [UInt8], keys: SRTPSessionKeys, stream: inout SRTCPSenderStream) throws(SRTPError) {
        let length = packet.count
        packet.append(contentsOf: repeatElement(0, count: policy.srtcpOverhead))
        var result: Result<Int, SRTPError> = .success(0)
        packet.withUnsafeMutableBytes { b in
            do throws(SRTPError) { result = .success(try protectRTCP(b.baseAddress!, length: length, capacity: b.count, keys: keys, stream: &stream)) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let n): packet.removeSubrange(n...)
        case .failure(let e): packet.removeSubrange(length...); throw e
        }
    }
}

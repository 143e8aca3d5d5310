import CryptoCore

/// Sender-side state of one SRTP stream (one SSRC): owned by exactly one thread.
public struct SRTPSenderStream: Sendable, Equatable {
    public var rollover: RolloverCounterState
    public var packets: UInt64 = 0

    public init(initialROC: UInt32 = 0) {
        rollover = RolloverCounterState(roc: initialROC)
    }

    /// The ROC for `seq`, advancing across SEQ wraps (RFC 3711 3.3.1 applied at the sender,
    /// so a briefly reordered source does not bump the ROC).
    @inline(__always)
    mutating func roc(for seq: UInt16) -> UInt32 {
        if !rollover.isSynchronised {
            rollover.isSynchronised = true
            rollover.highestSequence = seq
            return rollover.roc
        }
        let v = rollover.estimateROC(for: seq)
        rollover.accept(roc: v, sequence: seq)
        return v
    }
}

/// Sender-side state of one SRTCP stream: the 31-bit SRTCP index (RFC 3711 3.4).
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
        let headerLength = try RTPHeader.length(packet, length)
        try RTPHeader.checkPadding(packet, headerLength: headerLength, length: length)
        let seq = RTPHeader.sequenceNumber(packet)
        let layout = policy.tagLayout(sequenceNumber: seq)
        let mkiLength = keys.mki.length
        let total = length + mkiLength + layout.length
        guard total <= capacity else { throw .insufficientTailroom(needed: total, capacity: capacity) }

        let roc = stream.roc(for: seq)
        let index = RolloverCounterState.index(roc: roc, sequence: seq)

        // Encrypt the payload (RFC 3711 4.1.1).
        if let cipher = keys.srtpCipher, length > headerLength {
            var iv = keys.srtpSalt.iv(ssrc: RTPHeader.ssrc(packet), index: index)
            let ok = withUnsafeBytes(of: &iv) { cipher.xorKeystream(iv: $0.baseAddress!, data: packet + headerLength, count: length - headerLength) }
            guard ok else { throw .cryptoFailure }
        }

        // MKI, then the tag (RFC 3711 3.1; RFC 4771 3: ROC ‖ MAC on carrying packets).
        keys.mki.write(to: packet + length)
        var tagOffset = length + mkiLength
        let rocBE = roc.bigEndian
        if layout.carriesROC {
            storeBE32(packet, tagOffset, roc)
            tagOffset += 4
        }
        if layout.macLength > 0 {
            var digest: (UInt64, UInt64, UInt32) = (0, 0, 0)
            withUnsafeMutableBytes(of: &digest) { d in
                withUnsafeBytes(of: rocBE) { r in
                    // MAC over the authenticated portion ‖ ROC (RFC 3711 4.2); MKI excluded.
                    keys.srtpAuth.authenticate(packet, length, r.baseAddress, 4, into: d.baseAddress!)
                }
                (packet + tagOffset).copyMemory(from: d.baseAddress!, byteCount: layout.macLength)
            }
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
        let index = stream.nextIndex
        guard index <= 0x7FFF_FFFF else { throw .srtcpIndexExhausted }

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
    /// Returns how many were protected.
    @discardableResult
    public func protectRTP(batch: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                           stream: inout SRTPSenderStream) -> Int {
        var ok = 0
        for i in batch.indices {
            do throws(SRTPError) {
                batch[i].length = try protectRTP(batch[i].bytes, length: batch[i].length, capacity: batch[i].capacity,
                                                 keys: keys, stream: &stream)
                batch[i].error = nil
                ok += 1
            } catch {
                batch[i].error = error
            }
        }
        return ok
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

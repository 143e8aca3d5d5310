import CryptoCore

/// What `SRTPReceiver` learned from an accepted packet.
public struct SRTPReceiveInfo: Sendable, Equatable {
    /// Plaintext length (RTP/RTCP packet without MKI, tag or SRTCP index word).
    public var length: Int
    public var mki: MasterKeyIdentifier
    /// 48-bit SRTP packet index, or the 31-bit SRTCP index.
    public var index: UInt64
    /// The ROC carried in an RFC 4771 tag, if this packet carried one.
    public var carriedROC: UInt32?
    /// SRTCP only: the E flag of the packet.
    public var encrypted: Bool
}

/// The UE side of SRTP/SRTCP for one session (destination address and port): key choice by
/// MKI among the most recent MTKs (TS 33.246 6.5.4, 6.6.2.2), per-SSRC ROC tracking and
/// replay windows (RFC 3711 3.3), RFC 4771 late join. Owned by one thread.
public final class SRTPReceiver {
    public let policy: SRTPPolicy
    /// RFC 4771 late join: the ROC is unknown until the first ROC-carrying packet authenticates.
    public let lateJoin: Bool
    public let keyCapacity: Int

    private var keyRing: [SRTPSessionKeys] = []
    private var streams: [UInt32: Stream] = [:]

    struct Stream {
        var rollover: RolloverCounterState
        var replay = ReplayWindow()
        var rtcpReplay = ReplayWindow()
    }

    public enum KeyError: Error, Equatable, Sendable {
        case mkiLengthMismatch(expected: Int, got: Int)
    }

    /// - Parameters:
    ///   - keyCapacity: how many MTKs to keep (TS 33.246 6.5.4: at least the two most recent).
    ///   - lateJoin: for RFC 4771 modes, wait for a ROC-carrying packet (default); false means
    ///     the ROC is known out of band as `policy.initialROC`.
    public init(policy: SRTPPolicy, keyCapacity: Int = 4, lateJoin: Bool = true) throws(SRTPPolicy.ValidationError) {
        try policy.validate()
        self.policy = policy
        self.keyCapacity = max(2, keyCapacity)
        self.lateJoin = lateJoin && policy.authentication.carriesROC
    }

    /// Adds an MTK's keys; the oldest is dropped beyond `keyCapacity`. A key with the same
    /// MKI replaces the old one.
    public func addKey(_ keys: SRTPSessionKeys) throws(KeyError) {
        guard keys.mki.length == policy.mkiLength else {
            throw .mkiLengthMismatch(expected: policy.mkiLength, got: keys.mki.length)
        }
        keyRing.removeAll { $0.mki == keys.mki }
        keyRing.append(keys)
        if keyRing.count > keyCapacity { keyRing.removeFirst(keyRing.count - keyCapacity) }
    }

    public var knownMKIs: [MasterKeyIdentifier] { keyRing.map(\.mki) }

    @inline(__always)
    private func keys(mki value: UInt64) -> SRTPSessionKeys? {
        for k in keyRing.reversed() where k.mki.value == value { return k }
        return nil
    }

    /// Current ROC state of an SSRC (for reports).
    public func rolloverState(ssrc: UInt32) -> RolloverCounterState? { streams[ssrc]?.rollover }

    // MARK: SRTP

    /// Verifies and decrypts the SRTP packet in place; returns what was learned.
    public func unprotectRTP(_ packet: UnsafeMutableRawPointer, length: Int) throws(SRTPError) -> SRTPReceiveInfo {
        let layout = policy.tagLayout(sequenceNumber: length >= 4 ? RTPHeader.sequenceNumber(packet) : 0)
        do {
            return try unprotectRTP(packet, length: length, layout: layout)
        } catch {
            // rfc4771.md R-1: an RCCm2 peer may use the other non-carrying tag length.
            guard policy.authentication == .rccm2, !layout.carriesROC else { throw error }
            switch error {
            case .unknownMKI, .authenticationFailed:
                let other = policy.rccm2NonCarryingTagLength == 10 ? 14 : 10
                return try unprotectRTP(packet, length: length, layout: TagLayout(carriesROC: false, macLength: other))
            default: throw error
            }
        }
    }

    private func unprotectRTP(_ packet: UnsafeMutableRawPointer, length: Int, layout: TagLayout) throws(SRTPError) -> SRTPReceiveInfo {
        let headerLength = try RTPHeader.length(packet, length)
        let mkiLength = policy.mkiLength
        let minimum = headerLength + mkiLength + layout.length
        guard length >= minimum else { throw .packetTooShort(length: length, minimum: minimum) }
        let seq = RTPHeader.sequenceNumber(packet)
        let ssrc = RTPHeader.ssrc(packet)
        let tagOffset = length - layout.length
        let mkiOffset = tagOffset - mkiLength
        let mki = MasterKeyIdentifier.read(packet + mkiOffset, length: mkiLength)
        guard let keys = keys(mki: mki) else { throw .unknownMKI(offset: mkiOffset) }

        var stream = streams[ssrc] ?? Stream(rollover: RolloverCounterState(roc: policy.initialROC))
        let carried: UInt32? = layout.carriesROC ? loadBE32(packet, tagOffset) : nil
        let v: UInt32
        var adoptCarried = false
        if let rocS = carried {
            if policy.authentication == .rccm3 && stream.rollover.isSynchronised {
                // rfc4771.md R-4: an unauthenticated ROC only confirms the estimate.
                let estimate = stream.rollover.estimateROC(for: seq)
                v = estimate
                adoptCarried = rocS == estimate
            } else {
                v = rocS
                adoptCarried = true
            }
        } else if stream.rollover.isSynchronised {
            v = stream.rollover.estimateROC(for: seq)
        } else if lateJoin {
            throw .rocUnknown(sequenceNumber: seq)
        } else {
            v = stream.rollover.roc
        }
        let index = RolloverCounterState.index(roc: v, sequence: seq)
        if let replay = stream.replay.check(index) { throw replay }

        if layout.macLength > 0 {
            var digest: (UInt64, UInt64, UInt32) = (0, 0, 0)
            let rocBE = v.bigEndian
            let macOffset = tagOffset + (layout.carriesROC ? 4 : 0)
            let ok = withUnsafeMutableBytes(of: &digest) { d in
                withUnsafeBytes(of: rocBE) { r in
                    keys.srtpAuth.authenticate(packet, mkiOffset, r.baseAddress, 4, into: d.baseAddress!)
                }
                return constantTimeEquals(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(d)[0..<layout.macLength]),
                                          UnsafeRawBufferPointer(start: packet + macOffset, count: layout.macLength))
            }
            guard ok else { throw .authenticationFailed(offset: macOffset) }
        }

        if let cipher = keys.srtpCipher, mkiOffset > headerLength {
            var iv = keys.srtpSalt.iv(ssrc: ssrc, index: index)
            let ok = withUnsafeBytes(of: &iv) { cipher.xorKeystream(iv: $0.baseAddress!, data: packet + headerLength, count: mkiOffset - headerLength) }
            guard ok else { throw .cryptoFailure }
        }
        try RTPHeader.checkPadding(packet, headerLength: headerLength, length: mkiOffset)

        if adoptCarried {
            stream.rollover.resynchronise(roc: v, sequence: seq)
        } else if !stream.rollover.isSynchronised {
            stream.rollover.resynchronise(roc: v, sequence: seq)
        } else {
            stream.rollover.accept(roc: v, sequence: seq)
        }
        stream.replay.record(index)
        streams[ssrc] = stream
        return SRTPReceiveInfo(length: mkiOffset, mki: keys.mki, index: index, carriedROC: carried, encrypted: keys.srtpCipher != nil)
    }

    // MARK: SRTCP

    /// Verifies and (when E = 1) decrypts the SRTCP packet in place.
    public func unprotectRTCP(_ packet: UnsafeMutableRawPointer, length: Int) throws(SRTPError) -> SRTPReceiveInfo {
        try RTPHeader.checkRTCP(packet, length)
        let mkiLength = policy.mkiLength
        let minimum = 8 + 4 + mkiLength + policy.srtcpTagLength
        guard length >= minimum else { throw .packetTooShort(length: length, minimum: minimum) }
        let tagOffset = length - policy.srtcpTagLength
        let mkiOffset = tagOffset - mkiLength
        let wordOffset = mkiOffset - 4
        let word = loadBE32(packet, wordOffset)
        let encrypted = word & 0x8000_0000 != 0
        let index = UInt64(word & 0x7FFF_FFFF)
        let mki = MasterKeyIdentifier.read(packet + mkiOffset, length: mkiLength)
        guard let keys = keys(mki: mki) else { throw .unknownMKI(offset: mkiOffset) }
        let ssrc = RTPHeader.rtcpSSRC(packet)
        var stream = streams[ssrc] ?? Stream(rollover: RolloverCounterState(roc: policy.initialROC))
        if let replay = stream.rtcpReplay.check(index) { throw replay }

        var digest: (UInt64, UInt64, UInt32) = (0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &digest) { d in
            keys.srtcpAuth.authenticate(packet, mkiOffset, nil, 0, into: d.baseAddress!)
            return constantTimeEquals(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(d)[0..<policy.srtcpTagLength]),
                                      UnsafeRawBufferPointer(start: packet + tagOffset, count: policy.srtcpTagLength))
        }
        guard ok else { throw .authenticationFailed(offset: tagOffset) }

        if encrypted, let cipher = keys.srtcpCipher, wordOffset > 8 {
            var iv = keys.srtcpSalt.iv(ssrc: ssrc, index: index)
            let ok = withUnsafeBytes(of: &iv) { cipher.xorKeystream(iv: $0.baseAddress!, data: packet + 8, count: wordOffset - 8) }
            guard ok else { throw .cryptoFailure }
        }
        stream.rtcpReplay.record(index)
        streams[ssrc] = stream
        return SRTPReceiveInfo(length: wordOffset, mki: keys.mki, index: index, carriedROC: nil, encrypted: encrypted)
    }

    // MARK: Array conveniences

    /// Unprotects `packet` and trims it to the plaintext.
    @discardableResult
    public func unprotectRTP(_ packet: inout [UInt8]) throws(SRTPError) -> SRTPReceiveInfo {
        var result: Result<SRTPReceiveInfo, SRTPError> = .failure(.cryptoFailure)
        packet.withUnsafeMutableBytes { b in
            guard let base = b.baseAddress else { result = .failure(.packetTooShort(length: 0, minimum: 12)); return }
            do throws(SRTPError) { result = .success(try unprotectRTP(base, length: b.count)) } catch { result = .failure(error) }
        }
        let info = try result.get()
        packet.removeSubrange(info.length...)
        return info
    }

    @discardableResult
    public func unprotectRTCP(_ packet: inout [UInt8]) throws(SRTPError) -> SRTPReceiveInfo {
        var result: Result<SRTPReceiveInfo, SRTPError> = .failure(.cryptoFailure)
        packet.withUnsafeMutableBytes { b in
            guard let base = b.baseAddress else { result = .failure(.packetTooShort(length: 0, minimum: 8)); return }
            do throws(SRTPError) { result = .success(try unprotectRTCP(base, length: b.count)) } catch { result = .failure(error) }
        }
        let info = try result.get()
        packet.removeSubrange(info.length...)
        return info
    }
}

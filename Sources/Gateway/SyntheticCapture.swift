import PacketIO

/// Writes a plain RTP/RTCP capture the gateway can protect: for `demo` (no input files needed)
/// and for benchmarks. Deterministic for the same parameters.
public struct SyntheticCapture: Sendable {
    public struct Stream: Sendable {
        public var destination: TransportAddress
        public var ssrc: UInt32
        public var payloadType: UInt8
        public var firstSequence: UInt16
        public var packetsPerSecond: Int
        public var payloadBytes: ClosedRange<Int>
        public init(destination: TransportAddress, ssrc: UInt32, payloadType: UInt8 = 96, firstSequence: UInt16 = 0,
                    packetsPerSecond: Int = 50, payloadBytes: ClosedRange<Int> = 160...1200) {
            self.destination = destination
            self.ssrc = ssrc
            self.payloadType = payloadType
            self.firstSequence = firstSequence
            self.packetsPerSecond = packetsPerSecond
            self.payloadBytes = payloadBytes
        }
    }

    public var source: IPAddress
    public var streams: [Stream]
    /// First packet time, Unix nanoseconds.
    public var startNanoseconds: UInt64
    public var packetsPerStream: Int
    /// An RTCP sender report (RTP port + 1) every this many seconds.
    public var senderReportInterval: Int = 5

    public init(source: IPAddress, streams: [Stream], startNanoseconds: UInt64, packetsPerStream: Int) {
        self.source = source
        self.streams = streams
        self.startNanoseconds = startNanoseconds
        self.packetsPerStream = packetsPerStream
    }

    /// Writes the capture (Ethernet link type); returns the number of frames.
    @discardableResult
    public func write(to path: String) throws -> Int {
        let writer = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        defer { writer.close() }
        var frames = 0
        var seed: UInt64 = 0x5EED
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        // Merge the streams in time order.
        var events: [(time: UInt64, stream: Int, n: Int)] = []
        for (s, st) in streams.enumerated() {
            let step = 1_000_000_000 / UInt64(max(1, st.packetsPerSecond))
            for n in 0..<packetsPerStream { events.append((startNanoseconds + UInt64(n) * step + UInt64(s) * 997, s, n)) }
        }
        events.sort { ($0.time, $0.stream) < ($1.time, $1.stream) }
        var octets = [UInt32](repeating: 0, count: streams.count)
        var lastReport = [UInt64](repeating: 0, count: streams.count)
        for e in events {
            let st = streams[e.stream]
            let span = UInt64(st.payloadBytes.upperBound - st.payloadBytes.lowerBound + 1)
            let size = st.payloadBytes.lowerBound + Int(next() % span)
            let seq = st.firstSequence &+ UInt16(truncatingIfNeeded: e.n)
            let ts = UInt32(truncatingIfNeeded: e.n &* 90_000 / max(1, st.packetsPerSecond))
            var rtp: [UInt8] = [0x80, st.payloadType | (e.n % 10 == 9 ? 0x80 : 0), UInt8(seq >> 8), UInt8(seq & 0xFF)]
            rtp += be32(ts) + be32(st.ssrc)
            var payload = [UInt8](repeating: 0, count: size)
            var k = 0
            while k < size {
                let r = next()
                for j in 0..<min(8, size - k) { payload[k + j] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(j))) }
                k += 8
            }
            rtp += payload
            octets[e.stream] &+= UInt32(size)
            let frame = UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: TransportAddress(source, st.destination.port),
                                                  destination: st.destination, hopLimit: st.destination.address.isMulticast ? 1 : 64,
                                                  payload: rtp)
            writer.write(timestampNanoseconds: e.time, bytes: frame)
            frames += 1
            if e.time - lastReport[e.stream] >= UInt64(senderReportInterval) * 1_000_000_000 {
                lastReport[e.stream] = e.time
                // RFC 3550 6.4.1 sender report: NTP time, RTP time, packet and octet counts.
                let ntpSeconds = UInt32(truncatingIfNeeded: e.time / 1_000_000_000 + 2_208_988_800)
                var sr: [UInt8] = [0x80, 200, 0, 6] + be32(st.ssrc) + be32(ntpSeconds) + be32(UInt32(truncatingIfNeeded: e.time % 1_000_000_000))
                sr += be32(ts) + be32(UInt32(e.n + 1)) + be32(octets[e.stream])
                let rtcp = TransportAddress(st.destination.address, st.destination.port &+ 1)
                writer.write(timestampNanoseconds: e.time + 1, bytes: UDPFrameEditor.buildFrame(
                    linkType: .ethernet, template: nil, source: TransportAddress(source, rtcp.port), destination: rtcp,
                    hopLimit: st.destination.address.isMulticast ? 1 : 64, payload: sr))
                frames += 1
            }
        }
        return frames
    }

    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
}

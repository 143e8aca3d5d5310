import PacketIO

/// Whether a streaming session still has packets to come, asked before each of its periodic
/// MIKEY MTK messages (`ReplayWork`): a session's messages stop with its stream.
///
/// `replay` used to learn this from a first pass over the whole capture (each session's last
/// packet time). When every session's first packet turns up near the start of the capture, it
/// now looks ahead instead, in a second walk over the mapped file from the frame being
/// processed: a message due at second T goes out if the session has a packet at or after that
/// frame whose time is T or later. In a capture whose times never go back this is exactly the
/// first pass's rule (the session's last packet is at T or later): every frame before the one
/// that made T due is earlier than T, every frame from it on is T or later.
///
/// What it costs: each session's search only moves forward through the file and stops at the
/// first such packet — usually within a few frames, as a stream sends several packets a
/// second. The first search that runs to the end of the file (a stream has ended) notes every
/// session's last packet on the way, so the searches for streams that end later stop there
/// without walking the rest of the file again: in all, about one walk over the file after the
/// first stream ends, however many sessions there are.
final class SessionLookahead {
    /// A walk of its own over the mapped capture (never the reader's, which another lane may be
    /// moving meanwhile), restarted for each search.
    private let file: CaptureRange
    private let link: LinkType
    private let sessions: TransportAddressTable<Int>
    private let shift: Int64
    /// Per session: where its search has got to (every record before it was looked at), and the
    /// last packet it found there (its offset and second).
    private var searchedTo: [Int]
    private var found: [(offset: Int, second: Int64)?]
    /// From the first search that reached the end of the file: where it started, and each
    /// session's last packet in the file from there on (nil: none after `tailFrom`).
    private var tailFrom: Int?
    private var lastPackets: [(offset: Int, second: Int64)?]
    /// Records looked at, over all searches (tests: bounded by about two walks of the file).
    private(set) var recordsExamined = 0

    /// `sessions`: RTP and RTCP destinations to session index; `shift`: the --start-time shift.
    /// Nil when the capture is not mapped (read through libpcap: no second walk).
    init?(reader: CaptureReader, link: LinkType, sessions: TransportAddressTable<Int>, count: Int, shift: Int64) {
        guard let file = reader.separateWalk() else { return nil }
        self.file = file
        self.link = link
        self.sessions = sessions
        self.shift = shift
        searchedTo = Array(repeating: 0, count: count)
        found = Array(repeating: nil, count: count)
        lastPackets = Array(repeating: nil, count: count)
    }

    /// Whether session `i` has a packet at or after the record at `offset` whose time, in whole
    /// seconds, is `second` or later. `offset` and `second` never go back between calls for a
    /// session (frames are processed in file order; a session's message times rise).
    func hasPacket(session i: Int, atOrAfter second: Int64, from offset: Int) -> Bool {
        if let f = found[i], f.offset >= offset, f.second >= second { return true }
        if let from = tailFrom, offset >= from {
            // The session's last packet is known: none left once it is behind; it answers when
            // its own time does (in a capture whose times never go back it is the latest).
            guard let last = lastPackets[i], last.offset >= offset else { return false }
            if last.second >= second { return true }
        }
        // Every record before searchedTo[i] was looked at for an earlier (lower or equal)
        // `second` and held nothing later than found[i]: none of them can answer this one.
        let start = max(offset, searchedTo[i])
        guard var walk = file.restarted(at: start) else { return false }
        var seen: [(offset: Int, second: Int64)?] = tailFrom == nil ? Array(repeating: nil, count: found.count) : []
        while true {
            let at = walk.offset
            // The end of the file, or a damaged record (the reader meets the same error and the
            // run fails with it): no packet.
            guard let f = try? walk.next() else { break }
            recordsExamined += 1
            guard let base = f.bytes.baseAddress,
                  case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: link),
                  let j = sessions[u.destination] else { continue }
            let t = Int64(ReplayJob.shifted(f.timestampNanoseconds, shift) / 1_000_000_000)
            if !seen.isEmpty { seen[j] = (at, t) }
            if j == i, t >= second {
                found[i] = (at, t)
                searchedTo[i] = walk.offset
                return true
            }
        }
        if tailFrom == nil, !seen.isEmpty, walk.offset == walk.endOffset {
            (tailFrom, lastPackets) = (start, seen)
        }
        searchedTo[i] = walk.offset
        found[i] = nil
        return false
    }
}

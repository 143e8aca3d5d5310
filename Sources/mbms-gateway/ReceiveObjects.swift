import Foundation
import PacketIO
import Receiver

extension ReceiveCommand {
    /// `receive --objects DIR`: every ALC/LCT datagram of the capture (UDP 2269 excepted) goes to
    /// the FLUTE/DCF receiver, which writes the files it recovers under `directory`.
    func receiveObjects(input: String, keys: UEKeyState, directory: String) throws -> DownloadReceiveReport {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw ReceiveFailure("\(directory): cannot create the --objects folder (\(error.localizedDescription))")
        }
        let receiver = ObjectReceiver(keys: keys, outputDirectory: directory)
        receiver.allowPlainFDT = allowPlainFDT
        let reader: CaptureReader
        do { reader = try CaptureReader(path: input) } catch { throw ReceiveFailure(error.description) }
        guard let link = reader.linkType else { return receiver.report }
        do {
            var frame = 0
            while let f = try reader.next() {
                frame += 1
                guard let base = f.bytes.baseAddress, case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: link),
                      u.destination.port != 2269 else { continue }
                let payload = UnsafeRawBufferPointer(rebasing: f.bytes[u.payloadOffset..<u.datagramEnd])
                guard ObjectReceiver.looksLikeALC(payload) else { continue }
                receiver.receive(Array(payload), flow: u.destination, at: Double(f.timestampNanoseconds) / 1e9, frame: frame)
            }
        } catch {
            throw ReceiveFailure(error.description)
        }
        receiver.finish()
        return receiver.report
    }

    /// The streaming report's JSON with the download report under "download" and the --plain
    /// comparison under "plainComparison".
    func combinedReportJSON(_ streaming: ReceiveReport, _ download: DownloadReceiveReport?, _ comparison: PlainComparison? = nil) throws -> String {
        let base = try streaming.json()
        guard download != nil || comparison != nil else { return base }
        guard var object = try JSONSerialization.jsonObject(with: Data(base.utf8)) as? [String: Any] else { return base }
        if let download { object["download"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(download)) }
        if let comparison { object["plainComparison"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(comparison)) }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

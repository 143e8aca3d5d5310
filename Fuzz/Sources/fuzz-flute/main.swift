// Fuzz target 3 (issue 19 finding 12): FLUTE — LCT/ALC packet decoding (header extensions,
// FEC Payload ID), object reassembly and the FDT table in `FLUTEReceiver`, and FDT Instance XML
// (the bounded XML reader), with two oracles: ALC decode → encode → decode and FDT parse →
// write → parse must be stable.
//
// Input: one mode octet. Mode bit 0 set: the rest is FDT Instance XML. Else records
// [time step][u16 length][UDP payload] go to one receiver (time step: seconds added to the clock,
// so objects and FDT Instances expire); mode bit 1 honours FDT Expires.
import FLUTE
import FuzzSupport

/// The fixtures' capture time (November 2026, ../shared/fixtures/README.md): FDT Expires
/// values in the seeds lie around it.
let startTime = 1_794_000_000.0

func checkFDT(_ xml: [UInt8]) {
    guard let fdt = try? FDTInstance(parsing: xml) else { return }
    var table = FDTTable(maximumFiles: 64)
    _ = table.insert(fdt, fdtInstanceID: 1, ntpNow: nil)
    for f in fdt.files { _ = fdt.objectTransmissionInformation(for: f) }
    guard let written = try? fdt.xml() else { return }
    do {
        let again = try FDTInstance(parsing: written)
        if again != fdt { FuzzMain.fail("FDT parse(write(parse(x))) != parse(x)") }
    } catch {
        FuzzMain.fail("the FDT writer's output does not parse: \(error)")
    }
}

func checkALC(_ datagram: [UInt8]) {
    guard let p = try? ALCPacket(decoding: datagram) else { return }
    guard let encoded = try? p.encoded() else { return }
    do {
        let q = try ALCPacket(decoding: encoded)
        if q != p { FuzzMain.fail("ALC decode(encode(p)) != p") }
    } catch {
        FuzzMain.fail("an encoded ALC packet does not decode: \(error)")
    }
}

func fuzzOne(_ input: [UInt8]) {
    var r = FuzzReader(input)
    let mode = r.byte()
    if mode & 1 != 0 {
        checkFDT(r.rest())
        return
    }
    var receiver = FLUTEReceiver(configuration: .init(honourExpires: mode & 2 != 0))
    var now = startTime
    var n = 0
    while !r.isAtEnd, n < 64 {
        n += 1
        now += Double(r.byte())
        let datagram = r.chunk()
        checkALC(datagram)
        _ = receiver.receive(datagram: datagram, at: now)
    }
    _ = receiver.expire(at: now + 3600)
}

// MARK: - Seeds

func makeSeeds(_ w: SeedWriter) throws {
    // flute.json: an FDT packet, a MIKEY object, a DCF object (each a whole object).
    let v = try SeedWriter.json("flute.json")
    let packets = ((v["packets"] as? [[String: Any]]) ?? []).compactMap { $0["packet_hex"] as? String }.map(hexBytes)
    var b = FuzzInputBuilder()
    b.byte(2)
    for p in packets { b.byte(0); b.chunk(p) }
    try w.write("vector-packets", b.bytes)
    for (i, p) in packets.enumerated() {
        var one = FuzzInputBuilder()
        one.byte(0); one.byte(0); one.chunk(p)
        try w.write("vector-packet-\(i)", one.bytes)
    }
    if let xml = v["fdt_instance_xml"] as? String {
        try w.write("vector-fdt-xml", [1] + Array(xml.utf8))
    }
    for name in ["flute-files.fdt.xml", "flute-multicast.fdt.xml"] {
        let xml = [UInt8](try Data(contentsOf: URL(fileURLWithPath: SeedWriter.fixture(name))))
        try w.write("fixture-\(name)", [1] + xml)
    }
    // The start of a real session (flute-multicast.pcap): the FDT packets and the first
    // packets of each file, in capture order.
    let (_, frames) = try readClassicPcap(SeedWriter.fixture("flute-multicast.pcap"), limit: 144)
    var s = FuzzInputBuilder()
    s.byte(0)
    var count = 0
    var lastSecond: UInt32? = nil
    for (sec, _, f) in frames {
        guard let (_, payload) = udpPayload(ethernetFrame: f), count < 6 else { continue }
        s.byte(UInt8(min(255, sec - (lastSecond ?? sec))))
        lastSecond = sec
        s.chunk(payload)
        count += 1
    }
    try w.write("fixture-multicast-start", s.bytes)
}

import Foundation

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)

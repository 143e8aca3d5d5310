// Fuzz target 6 (issue 19 finding 12): the YAML gateway configuration
// (`GatewayConfiguration.parse`: Yams/libyaml, then every key's validation) and the address
// parser it uses. A configuration error must be a `ConfigurationError`, never a trap, a hang
// or an echo without bound.
//
// Input: the YAML text (bytes decoded as UTF-8, invalid sequences replaced), at most
// `GatewayConfiguration.maximumFileBytes` as `load(path:)` enforces.
import Foundation
import FuzzSupport
import KeyManagement

func fuzzOne(_ input: [UInt8]) {
    guard input.count <= GatewayConfiguration.maximumFileBytes else { return }
    let text = String(decoding: input, as: UTF8.self)
    do {
        let c = try GatewayConfiguration.parse(yaml: text, fileName: "fuzz.yaml")
        for s in c.sessions { _ = c.session(forKeyGroup: s.keyGroup) }
        _ = c.keyGroups
    } catch {
        // Finding 9: an echoed value is capped (~80 characters), so an error message stays
        // small whatever the input.
        let message = error.description
        if message.utf8.count > 4096 { FuzzMain.fail("configuration error of \(message.utf8.count) bytes: \(message.prefix(200))…") }
    }
    if input.count < 512 { _ = SocketAddress(parsing: text) }
}

// MARK: - Seeds

func makeSeeds(_ w: SeedWriter) throws {
    var repo = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { repo.deleteLastPathComponent() }
    let example = try String(contentsOf: repo.appendingPathComponent("Examples/gateway.yaml"), encoding: .utf8)
    try w.write("example-gateway.yaml", Array(example.utf8))
    let full = """
    keyDomain: { mcc: "001", mnc: "01" }
    bmscFQDN: bmsc.home1.net
    logLevel: info
    keyStore: { path: /tmp/keys.sqlite, kekFile: kek.hex }
    schedule:
      epoch: 2026-01-01T00:00:00Z
      mtk: { period: 60s, announceLead: 10s, repeat: 5s }
      msk: { period: 1d }
    sessions:
      - name: video
        kind: rtp
        destination: 127.0.0.20:5004
        output: 127.0.0.30:6004
        source: 127.0.0.0/8
        maxFlows: 64
        maxPacketSize: 1500
        keyGroup: 1
        protection: { cipher: aes-128-cm, auth: rccm3, rocRate: 1, srtcpEncryption: off }
      - name: files
        kind: flute
        destination: "[::1]:4000"
        tsi: 7
        keyGroup: 2
        protection: { dcf: on }
    keyServer:
      listen: 127.0.0.1:8080
      tlsListen: 0.0.0.0:8443
      tls: { certificate: cert.pem, key: key.pem }
      nonceLifetime: 5m
      scfPeers: [192.0.2.10, "2001:db8::1"]
      mikeyListen: 127.0.0.1:2269
      verify: yes
      mskPushLead: 1h
      pushRate: 1000
      retransmitAfter: 2s
      maximumAttempts: 5
    userServices:
      - { id: "urn:3gpp:mbms:service:news", sessions: [video], register: everyone, uicc: false }
      - { id: "urn:3gpp:mbms:service:files", sessions: [files], register: ["*@ims.example.org"] }
    """
    try w.write("all-sections.yaml", Array(full.utf8))
    let anchors = """
    base: &b { cipher: aes-256-cm, auth: rccm1, rocRate: 1 }
    keyDomain: { mcc: "001", mnc: "01" }
    sessions:
      - { name: a, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1, protection: *b }
      - { name: b, kind: rtp, destination: 239.1.1.1:5002, keyGroup: 2, protection: { <<: *b, rocRate: 4 } }
    """
    try w.write("anchors-merge.yaml", Array(anchors.utf8))
}

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)

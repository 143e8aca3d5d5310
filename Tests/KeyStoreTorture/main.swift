// Child process of KeyManagementTests.testKillDuringWritesKeepsStoreConsistent: writes to a
// key store in a loop until it is SIGKILLed. After each *committed* step it prints one line
// `rev=R ue=U counter=C t=T`, so the parent knows what must survive the kill.
//
// usage: keystore-torture STORE KEK-HEX START-UNIX-SECONDS
import CryptoCore
import Foundation
import KeyManagement

let args = CommandLine.arguments
guard args.count == 4, let start = Int64(args[3]) else {
    FileHandle.standardError.write(Data("usage: keystore-torture STORE KEK-HEX START-UNIX-SECONDS\n".utf8))
    exit(2)
}
let yaml = """
    keyDomain: { mcc: "001", mnc: "01" }
    bmscFQDN: bmsc.example.org
    keyStore: { path: \(args[1]) }
    schedule:
      epoch: 2026-01-01T00:00:00Z
      mtk: { period: 10s, announceLead: 2s, repeat: 1s }
      msk: { period: 60s }
    sessions:
      - { name: a, kind: rtp, destination: "239.0.0.1:5000", keyGroup: 1 }
      - { name: b, kind: flute, destination: "239.0.0.2:4000", tsi: 1, keyGroup: 2 }
    """
do {
    let config = try GatewayConfiguration.parse(yaml: yaml, fileName: "torture")
    let manager = try KeyManager.openSQLite(configuration: config, environment: ["MBMS_KEK": args[2]], create: true)
    var t = start
    try manager.initialize(at: Date(timeIntervalSince1970: TimeInterval(t)))
    var i = 0
    while true {
        i += 1
        t += 7
        let date = Date(timeIntervalSince1970: TimeInterval(t))
        var s = try manager.maintain(at: date)
        if i % 3 == 0, let g = KeyGroup(UInt16(1 + i % 2)) {
            s = try manager.rotate(keyGroup: g, at: date, invalidateCurrent: i % 2 == 0)
        }
        let ue = "ue-\(i % 3)"
        let c = try manager.store.nextMSKMessageCounter(ueID: ue)
        FileHandle.standardOutput.write(Data("rev=\(s.revision) ue=\(ue) counter=\(c) t=\(t)\n".utf8))
    }
} catch {
    FileHandle.standardError.write(Data("keystore-torture: \(error)\n".utf8))
    exit(1)
}

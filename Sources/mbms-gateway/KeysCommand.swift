import ArgumentParser
import CryptoCore
import Foundation
import Gateway
import KeyManagement
import KeyServer

/// `mbms-gateway keys …`: thin wrappers over `KeyManagement`. Only this layer reads the clock.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, inspect, rotate and export MBMS key material (MSKs, MTKs; TS 33.246 6.3).",
        discussion: """
            All subcommands read the same gateway configuration (--config, see Examples/gateway.yaml) and the key store it names (keyStore.path, SQLite, mode 0600).

            Secrets in the store are encrypted under a 32-byte key-encryption key (KEK), read from (first match wins): MBMS_KEK (64 hex digits), the file named by MBMS_KEK_FILE, or the file keyStore.kekFile of the configuration. `keys init --create-kek` creates that file (mode 0600).

            Every key group (one per RTP session or FLUTE channel) always has a current MSK and a next one. MTKs change on a time grid (schedule.epoch + k × schedule.mtk.period); the MTK, its salt and the MIKEY CSB ID are derived from a per-MSK seed in the store, so gateways sharing a store use identical keys at the same instant. `show` never prints key bytes unless --reveal.
            """,
        subcommands: [Init.self, Show.self, Rotate.self, Pull.self, Deliver.self, ExportUE.self])

    /// The Key Distribution function's queue on this store (nil when the store keeps none).
    static func distributor(_ m: KeyManager) -> MSKDistributor? {
        guard let store = m.store as? (any KeyServerStore & MSKDeliveryQueue) else { return nil }
        return MSKDistributor(manager: m, keyStore: store, queue: store, policy: MSKDistributionPolicy(gateway: m.configuration))
    }

    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask registered UEs to fetch a key group's MSK again (BM-SC solicited pull, TS 33.246 6.3.2.2.4).",
            discussion: """
                Queues a MUK-protected MIKEY message with Key Number 0 and no key for every UE registered to a user service using the key group (or one UE with --ue); a running `mbms-gateway keyserver` sends it to the UE's address on UDP 2269, and the UE answers with an msk-request over HTTP.

                Example:
                  mbms-gateway keys pull --config gateway.yaml --key-group 1
                  mbms-gateway keys pull --config gateway.yaml --key-group 1 --ue 'B-TID-1@bsf.example.org'
                """)
        @OptionGroup var common: Common
        @Option(name: .long, help: "Key group (1…65535).")
        var keyGroup: UInt16
        @Option(name: .long, help: ArgumentHelp("Only this UE (its B-TID).", valueName: "B-TID"))
        var ue: String?

        func run() throws {
            let c = try common.load()
            guard let g = KeyGroup(keyGroup) else { throw KeysFailure("--key-group 0: key group 0 is forbidden (TS 33.246 6.3.1); use 1…65535") }
            guard c.session(forKeyGroup: g) != nil else { throw KeysFailure("--key-group \(keyGroup): no session of \(common.config) uses it") }
            let m = try common.manager(c)
            guard let distributor = KeysCommand.distributor(m) else { throw KeysFailure("this key store keeps no delivery queue") }
            do {
                let n = try distributor.enqueuePull(keyGroup: g, btid: ue, at: Int64(try common.now().timeIntervalSince1970))
                if n == 0, let ue {
                    throw KeysFailure("UE \(ue) is not registered to a user service using key group \(keyGroup) (see `mbms-gateway ue list`)")
                }
                print("solicited pull queued for \(n) UE(s) of key group \(keyGroup); `mbms-gateway keyserver` sends it on UDP 2269")
            } catch let e as KeysFailure { throw e } catch { throw KeysFailure(error) }
        }
    }

    struct Common: ParsableArguments {
        @Option(name: .long, help: "Gateway configuration file (YAML).")
        var config: String = "gateway.yaml"

        @Option(name: .long, help: ArgumentHelp("Act as if the time were this (RFC 3339, e.g. 2026-01-01T00:00:00Z); for tests and debugging.", valueName: "time"))
        var at: String?

        func now() throws -> Date {
            guard let at else { return Date() }
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime]
            guard let d = f.date(from: at) else {
                throw ValidationError("--at \(at): not an RFC 3339 time; write e.g. 2026-01-01T00:00:00Z")
            }
            return d
        }

        func load() throws -> GatewayConfiguration {
            do { return try GatewayConfiguration.load(path: config) } catch { throw KeysFailure(error) }
        }

        func manager(_ c: GatewayConfiguration, create: Bool = false) throws -> KeyManager {
            do {
                return try KeyManager.openSQLiteFromProcessEnvironment(configuration: c, create: create)
            } catch { throw KeysFailure(error) }
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the key store and the key groups of the configured sessions, with current and next MSKs (idempotent).")
        @OptionGroup var common: Common
        @Flag(name: .long, help: "Create the KEK file (MBMS_KEK_FILE or keyStore.kekFile, mode 0600) if it does not exist.")
        var createKEK = false

        func run() throws {
            let c = try common.load()
            let env = ProcessInfo.processInfo.environment
            if createKEK {
                guard env[KeyEncryptionKey.environmentVariable] == nil,
                      let file = env[KeyEncryptionKey.environmentFileVariable] ?? c.keyStore.kekFile else {
                    throw KeysFailure("--create-kek needs a KEK file: set MBMS_KEK_FILE or keyStore.kekFile (and unset MBMS_KEK)")
                }
                if !FileManager.default.fileExists(atPath: file) {
                    do { try KeyEncryptionKey.createFile(at: file) } catch { throw KeysFailure(error) }
                    print("created key-encryption key file \(file) (mode 0600)")
                }
            }
            let m = try common.manager(c, create: true)
            let s: KeyStoreSnapshot
            do { s = try m.initialize(at: try common.now()) } catch { throw KeysFailure(error) }
            print("key store \(c.keyStore.path): Key Domain ID \(c.keyDomainID.hex), \(s.keyGroups.count) key group(s), \(s.msks.count) MSK(s), revision \(s.revision)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show key groups, MSK IDs, validity windows (SEQl/SEQu) and the current/next MTK IDs.",
            discussion: "Key bytes are never shown unless --reveal is given.")
        @OptionGroup var common: Common
        @Flag(name: .long, help: "Also print MSKs, RANDs, MTKs and salts (debugging only).")
        var reveal = false

        func run() throws {
            let c = try common.load()
            let m = try common.manager(c)
            do {
                print(KeyReport.show(schedule: try m.schedule(), configuration: c, at: try common.now(), reveal: reveal))
                if let sqlite = m.store as? SQLiteKeyStore {
                    print(Self.reservations(try sqlite.senderIndexReservations()))
                    let counts = try sqlite.deliveryCounts()
                    if !counts.isEmpty {
                        let order: [DeliveryRow.State] = [.pending, .awaitingVerification, .done, .gaveUp]
                        print("\nMSK deliveries: " + order.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
                              + "; UEs bootstrapped: \(try sqlite.bootstraps().count), registered: \(try sqlite.registrations().count)")
                    }
                }
            } catch { throw KeysFailure(error) }
        }

        /// DESIGN.md §7: per MTK, how far the RTP ROC and SRTCP index blocks handed to processes
        /// (runs, restarts, replays) reach.
        static func reservations(_ r: [SenderIndexCounter: UInt64]) -> String {
            guard !r.isEmpty else { return "\npacket-index blocks reserved: none yet (no MTK has protected a packet)" }
            var lines = ["", "packet-index blocks reserved (next free value; blocks of \(KeySource.rocBlock) ROCs, \(KeySource.srtcpBlock) SRTCP indices):"]
            let mtks = Dictionary(grouping: r.keys) { UInt64($0.mskID.rawValue) << 16 | UInt64($0.mtkID.rawValue) }
            for key in mtks.keys.sorted().suffix(8) {
                guard let any = mtks[key]?.first else { continue }
                let roc = r[SenderIndexCounter(mskID: any.mskID, mtkID: any.mtkID, kind: .rtpROC)] ?? 0
                let srtcp = r[SenderIndexCounter(mskID: any.mskID, mtkID: any.mtkID, kind: .srtcpIndex)] ?? 0
                lines.append("  MSK \(any.mskID.hex) MTK ID \(any.mtkID.rawValue): ROC \(roc) (\(roc / KeySource.rocBlock) block(s)), SRTCP index \(srtcp)")
            }
            if mtks.count > 8 { lines.append("  (\(mtks.count - 8) older MTKs not shown)") }
            return lines.joined(separator: "\n")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Force the next MSK of a key group: it takes over at the first MTK boundary at least announceLead ahead.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Key group (1…65535).")
        var keyGroup: UInt16
        @Flag(name: .long, help: "Also mark the current MSK invalidated (compromised): it is deleted as soon as it is replaced.")
        var invalidate = false

        func run() throws {
            let c = try common.load()
            guard let g = KeyGroup(keyGroup) else { throw KeysFailure("--key-group 0: key group 0 is forbidden (TS 33.246 6.3.1); use 1…65535") }
            let m = try common.manager(c)
            do {
                let now = try common.now()
                let invalidated = invalidate ? try m.schedule().msk(keyGroup: g, at: now).mskID : nil
                try m.rotate(keyGroup: g, at: now, invalidateCurrent: invalidate)
                let s = try m.schedule()
                let n = try s.nextMSK(keyGroup: g, at: now)
                print("key group \(g): MSK \(try s.msk(keyGroup: g, at: now).mskID.hex) until \(Date(timeIntervalSince1970: TimeInterval(n.validFrom))), then MSK \(n.mskID.hex)")
                // TS 33.246 6.3.2.3 / 6.3.2.1B: registered UEs get the new MSK now, and the
                // invalidation of the compromised one; the key server's UDP 2269 loop sends them.
                if let distributor = KeysCommand.distributor(m), !c.userServices.isEmpty {
                    let t = Int64(now.timeIntervalSince1970)
                    let pushed = try distributor.scheduleRollovers(at: t)
                    let dropped = try invalidated.map { try distributor.enqueueInvalidation(keyGroup: g, keyNumber: $0.keyNumber, at: t) } ?? 0
                    print("queued for registered UEs: \(pushed) MSK message(s) with the new MSK, \(dropped) invalidation(s); `mbms-gateway keyserver` sends them")
                }
            } catch { throw KeysFailure(error) }
        }
    }

    struct Deliver: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the MIKEY MSK message a UE would receive (raw UDP payload for port 2269).",
            discussion: "The per-UE MIKEY TS counter is committed to the store before the message is built.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Key group (1…65535).")
        var keyGroup: UInt16
        @Option(name: .long, help: "The UE's MUK, hex (32 bytes from GBA). Visible in process listings: prefer --muk-file.")
        var muk: String?
        @Option(name: .customLong("muk-file"), help: "File holding the UE's MUK as hex.")
        var mukFile: String?
        @Option(name: .customLong("ue-id"), help: "The UE's B-TID (IDr).")
        var ueID: String
        @Option(name: .long, help: "Output file (created with mode 0600).")
        var output: String
        @Flag(name: .long, help: "Set the V bit: ask the UE for a verification message.")
        var verify = false
        @Flag(name: .long, help: "Deliver the next MSK instead of the current one.")
        var next = false

        func run() throws {
            let c = try common.load()
            guard let g = KeyGroup(keyGroup) else { throw KeysFailure("--key-group 0: key group 0 is forbidden (TS 33.246 6.3.1); use 1…65535") }
            let mukHex: String
            do {
                guard let h = try SecretInput.mukHex(muk, file: mukFile) else { throw KeysFailure("give the UE's MUK with --muk-file FILE (or --muk HEX)") }
                mukHex = h
            } catch let e as SecretInput.Failure { throw KeysFailure(e.description) }
            let mukSecret: SecretBytes
            do { mukSecret = try SecretInput.muk(mukHex) } catch { throw KeysFailure("\(error)") }
            let m = try common.manager(c)
            do {
                let bytes = try m.mskMessage(keyGroup: g, ueID: ueID, muk: mukSecret, verify: verify, next: next,
                                             at: try common.now(), builder: KeysMIKEY.mskBuilder())
                try writeFile(output, bytes)
                print("wrote \(bytes.count)-byte MIKEY MSK message for \(ueID) to \(output)")
            } catch { throw KeysFailure(error) }
        }
    }

    struct ExportUE: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-ue",
            abstract: "Print, as JSON, what a UE of a key group holds: MSKs, RANDs, SEQl/SEQu, current/next MTK, policy.",
            discussion: "Contains secret keys IN CLEAR: for debugging and tests only. Prefer --output FILE (created with mode 0600); printed to a pipe or file, a warning goes to stderr.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Key group (1…65535).")
        var keyGroup: UInt16
        @Option(name: .long, help: "Write the JSON to this file (created with mode 0600, replacing any file there) instead of stdout.")
        var output: String?

        func run() throws {
            let c = try common.load()
            guard let g = KeyGroup(keyGroup) else { throw KeysFailure("--key-group 0: key group 0 is forbidden (TS 33.246 6.3.1); use 1…65535") }
            let m = try common.manager(c)
            do {
                let json = try UEExport.make(schedule: try m.schedule(), configuration: c, keyGroup: g, at: try common.now()).json()
                if let output {
                    try writeFile(output, Array(json.utf8) + [0x0A])
                } else {
                    if isatty(STDOUT_FILENO) == 0 {
                        FileHandle.standardError.write(Data("warning: export-ue writes MSKs and MTKs in clear to stdout (not a terminal); prefer --output FILE (mode 0600)\n".utf8))
                    }
                    print(json)
                }
            } catch { throw KeysFailure(error) }
        }
    }
}

/// A one-line error for the terminal (the error types carry their own fix).
struct KeysFailure: Error, CustomStringConvertible {
    let description: String
    /// What the wrapped error means (`ExitStatus.of`: a bad --config is 2, as in every command).
    var status: ExitStatus = .failed
    init(_ message: String) { description = message }
    init(_ error: any Error) { description = "\(error)"; status = ExitStatus.of(error) ?? .failed }
}

/// Writes a file holding secrets (`SecretFile.write`: a new 0600 file renamed over `path`;
/// a symbolic link is refused).
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    do { try SecretFile.write(bytes, to: path) } catch { throw KeysFailure(error.description) }
}

/// The MIKEY builders used by `deliver`.
enum KeysMIKEY {
    static func mskBuilder() -> any MSKMessageBuilding { MIKEYMSKMessageBuilder() }
}

import ArgumentParser
import CryptoCore
import Foundation
import KeyManagement
import KeyServer

/// `mbms-gateway ue`: the embedded bootstrapping table — what a BSF would answer over Zn for
/// each bootstrapped UE (TS 33.220 4.5.3; TS 33.246 6.1) — until a real Zn client is configured.
struct UECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ue",
        abstract: "Manage the bootstrapped UEs the key server knows (B-TID → NAF keys, IMPI, lifetime).",
        discussion: """
            The key server authenticates UEs with HTTP Digest over GBA keys (TS 33.246 6.2.1.3): the password is derived from the UE's Ks_NAF (the MRK), which a BSF hands to the BM-SC over Zn. Without a BSF, `ue add` stores that answer in the key store: either the NAF keys themselves (--ks-naf, and --ks-int-naf for GBA_U), or the UE's Ks and RAND (--ks --rand), from which Ks_NAF is derived here as a BSF would (TS 33.220 Annex B, NAF_Id = bmscFQDN ‖ 01 00 00 00 01). Keys are sealed under the KEK like MSKs and never printed.

            Examples:
              mbms-gateway ue add --config gateway.yaml --btid 'B-TID-1@bsf.example.org' --impi alice@ims.example.org --ks-naf 00112233…(64 hex digits)
              mbms-gateway ue add --config gateway.yaml --btid 'B-TID-2@bsf.example.org' --impi bob@ims.example.org --ks <64 hex> --rand <32 hex> --gba u --lifetime 12h
              mbms-gateway ue list --config gateway.yaml
              mbms-gateway ue remove --config gateway.yaml --btid 'B-TID-1@bsf.example.org'
            """,
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add (or replace) a bootstrapped UE.")
        @OptionGroup var common: KeysCommand.Common
        @Option(name: .long, help: "Bootstrapping Transaction Identifier (the Digest username).") var btid: String
        @Option(name: .long, help: "The UE's private identity (IMPI).") var impi: String
        @Option(name: .long, help: ArgumentHelp("Ks (32 octets, hex): derive the NAF keys here, as a BSF would; needs --rand.", valueName: "hex")) var ks: String?
        @Option(name: .long, help: ArgumentHelp("RAND of the bootstrapping run (16 octets, hex), with --ks.", valueName: "hex")) var rand: String?
        @Option(name: .long, help: ArgumentHelp("Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U), 32 octets hex, as the BSF gave it.", valueName: "hex")) var ksNaf: String?
        @Option(name: .long, help: ArgumentHelp("Ks_int_NAF (GBA_U only), 32 octets hex.", valueName: "hex")) var ksIntNaf: String?
        @Option(name: .long, help: "GBA type: me (GBA_ME) or u (GBA_U).") var gba: String = "me"
        @Option(name: .long, help: "Key lifetime from now: seconds or a number with s, m, h, d.") var lifetime: String = "1d"

        func validate() throws {
            guard gba == "me" || gba == "u" else { throw ValidationError("--gba must be me or u (got \(gba))") }
            switch (ks != nil, ksNaf != nil) {
            case (true, true): throw ValidationError("give either --ks with --rand, or --ks-naf, not both")
            case (false, false): throw ValidationError("give the UE's keys: --ks HEX --rand HEX, or --ks-naf HEX")
            case (true, false): guard rand != nil else { throw ValidationError("--ks needs --rand (the RAND of the same bootstrapping run)") }
            case (false, true):
                guard rand == nil else { throw ValidationError("--rand goes with --ks, not with --ks-naf") }
                if gba == "u", ksIntNaf == nil { throw ValidationError("--gba u with --ks-naf needs --ks-int-naf too") }
            }
            if gba == "me", ksIntNaf != nil { throw ValidationError("--ks-int-naf is for --gba u only") }
            guard !btid.isEmpty, btid.utf8.count <= 255, !btid.contains(where: { $0.isNewline }) else {
                throw ValidationError("--btid must be one line of at most 255 octets")
            }
            guard !impi.isEmpty, impi.utf8.count <= 255, !impi.contains(where: { $0.isNewline }) else {
                throw ValidationError("--impi must be one line of at most 255 octets")
            }
            _ = try Self.seconds(lifetime)
        }

        static func seconds(_ text: String) throws -> Int64 {
            var digits = Substring(text), mult: Int64 = 1
            if let last = text.last, let m = ["s": 1, "m": 60, "h": 3600, "d": 86400][String(last)] { digits = text.dropLast(); mult = Int64(m) }
            guard let v = Int64(digits), v > 0, v <= 365 * 86400, v * mult <= 365 * 86400 else {
                throw ValidationError("--lifetime \(text): write seconds or a number with s, m, h or d (at most a year), e.g. 1d")
            }
            return v * mult
        }

        static func key(_ hex: String, _ name: String, octets: Int) throws -> SecretBytes {
            guard var bytes = try? Hex.decode(hex), bytes.count == octets else {
                throw KeysFailure("--\(name) must be \(octets) octets as \(2 * octets) hex digits")
            }
            defer { SecureZero.zero(&bytes) }
            return SecretBytes(bytes)
        }

        func run() throws {
            let c = try common.load()
            let manager = try common.manager(c)
            guard let store = manager.store as? any KeyServerStore else { throw KeysFailure("this key store keeps no bootstrapping table") }
            let now = Int64(try common.now().timeIntervalSince1970)
            let ksNAF: SecretBytes, ksIntNAF: SecretBytes?
            if let ks, let rand {
                let k = try Self.key(ks, "ks", octets: 32)
                guard let r = try? Hex.decode(rand), r.count == 16 else { throw KeysFailure("--rand must be 16 octets as 32 hex digits") }
                let naf = GBAKeyDerivation.nafID(fqdn: c.bmscFQDN, ua: .mbms)
                do {
                    ksNAF = try GBAKeyDerivation.ksNAF(ks: k, rand: r, impi: impi, nafID: naf)
                    ksIntNAF = gba == "u" ? try GBAKeyDerivation.ksIntNAF(ks: k, rand: r, impi: impi, nafID: naf) : nil
                } catch { throw KeysFailure("cannot derive the NAF keys: \(error)") }
            } else {
                ksNAF = try Self.key(ksNaf ?? "", "ks-naf", octets: 32)
                ksIntNAF = try ksIntNaf.map { try Self.key($0, "ks-int-naf", octets: 32) }
            }
            let expires = now + (try Self.seconds(lifetime))
            do {
                try store.apply([.putBootstrap(BootstrapRecord(btid: btid, impi: impi, gbaType: gba, ksNAF: ksNAF, ksIntNAF: ksIntNAF,
                                                               expiresAt: expires, createdAt: now))])
            } catch { throw KeysFailure(error) }
            print("UE \(btid) (\(impi), GBA_\(gba.uppercased())) added; keys valid until \(Self.iso(expires))")
        }

        static func iso(_ t: Int64) -> String {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime]
            return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List bootstrapped UEs and their registrations (never keys).")
        @OptionGroup var common: KeysCommand.Common

        func run() throws {
            let c = try common.load()
            let manager = try common.manager(c)
            guard let store = manager.store as? any KeyServerStore else { throw KeysFailure("this key store keeps no bootstrapping table") }
            let now = Int64(try common.now().timeIntervalSince1970)
            do {
                let ues = try store.bootstraps()
                let registrations = Dictionary(try store.registrations().map { ($0.impi, $0) }, uniquingKeysWith: { a, _ in a })
                if ues.isEmpty { print("no UEs (add one with `mbms-gateway ue add`)") }
                for u in ues {
                    let state = u.expiresAt > now ? "valid until \(Add.iso(u.expiresAt))" : "EXPIRED \(Add.iso(u.expiresAt))"
                    var line = "\(u.btid)  \(u.impi)  GBA_\(u.gbaType.uppercased())  \(state)"
                    if let r = registrations[u.impi] {
                        line += "  registered to \(r.serviceIDs.joined(separator: ", ")) from \(r.ueAddress)" + (r.btid == u.btid ? "" : " (as \(r.btid))")
                    }
                    print(line)
                }
            } catch { throw KeysFailure(error) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a bootstrapped UE (its MUK goes too; the UE must bootstrap again).")
        @OptionGroup var common: KeysCommand.Common
        @Option(name: .long, help: "The B-TID to remove.") var btid: String

        func run() throws {
            let c = try common.load()
            let manager = try common.manager(c)
            guard let store = manager.store as? any KeyServerStore else { throw KeysFailure("this key store keeps no bootstrapping table") }
            do {
                guard try store.bootstrap(btid: btid) != nil else { throw KeysFailure("no UE with B-TID \(btid) (see `mbms-gateway ue list`)") }
                try store.apply([.removeBootstrap(btid: btid)])
            } catch let e as KeysFailure { throw e } catch { throw KeysFailure(error) }
            print("UE \(btid) removed")
        }
    }
}

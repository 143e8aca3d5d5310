import CryptoCore
import Foundation
import KeyManagement
import KeyServer
import MIKEY
import PacketIO
import Receiver
#if canImport(Glibc)
import Glibc
#endif

/// The demo's UE getting its MSKs the way a real one does (TS 33.246 6.2, 6.3.2, 6.4.5): the
/// demo starts `mbms-gateway keyserver` as a child process, registers over HTTP with Digest
/// (qop=auth-int, password base64(MRK) from its GBA key), and receives the MUK-protected MIKEY
/// MSK messages the key server pushes to its address on UDP 2269, answering each with the
/// verification message.
struct DemoKeyServerStep {
    struct Failure: Error, CustomStringConvertible { var description: String }

    let configPath: String
    let directory: String
    let btid = "demo-ue@bsf.demo.example"
    let impi = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
    let serviceID = "urn:3gpp:mbms:demo:tv"
    let httpPort: UInt16
    let mikeyPort: UInt16

    /// Free loopback ports for the key server's HTTP listener and MIKEY socket.
    static func freePort(_ type: Int32) throws -> UInt16 {
        let s = socket(AF_INET, type, 0)
        guard s >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 }
        }
        guard ok else { throw Failure(description: "no free port on 127.0.0.1") }
        return UInt16(bigEndian: a.sin_port)
    }

    /// The configuration lines the step needs (appended to the demo's file).
    var configurationLines: String {
        """
        keyServer: { listen: "127.0.0.1:\(httpPort)", mikeyListen: "127.0.0.1:\(mikeyPort)", retransmitAfter: 1s }
        userServices:
          - { id: "\(serviceID)", sessions: [video, audio] }
        """
    }

    /// Runs the step; returns the MSK messages the UE received (for the UE's key state) and lines to print.
    func run(store: any KeyServerStore, ksNAF: SecretBytes, keyGroups: Int) throws -> (messages: [[UInt8]], report: [String]) {
        // The UE as the BSF knows it: Ks_NAF for this BM-SC (`mbms-gateway ue add`).
        let now = Int64(Date().timeIntervalSince1970)
        try store.apply([.putBootstrap(BootstrapRecord(btid: btid, impi: impi, gbaType: "me", ksNAF: ksNAF, ksIntNAF: nil,
                                                       expiresAt: now + 3600, createdAt: now))])
        // The UE's own address: 127.0.0.2 if its UDP 2269 is free, else another loopback address.
        var ue: UDPBatchSocket?
        var ueIP = ""
        for last in 2..<40 where ue == nil {
            ueIP = "127.0.0.\(last)"
            if let ip = IPAddress(ueIP) { ue = try? UDPBatchSocket(bind: TransportAddress(ip, 2269), maxBatch: 8) }
        }
        guard let ueSocket = ue else { throw Failure(description: "no loopback address with UDP 2269 free for the demo UE") }

        let server = try startKeyServer()
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() } }
        var report: [String] = []

        // Register: 401 with the GBA challenge, then the Digest answer (TS 33.246 6.2.1.3).
        let target = "/keymanagement?requesttype=register"
        let body = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <mbmsRegister xmlns="urn:3GPP:metadata:2005:MBMS:mbmsRegister"><serviceId>\(serviceID)</serviceId></mbmsRegister>

            """.utf8)
        let headers = [("Content-Type", "application/mbms-register+xml"), ("User-Agent", "MBMSAgent; Release-6 3gpp-gba")]
        let first = try Self.post(port: httpPort, source: ueIP, target: target, headers: headers, body: body)
        guard first.status == 401, let challenge = first.headers.first(where: { $0.0.lowercased() == "www-authenticate" })?.1,
              let params = try? DigestCredentials.parseParameters(challenge),
              let realm = params.first(where: { $0.name == "realm" })?.value, let nonce = params.first(where: { $0.name == "nonce" })?.value
        else { throw Failure(description: "key server: expected a 401 Digest challenge, got \(first.status)") }
        let password = GBAKeyDerivation.digestPassword(mrk: try GBAKeyDerivation.mrk(fromKsNAF: ksNAF))
        let cnonce = Hex.encode(try SecureRandom.bytes(count: 8)), nc = "00000001"
        let ha1 = DigestComputation.ha1(.md5, username: btid, realm: realm, password: password)
        let ha2 = DigestComputation.ha2(.md5, method: "POST", uri: target, qop: "auth-int", body: body)
        let response = DigestComputation.response(.md5, ha1: ha1, nonce: nonce, nc: nc, cnonce: cnonce, qop: "auth-int", ha2: ha2)
        var authorization = "Digest username=\"\(btid)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(target)\", qop=auth-int, "
            + "nc=\(nc), cnonce=\"\(cnonce)\", response=\"\(response)\", algorithm=MD5"
        if let opaque = params.first(where: { $0.name == "opaque" })?.value { authorization += ", opaque=\"\(opaque)\"" }
        let sentAt = Date()
        let second = try Self.post(port: httpPort, source: ueIP, target: target, headers: headers + [("Authorization", authorization)], body: body)
        guard second.status == 200 else { throw Failure(description: "key server: registration answered \(second.status): \(String(decoding: second.body, as: UTF8.self))") }
        // rspauth: the server knew the password too (RFC 2617 3.2.3).
        let info = second.headers.first(where: { $0.0.lowercased() == "authentication-info" })?.1 ?? ""
        let rspauth = (try? DigestCredentials.parseParameters("Digest " + info))?.first(where: { $0.name == "rspauth" })?.value
        let expected = DigestComputation.response(.md5, ha1: ha1, nonce: nonce, nc: nc, cnonce: cnonce, qop: "auth-int",
                                                  ha2: DigestComputation.ha2(.md5, method: "", uri: target, qop: "auth-int", body: second.body))
        guard rspauth == expected else { throw Failure(description: "key server: rspauth does not verify") }
        report.append("   registered \(btid) to \(serviceID) over HTTP Digest (qop=auth-int, realm \(realm)): 401 challenge, then 200, rspauth verified")

        // The pushed MSK messages on UDP 2269 (current and next MSK of each key group), each answered.
        var processor = UEKeyProcessor(muk: ksNAF, nafID: "bmsc.demo.example", bTID: btid)
        var messages: [[UInt8]] = []
        var current = Set<UInt16>()
        let pool = UnsafeMutableRawPointer.allocate(byteCount: 8 * 4096, alignment: 16)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 8)
        defer { pool.deallocate(); slots.deallocate() }
        let deadline = Date().addingTimeInterval(10)
        while messages.count < 2 * keyGroups, Date() < deadline {
            for k in 0..<8 { slots[k] = DatagramSlot(bytes: pool + k * 4096, capacity: 4096) }
            let n = try ueSocket.receive(into: slots, timeoutMilliseconds: 100)
            for k in 0..<n {
                let bytes = Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))
                guard case .success(.msk(let msk, let verification)) = processor.process(bytes) else { continue }
                messages.append(bytes)
                if msk.mskID.keyNumber == 1 { current.insert(msk.mskID.keyGroup) }
                if var v = verification, let peer = slots[k].peer {
                    v.withUnsafeMutableBytes { b in
                        var s = DatagramSlot(bytes: b.baseAddress!, capacity: b.count)
                        s.length = b.count
                        s.peer = peer
                        _ = withUnsafeMutablePointer(to: &s) { try? ueSocket.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                    }
                }
            }
        }
        guard current.count == keyGroups else { throw Failure(description: "the key server pushed no MSK for every key group within 10 s") }
        report.append(String(format: "   %d MIKEY MSK messages (current and next MSK of key groups 1 and 2) arrived on %@:2269 %.2f s after the request, each answered with its verification message",
                             messages.count, ueIP, Date().timeIntervalSince(sentAt)))
        usleep(300_000)   // the verification messages reach the key server
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        let summary = (try? String(contentsOfFile: (directory as NSString).appendingPathComponent("keyserver.out"), encoding: .utf8)) ?? ""
        if let line = summary.split(separator: "\n").last(where: { $0.hasPrefix("keyserver stopped") }) { report.append("   " + line) }
        return (messages, report)
    }

    private func startKeyServer() throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        p.arguments = ["keyserver", "--config", configPath, "--duration", "60", "--log-level", "notice"]
        let out = (directory as NSString).appendingPathComponent("keyserver.out"), err = (directory as NSString).appendingPathComponent("keyserver.log")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            guard p.isRunning else {
                throw Failure(description: "keyserver exited (\(p.terminationStatus)): \((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
            }
            if ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("key server listening") { return p }
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGKILL)
        throw Failure(description: "keyserver did not start within 20 s")
    }

    /// One HTTP/1.1 POST on its own connection from `source` (the UE's address), read to the end.
    static func post(port: UInt16, source: String, target: String, headers: [(String, String)], body: [UInt8]) throws
        -> (status: Int, headers: [(String, String)], body: [UInt8]) {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(s) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        func address(_ ip: String, _ port: UInt16) -> sockaddr_in {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            inet_pton(AF_INET, ip, &a.sin_addr)
            return a
        }
        var local = address(source, 0), remote = address("127.0.0.1", port)
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, len) } }
        guard bound == 0, connected == 0 else { throw Failure(description: "cannot reach the key server on 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
        var request = "POST \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        let bytes = Array((request + "\r\n").utf8) + body
        guard bytes.withUnsafeBytes({ write(s, $0.baseAddress, $0.count) }) == bytes.count else { throw Failure(description: "short write to the key server") }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while reply.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(s, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            reply += chunk[0..<n]
        }
        guard let split = reply.indices.first(where: { reply.count >= $0 + 4 && reply[$0..<$0 + 4] == [13, 10, 13, 10] }) else {
            throw Failure(description: "the key server's answer has no header end")
        }
        let head = String(decoding: reply[0..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        let fields = head.dropFirst().compactMap { line -> (String, String)? in
            guard let c = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<c]), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces))
        }
        return (status, fields, Array(reply[(split + 4)...]))
    }
}

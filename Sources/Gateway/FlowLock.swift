import Foundation
import PacketIO
#if canImport(Glibc)
import Glibc

/// One gateway per input address and port, across processes (issue 19 finding 3).
///
/// A unicast input is bound without SO_REUSEADDR (`UDPBatchSocket`), so the kernel already
/// refuses a second binder; a multicast group:port must stay shareable (other receivers on the
/// host), so two gateways could both join it and both protect and send every packet. Before
/// binding an input, `run` takes this lock: a listening unix socket in the Linux abstract
/// namespace named after the address ("mbms-gateway/udp/ADDR:PORT"). Its scope is the network
/// namespace, exactly the scope of UDP ports; the kernel frees it when the process ends, even on
/// kill -9, so nothing is ever stale. A second gateway finds the name taken, connects to it and
/// reads the holder's PID with SO_PEERCRED, so the refusal names the other process.
final class FlowLock {
    let address: TransportAddress
    private let fd: Int32

    private init(address: TransportAddress, fd: Int32) {
        self.address = address
        self.fd = fd
    }

    deinit { close(fd) }

    /// Who holds a lock (or a port), for messages.
    struct Holder: Equatable, CustomStringConvertible {
        var pid: Int32
        var command: String?
        var description: String { command.map { "\($0) (PID \(pid))" } ?? "PID \(pid)" }
    }

    enum Failure: Error {
        /// Another gateway receives on the address (its PID when it could be read).
        case held(by: Holder?)
        case system(operation: String, errno: Int32)
    }

    /// The abstract socket name of `address` (sun_path[0] = 0, then the name; no terminator).
    static func name(_ address: TransportAddress) -> [UInt8] { Array("mbms-gateway/udp/\(address)".utf8) }

    private static func withAddress<T>(_ address: TransportAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        let n = name(address)
        let length = withUnsafeMutableBytes(of: &a.sun_path) { b -> Int in
            let count = min(n.count, b.count - 1)
            b[0] = 0
            for i in 0..<count { b[i + 1] = n[i] }
            return count + 1
        }
        let size = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + socklen_t(length)
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, size) } }
    }

    /// Takes the lock of `address` for this process, or says who holds it.
    static func acquire(_ address: TransportAddress) throws(Failure) -> FlowLock {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard s >= 0 else { throw .system(operation: "socket(AF_UNIX)", errno: errno) }
        let rc = withAddress(address) { bind(s, $0, $1) }
        if rc != 0 {
            let e = errno
            close(s)
            guard e == EADDRINUSE else { throw .system(operation: "bind (flow lock)", errno: e) }
            throw .held(by: holder(of: address))
        }
        guard listen(s, 8) == 0 else {
            let e = errno
            close(s)
            throw .system(operation: "listen (flow lock)", errno: e)
        }
        return FlowLock(address: address, fd: s)
    }

    /// The process holding the lock of `address`: connect, then SO_PEERCRED (the credentials
    /// the holder had when it called listen()). nil when it cannot be told (the holder is
    /// exiting, its queue is full).
    static func holder(of address: TransportAddress) -> Holder? {
        for _ in 0..<3 {
            let c = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard c >= 0 else { return nil }
            defer { close(c) }
            guard withAddress(address, { connect(c, $0, $1) }) == 0 else {
                if errno == EAGAIN { usleep(20_000); continue }
                return nil
            }
            // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (not exported without _GNU_SOURCE).
            var cred: (Int32, UInt32, UInt32) = (0, 0, 0)
            var len = socklen_t(MemoryLayout.size(ofValue: cred))
            guard getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0, cred.0 > 0 else { return nil }
            return Holder(pid: cred.0, command: command(of: cred.0))
        }
        return nil
    }

    /// Accepts and closes the connections of gateways that asked who holds the lock (each
    /// would otherwise sit in the listen queue until this process ends). Control thread, cheap.
    func answerProbes() {
        for _ in 0..<16 {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            close(c)
        }
    }

    /// /proc/PID/comm, for messages ("mbms-gateway").
    static func command(of pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return nil }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    /// The process holding a UDP port, whatever it is (for an EADDRINUSE on a unicast input):
    /// /proc/net/udp{,6} gives the socket's inode, /proc/PID/fd the process that has it open.
    /// Only processes of this user (or all, with privileges) can be seen; nil otherwise.
    static func udpPortHolder(_ address: TransportAddress) -> Holder? {
        var inodes = Set<String>()
        let hexPort = String(format: ":%04X", address.port)
        // The local address as the table prints it (the in-memory s_addr as a host-order hex
        // number: 127.0.0.1 is 0100007F here), or the wildcard, which conflicts with every address.
        var locals: Set<String> = []
        if case .v4(let ip) = address.address { locals = [String(format: "%08X", ip.byteSwapped), "00000000"] }
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                guard f.count > 9, f[1].hasSuffix(hexPort) else { continue }
                if !locals.isEmpty, table.hasSuffix("udp"), !locals.contains(String(f[1].dropLast(hexPort.count))) { continue }
                inodes.insert(String(f[9]))
            }
        }
        guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        let me = getpid()
        for p in pids {
            guard let pid = Int32(p), pid != me, let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/fd") else { continue }
            for f in fds {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/fd/\(f)"),
                      target.hasPrefix("socket:[") else { continue }
                if inodes.contains(String(target.dropFirst(8).dropLast())) { return Holder(pid: pid, command: command(of: pid)) }
            }
        }
        return nil
    }
}
#endif

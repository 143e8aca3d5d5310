#if canImport(Glibc)
import CSocketShims
import Glibc

/// Socket errors name the call, the address and errno's text.
public struct SocketError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var address: String
    public var errno: Int32
    public init(operation: String, address: String, errno: Int32) {
        self.operation = operation
        self.address = address
        self.errno = errno
    }
    public var description: String {
        "\(operation) \(address): \(String(cString: strerror(errno)))"
    }
}

/// Multicast and egress options for a UDP socket.
public struct UDPSocketOptions: Sendable, Equatable {
    /// Interface name for multicast join and egress (e.g. "eth0"); nil: the kernel's choice.
    public var interface: String?
    /// Multicast TTL / hop limit of sent datagrams.
    public var multicastTTL: UInt8?
    /// Whether our own multicast sends loop back to local receivers.
    public var multicastLoop: Bool?
    /// Unicast TTL / hop limit.
    public var unicastTTL: UInt8?
    /// SO_RCVBUF / SO_SNDBUF in bytes.
    public var receiveBufferBytes: Int32?
    public var sendBufferBytes: Int32?

    public init(interface: String? = nil, multicastTTL: UInt8? = nil, multicastLoop: Bool? = nil, unicastTTL: UInt8? = nil,
                receiveBufferBytes: Int32? = 4 << 20, sendBufferBytes: Int32? = 4 << 20) {
        self.interface = interface
        self.multicastTTL = multicastTTL
        self.multicastLoop = multicastLoop
        self.unicastTTL = unicastTTL
        self.receiveBufferBytes = receiveBufferBytes
        self.sendBufferBytes = sendBufferBytes
    }
}

/// One received or to-be-sent datagram in a batch: caller-owned buffer, peer address.
public struct DatagramSlot {
    public var bytes: UnsafeMutableRawPointer
    public var capacity: Int
    public var length: Int
    /// Source (after receive) or destination (for send).
    public var peer: TransportAddress?
    /// Local destination address the datagram was sent to (after receive; IP_PKTINFO).
    public var localDestination: IPAddress?

    public init(bytes: UnsafeMutableRawPointer, capacity: Int) {
        self.bytes = bytes
        self.capacity = capacity
        self.length = 0
    }
}

/// A UDP socket that moves datagrams in batches with recvmmsg/sendmmsg (one system call per
/// batch). The message headers are preallocated for `maxBatch` datagrams; nothing is
/// allocated per datagram.
public final class UDPBatchSocket {
    public let fd: Int32
    public let family: Int32
    public let maxBatch: Int
    public let localAddress: TransportAddress
    private let headers: UnsafeMutablePointer<mbms_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let controls: UnsafeMutableRawPointer
    private static let controlSize = 64

    /// Binds to `local` (use 0.0.0.0 or :: with the port to receive; port 0 for send-only).
    /// A multicast `local` address is joined on `options.interface` (and may be shared with other
    /// receivers); a unicast one is this socket's alone: a second bind fails with EADDRINUSE.
    public init(bind local: TransportAddress, options: UDPSocketOptions = UDPSocketOptions(), maxBatch: Int = 64) throws(SocketError) {
        let v6: Bool
        if case .v6 = local.address { v6 = true } else { v6 = false }
        family = v6 ? AF_INET6 : AF_INET
        let s = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { throw SocketError(operation: "socket", address: "\(local)", errno: errno) }
        fd = s
        self.maxBatch = max(1, maxBatch)
        headers = .allocate(capacity: self.maxBatch)
        iovecs = .allocate(capacity: self.maxBatch)
        names = .allocate(capacity: self.maxBatch)
        controls = .allocate(byteCount: Self.controlSize * self.maxBatch, alignment: 16)
        localAddress = local
        do {
            try configure(local: local, options: options, v6: v6)
        } catch {
            close(s)
            throw error
        }
    }

    private func configure(local: TransportAddress, options: UDPSocketOptions, v6: Bool) throws(SocketError) {
        var one: Int32 = 1
        // SO_REUSEADDR only for a multicast group, where every receiver on the host binds the
        // same group:port and each gets its own copy. On a unicast address it would let a second
        // socket with SO_REUSEADDR bind the same address and port and take (part of) the traffic
        // (issue 19 finding 3); UDP has no TIME_WAIT, so a restart needs no reuse. No SO_REUSEPORT.
        if local.address.isMulticast { _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4) }
        if let r = options.receiveBufferBytes { var v = r; _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, 4) }
        if let w = options.sendBufferBytes { var v = w; _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, 4) }
        if !v6 { _ = setsockopt(fd, Int32(IPPROTO_IP), IP_PKTINFO, &one, 4) }
        var storage = sockaddr_storage()
        let len = Self.fill(&storage, local)
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard rc == 0 else { throw SocketError(operation: "bind", address: "\(local)", errno: errno) }
        let ifIndex: UInt32 = options.interface.map { if_nametoindex($0) } ?? 0
        if let name = options.interface, ifIndex == 0 {
            throw SocketError(operation: "interface", address: name, errno: ENODEV)
        }
        if local.address.isMulticast { try join(local.address, interfaceIndex: ifIndex) }
        if v6 {
            if let t = options.multicastTTL { var v = Int32(t); _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, &v, 4) }
            if let l = options.multicastLoop { var v: Int32 = l ? 1 : 0; _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, &v, 4) }
            if let t = options.unicastTTL { var v = Int32(t); _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, &v, 4) }
            if ifIndex != 0 { var v = ifIndex; _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, &v, 4) }
        } else {
            if let t = options.multicastTTL { var v = t; _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, &v, 1) }
            if let l = options.multicastLoop { var v: UInt8 = l ? 1 : 0; _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, &v, 1) }
            if let t = options.unicastTTL { var v = Int32(t); _ = setsockopt(fd, Int32(IPPROTO_IP), IP_TTL, &v, 4) }
            if ifIndex != 0 {
                var m = ip_mreqn()
                m.imr_ifindex = Int32(ifIndex)
                _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, &m, socklen_t(MemoryLayout<ip_mreqn>.size))
            }
        }
    }

    /// Joins a multicast group (IPv4 IP_ADD_MEMBERSHIP with ip_mreqn, IPv6 IPV6_JOIN_GROUP).
    public func join(_ group: IPAddress, interfaceIndex: UInt32 = 0) throws(SocketError) {
        switch group {
        case .v4(let a):
            var m = ip_mreqn()
            m.imr_multiaddr.s_addr = a.bigEndian
            m.imr_ifindex = Int32(interfaceIndex)
            guard setsockopt(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &m, socklen_t(MemoryLayout<ip_mreqn>.size)) == 0 else {
                throw SocketError(operation: "join multicast group", address: "\(group)", errno: errno)
            }
        case .v6:
            var m = ipv6_mreq()
            var storage = sockaddr_storage()
            _ = Self.fill(&storage, TransportAddress(group, 0))
            withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { m.ipv6mr_multiaddr = $0.pointee.sin6_addr } }
            m.ipv6mr_interface = interfaceIndex
            guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_JOIN_GROUP, &m, socklen_t(MemoryLayout<ipv6_mreq>.size)) == 0 else {
                throw SocketError(operation: "join multicast group", address: "\(group)", errno: errno)
            }
        }
    }

    deinit {
        close(fd)
        headers.deallocate()
        iovecs.deallocate()
        names.deallocate()
        controls.deallocate()
    }

    /// Receives up to `slots.count` datagrams (at most `maxBatch`). Waits at most `timeoutMilliseconds`
    /// for the first (-1: forever, 0: don't wait). Returns how many slots were filled.
    public func receive(into slots: UnsafeMutableBufferPointer<DatagramSlot>, timeoutMilliseconds: Int32) throws(SocketError) -> Int {
        let n = min(slots.count, maxBatch)
        guard n > 0 else { return 0 }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, timeoutMilliseconds)
        if ready == 0 { return 0 }
        if ready < 0 {
            if errno == EINTR { return 0 }
            throw SocketError(operation: "poll", address: "\(localAddress)", errno: errno)
        }
        for i in 0..<n {
            iovecs[i] = iovec(iov_base: slots[i].bytes, iov_len: slots[i].capacity)
            headers[i] = mbms_mmsghdr()
            headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
            headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            headers[i].msg_hdr.msg_iov = iovecs + i
            headers[i].msg_hdr.msg_iovlen = 1
            headers[i].msg_hdr.msg_control = controls + i * Self.controlSize
            headers[i].msg_hdr.msg_controllen = Self.controlSize
        }
        let got = mbms_recvmmsg(fd, headers, UInt32(n), Int32(MSG_DONTWAIT))
        if got < 0 {
            if errno == EAGAIN || errno == EINTR { return 0 }
            throw SocketError(operation: "recvmmsg", address: "\(localAddress)", errno: errno)
        }
        for i in 0..<Int(got) {
            slots[i].length = Int(headers[i].msg_len)
            slots[i].peer = Self.address(names + i)
            slots[i].localDestination = Self.packetInfoDestination(&headers[i].msg_hdr)
        }
        return Int(got)
    }

    /// Sends the slots (each to its `peer`) with as few sendmmsg calls as possible.
    /// Returns how many were sent; a slot without a peer is skipped.
    @discardableResult
    public func send(_ slots: UnsafeMutableBufferPointer<DatagramSlot>) throws(SocketError) -> Int {
        var sent = 0
        var start = 0
        while start < slots.count {
            let n = min(slots.count - start, maxBatch)
            var k = 0
            for i in 0..<n {
                let slot = slots[start + i]
                guard let peer = slot.peer else { continue }
                let len = Self.fill(&names[k], peer)
                iovecs[k] = iovec(iov_base: slot.bytes, iov_len: slot.length)
                headers[k] = mbms_mmsghdr()
                headers[k].msg_hdr.msg_name = UnsafeMutableRawPointer(names + k)
                headers[k].msg_hdr.msg_namelen = len
                headers[k].msg_hdr.msg_iov = iovecs + k
                headers[k].msg_hdr.msg_iovlen = 1
                k += 1
            }
            var done = 0
            while done < k {
                let rc = mbms_sendmmsg(fd, headers + done, UInt32(k - done), 0)
                if rc < 0 {
                    if errno == EINTR { continue }
                    throw SocketError(operation: "sendmmsg", address: "\(localAddress)", errno: errno)
                }
                done += Int(rc)
            }
            sent += k
            start += n
        }
        return sent
    }

    /// The port the kernel bound (when bound to port 0).
    public var boundPort: UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Self.address(&storage)?.port ?? 0
    }

    static func fill(_ storage: UnsafeMutablePointer<sockaddr_storage>, _ a: TransportAddress) -> socklen_t {
        storage.pointee = sockaddr_storage()
        switch a.address {
        case .v4(let ip):
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { s in
                s.pointee.sin_family = sa_family_t(AF_INET)
                s.pointee.sin_port = a.port.bigEndian
                s.pointee.sin_addr.s_addr = ip.bigEndian
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
        case .v6(let h, let l):
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
                s.pointee.sin6_family = sa_family_t(AF_INET6)
                s.pointee.sin6_port = a.port.bigEndian
                withUnsafeMutableBytes(of: &s.pointee.sin6_addr) { b in
                    b.storeBytes(of: h.bigEndian, toByteOffset: 0, as: UInt64.self)
                    b.storeBytes(of: l.bigEndian, toByteOffset: 8, as: UInt64.self)
                }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }

    static func fill(_ storage: inout sockaddr_storage, _ a: TransportAddress) -> socklen_t {
        withUnsafeMutablePointer(to: &storage) { fill($0, a) }
    }

    static func address(_ storage: UnsafePointer<sockaddr_storage>) -> TransportAddress? {
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                TransportAddress(.v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)), UInt16(bigEndian: $0.pointee.sin_port))
            }
        case AF_INET6:
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
                var a = s.pointee.sin6_addr
                let (h, l) = withUnsafeBytes(of: &a) { b in
                    (UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt64.self)), UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
                }
                return TransportAddress(.v6(h, l), UInt16(bigEndian: s.pointee.sin6_port))
            }
        default: return nil
        }
    }

    static func address(_ storage: inout sockaddr_storage) -> TransportAddress? {
        withUnsafePointer(to: &storage) { address($0) }
    }

    /// IP_PKTINFO: the destination address of a received IPv4 datagram (multicast group or unicast).
    static func packetInfoDestination(_ msg: UnsafeMutablePointer<msghdr>) -> IPAddress? {
        guard msg.pointee.msg_controllen >= MemoryLayout<cmsghdr>.size, let control = msg.pointee.msg_control else { return nil }
        let c = control.assumingMemoryBound(to: cmsghdr.self)
        guard c.pointee.cmsg_level == IPPROTO_IP, c.pointee.cmsg_type == IP_PKTINFO else { return nil }
        let data = UnsafeRawPointer(c) + MemoryLayout<cmsghdr>.size
        let info = data.loadUnaligned(as: in_pktinfo.self)
        return .v4(UInt32(bigEndian: info.ipi_addr.s_addr))
    }
}
#endif

extension UDPBatchSocket {
    /// Datagrams the kernel dropped on this socket since it was opened, most of them because its
    /// receive buffer was full (the gateway fell behind its input): SK_MEMINFO_DROPS of
    /// getsockopt(SO_MEMINFO) (Linux ≥ 4.13; the `drops` column of /proc/net/udp). Nil where the
    /// kernel does not answer. Read by the control thread, never on the packet path.
    public func kernelDrops() -> UInt32? {
        #if os(Linux)
        // <asm-generic/socket.h> SO_MEMINFO = 55; <linux/sock_diag.h> SK_MEMINFO_VARS = 9, SK_MEMINFO_DROPS = 8.
        var info = [UInt32](repeating: 0, count: 9)
        var length = socklen_t(MemoryLayout<UInt32>.size * info.count)
        let rc = info.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, 55, $0.baseAddress, &length) }
        guard rc == 0, Int(length) >= MemoryLayout<UInt32>.size * 9 else { return nil }
        return info[8]
        #else
        return nil
        #endif
    }
}

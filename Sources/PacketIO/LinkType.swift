/// Link-layer header types we read and write (tcpdump.org LINKTYPE_ / DLT_ values).
public enum LinkType: Int32, Sendable, CaseIterable {
    /// BSD loopback: 4-octet host-order address family.
    case null = 0
    case ethernet = 1
    /// Raw IP (DLT_RAW as libpcap maps LINKTYPE_RAW 101 on Linux = 12).
    case rawLinux = 12
    case raw = 101
    /// OpenBSD loopback: 4-octet network-order address family.
    case loop = 108
    case linuxSLL = 113
    case ipv4 = 228
    case ipv6 = 229
    case linuxSLL2 = 276

    public var name: String {
        switch self {
        case .null: return "BSD loopback"
        case .ethernet: return "Ethernet"
        case .rawLinux, .raw: return "raw IP"
        case .loop: return "OpenBSD loopback"
        case .linuxSLL: return "Linux cooked v1"
        case .ipv4: return "raw IPv4"
        case .ipv6: return "raw IPv6"
        case .linuxSLL2: return "Linux cooked v2"
        }
    }
}

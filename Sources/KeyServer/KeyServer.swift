/// KeyServer: the pure protocol core of the BM-SC Key Request function (TS 33.246 4.1.2,
/// 6.2, 6.3.2, Annex F/G/H; `../shared/spec/keyserver.md`). GBA NAF-key derivations,
/// HTTP Digest (qop=auth-int) with nonce management, the XML bodies, and the request state
/// machine. No sockets, threads, clocks or global randomness: time and random bytes are
/// parameters. The HTTP front (Hummingbird) and the MIKEY delivery engine sit on top.
public enum KeyServerModule {
    /// Largest request body the key server accepts (bytes). Bodies are small XML lists.
    public static let maximumBodyBytes = 64 * 1024
}

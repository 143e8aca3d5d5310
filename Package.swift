// swift-tools-version: 6.0
import PackageDescription

// Module map: ../shared/DESIGN.md §3. CryptoCore is the only module that talks to OpenSSL;
// SRTP, MIKEY, FLUTE and DCF are pure codecs; PacketIO owns pcap and sockets.
// The packet path's modules: Swift's run-time exclusivity checks (swift_beginAccess on every
// class-property access, a thread-local lookup each) cost ~7 % of `replay` (perf). They stay
// on in debug builds, where the whole test suite runs with them; release builds of these
// modules rely on the static checks only.
let dataPlane: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "mbms-gateway",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mbms-gateway", targets: ["mbms-gateway"]),
        .library(name: "CryptoCore", targets: ["CryptoCore"]),
        .library(name: "SRTP", targets: ["SRTP"]),
        .library(name: "PacketIO", targets: ["PacketIO"]),
        .library(name: "MIKEY", targets: ["MIKEY"]),
        .library(name: "KeyManagement", targets: ["KeyManagement"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        .library(name: "FLUTE", targets: ["FLUTE"]),
        .library(name: "DCF", targets: ["DCF"]),
        .library(name: "Receiver", targets: ["Receiver"]),
        .library(name: "KeyServer", targets: ["KeyServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // Live mode (`run`): stop flag and counters, logs, metrics and their Prometheus exposition.
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // `keyserver`: the Key Request function's HTTP/HTTPS front (DESIGN.md §11).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.0.0"),
    ],
    targets: [
        // System libraries (C). Debian: libssl-dev, libpcap-dev, libsrtp2-dev.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap",
                       providers: [.apt(["libpcap-dev"])]),
        // Debian's libsrtp2 (built on NSS): an independent SRTP implementation, used only by
        // interop tests and benchmarks, never by the product.
        .systemLibrary(name: "CLibSRTP", path: "Tools/CLibSRTP", pkgConfig: "libsrtp2",
                       providers: [.apt(["libsrtp2-dev"])]),

        // Multi-message HMAC-SHA1 (interleaved SHA-NI lanes, scalar/OpenSSL fallback); SHA-NI code
        // is enabled per function (target attributes), so no global -m flags.
        .target(name: "CMultiHash", dependencies: ["COpenSSL"], cSettings: [.unsafeFlags(["-O3"])]),
        // Batched AES-CM: own VAES kernel where CPUID reports VAES + AVX2, else counter blocks of
        // many packets through one OpenSSL AES-ECB call and an AVX2 XOR (target attributes,
        // CPUID dispatch, no global -m flags).
        .target(name: "CBatchAES", dependencies: ["COpenSSL"], cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CryptoCore", dependencies: ["COpenSSL", "CMultiHash", "CBatchAES"], swiftSettings: dataPlane),
        .target(name: "SRTP", dependencies: ["CryptoCore"], swiftSettings: dataPlane),
        .systemLibrary(name: "CSocketShims"),
        .target(name: "CMapGuard"),
        // RFC 1071 sums of long regions (AVX2 where CPUID has it): replay's UDP checksums.
        .target(name: "CInternetChecksum", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "PacketIO", dependencies: ["CPcap", "CSocketShims", "CMapGuard", "CInternetChecksum", .product(name: "Atomics", package: "swift-atomics")],
                swiftSettings: dataPlane),
        .target(name: "MIKEY", dependencies: ["CryptoCore"]),
        // Key groups, MSK lifecycle, MTK time grid, key store (SQLite via GRDB; Debian: libsqlite3-dev).
        .target(
            name: "KeyManagement",
            dependencies: [
                "CryptoCore", "MIKEY",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
            ]),

        // The streaming (and later download) data plane: sessions, key epochs, the protect path, MIKEY injection, replay.
        .target(
            name: "Gateway",
            dependencies: [
                "SRTP", "MIKEY", "KeyManagement", "PacketIO", "CryptoCore", "FLUTE", "DCF",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: dataPlane),
        // The bounded XML reader (no DTDs or entities) FDT Instances and key-request bodies share.
        .target(name: "BoundedXML", dependencies: []),
        .target(name: "FLUTE", dependencies: ["BoundedXML"]),
        .target(name: "DCF", dependencies: ["CryptoCore"]),
        // The UE side: MIKEY MTK messages through the MGV-F checks, SRTP/SRTCP unprotect, rule checks.
        .target(name: "Receiver", dependencies: ["SRTP", "MIKEY", "PacketIO", "CryptoCore", "KeyManagement", "FLUTE", "DCF"]),
        // The BM-SC Key Request function's pure core (DESIGN.md §11): GBA NAF keys, Digest, XML bodies, request state machine.
        .target(name: "KeyServer", dependencies: ["CryptoCore", "MIKEY", "KeyManagement", "PacketIO", "BoundedXML"]),
        // Its HTTP/HTTPS front (`mbms-gateway keyserver`): Hummingbird listeners, TLS profile, body
        // caps and read timeouts, metrics; every request goes through KeyServer's pure handler.
        .target(
            name: "KeyServerHTTP",
            dependencies: [
                "KeyServer", "KeyManagement",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        .executableTarget(
            name: "mbms-gateway",
            dependencies: [
                "CryptoCore", "SRTP", "KeyManagement", "Gateway", "PacketIO", "Receiver",
                "KeyServer", "KeyServerHTTP",
                "CBenchFloor", "CMallocCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]),
        // `mbms-gateway bench` only: the OpenSSL floor (C) and Debian's libsrtp2 loaded with
        // dlopen (the product never links libsrtp2), and the executable's counting malloc.
        .target(name: "CBenchFloor", dependencies: ["COpenSSL"], cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CMallocCounter", cSettings: [.unsafeFlags(["-O2"])]),

        // SRTP protect benchmark: ours vs Debian libsrtp2 (linked) vs the OpenSSL floor (CBenchFloor).
        .executableTarget(
            name: "srtp-bench",
            dependencies: ["CryptoCore", "SRTP", "CLibSRTP", "CBenchFloor"],
            path: "Benchmarks/SRTPBenchmark"),

        // Helpers shared by the test targets (external tools, seeded PRNG); not shipped.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CryptoCoreTests", dependencies: ["CryptoCore"]),
        .testTarget(name: "MultiHashTests", dependencies: ["TestSupport", "CryptoCore"]),
        .testTarget(name: "BatchAESTests", dependencies: ["TestSupport", "CryptoCore"]),
        .testTarget(name: "SRTPTests", dependencies: ["TestSupport", "SRTP", "CryptoCore", "CLibSRTP"]),
        .testTarget(name: "PacketIOTests", dependencies: ["TestSupport", "PacketIO", "CPcap", "CInternetChecksum"]),
        .testTarget(name: "GatewayTests", dependencies: ["TestSupport", "Gateway", "KeyManagement", "MIKEY", "SRTP", "PacketIO", "CryptoCore", "FLUTE", "DCF", "Receiver", "KeyServer"]),
        .testTarget(name: "MIKEYTests", dependencies: ["TestSupport", "MIKEY", "CryptoCore"]),
        // Child process for the kill-during-writes test of KeyManagementTests.
        .executableTarget(name: "keystore-torture", dependencies: ["KeyManagement", "CryptoCore"],
                          path: "Tests/KeyStoreTorture"),
        .testTarget(name: "KeyManagementTests", dependencies: ["TestSupport", "KeyManagement", "MIKEY", "CryptoCore"]),
        .testTarget(name: "FLUTETests", dependencies: ["FLUTE"]),
        .testTarget(name: "DCFTests", dependencies: ["DCF", "CryptoCore"]),
        // Vectors/keyserver.json: a copy of ../shared/spec/vectors/keyserver.json.
        .testTarget(name: "KeyServerTests", dependencies: ["KeyServer", "CryptoCore", "MIKEY", "TestSupport"],
                    resources: [.copy("Vectors")]),
        // End-to-end: `mbms-gateway keyserver` as a child process driven by curl, openssl s_client
        // and Tools/keyserver_client.py (an independent Digest client).
        .testTarget(name: "KeyServerHTTPTests", dependencies: ["TestSupport", "KeyServer", "KeyManagement", "CryptoCore", "MIKEY", "PacketIO"]),
        .testTarget(name: "ReceiverTests", dependencies: ["TestSupport", "Receiver", "SRTP", "MIKEY", "PacketIO", "CryptoCore", "KeyManagement", "CLibSRTP"]),
    ]
)

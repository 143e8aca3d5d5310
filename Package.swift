// swift-tools-version: 6.0
import PackageDescription

// Module map: ../shared/DESIGN.md §3. CryptoCore is the only module that talks to OpenSSL;
// SRTP, MIKEY, FLUTE and DCF are pure codecs; PacketIO owns pcap and sockets.
let package = Package(
    name: "mbms-gateway",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mbms-gateway", targets: ["mbms-gateway"]),
        .library(name: "CryptoCore", targets: ["CryptoCore"]),
        .library(name: "SRTP", targets: ["SRTP"]),
        .library(name: "FLUTE", targets: ["FLUTE"]),
        .library(name: "DCF", targets: ["DCF"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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

        .target(name: "CryptoCore", dependencies: ["COpenSSL"]),
        .target(name: "SRTP", dependencies: ["CryptoCore"]),
        .target(name: "FLUTE", dependencies: []),
        .target(name: "DCF", dependencies: ["CryptoCore"]),

        .executableTarget(
            name: "mbms-gateway",
            dependencies: [
                "CryptoCore", "SRTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .executableTarget(
            name: "srtp-bench",
            dependencies: ["CryptoCore", "SRTP", "CLibSRTP", "COpenSSL"],
            path: "Benchmarks/SRTPBenchmark",
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]),

        .testTarget(name: "CryptoCoreTests", dependencies: ["CryptoCore"]),
        .testTarget(name: "SRTPTests", dependencies: ["SRTP", "CryptoCore", "CLibSRTP"]),
        .testTarget(name: "FLUTETests", dependencies: ["FLUTE"]),
        .testTarget(name: "DCFTests", dependencies: ["DCF", "CryptoCore"]),
    ]
)

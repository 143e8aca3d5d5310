// swift-tools-version: 6.0
import PackageDescription

// Coverage-guided fuzz targets (libFuzzer) for the gateway's decoders — issue 19 finding 12.
// A separate package so the product's manifest stays free of sanitizer-only targets; it uses
// the root package's library products by path. Build and run with `make fuzz` / `make
// fuzz-smoke` from the repository root (release, `-sanitize=fuzzer,address`); see README.md.
let package = Package(
    name: "mbms-gateway-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "mbms-gateway", path: "..")],
    targets: [
        // libFuzzer driver, input framing, seed writing, fixture readers.
        .target(name: "FuzzSupport"),
        .executableTarget(name: "fuzz-srtp", dependencies: [
            "FuzzSupport",
            .product(name: "SRTP", package: "mbms-gateway"),
            .product(name: "CryptoCore", package: "mbms-gateway"),
            .product(name: "PacketIO", package: "mbms-gateway"),
            .product(name: "Receiver", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-mikey", dependencies: [
            "FuzzSupport",
            .product(name: "MIKEY", package: "mbms-gateway"),
            .product(name: "CryptoCore", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-flute", dependencies: [
            "FuzzSupport",
            .product(name: "FLUTE", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-dcf", dependencies: [
            "FuzzSupport",
            .product(name: "DCF", package: "mbms-gateway"),
            .product(name: "CryptoCore", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-pcap", dependencies: [
            "FuzzSupport",
            .product(name: "PacketIO", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-config", dependencies: [
            "FuzzSupport",
            .product(name: "KeyManagement", package: "mbms-gateway"),
        ]),
        .executableTarget(name: "fuzz-keyserver", dependencies: [
            "FuzzSupport",
            .product(name: "KeyServer", package: "mbms-gateway"),
            .product(name: "MIKEY", package: "mbms-gateway"),
            .product(name: "CryptoCore", package: "mbms-gateway"),
        ]),
    ],
    // The harnesses keep per-process state in globals used from libFuzzer's C callback, one
    // thread: Swift 5 mode (the product's code keeps its Swift 6 checks).
    swiftLanguageModes: [.v5]
)

// swift-tools-version:6.0
// The SmolVLM Swift package: add it by URL in Xcode or in a Package.swift, and `import SmolVLM`.
//
// Three targets: the public Swift API (`SmolVLM`, ios/Sources/SmolVLM), the Swift bindings that
// uniffi generates from the Rust library (`SmolVLMFFI`, an implementation detail that the API
// imports internally), and the Rust library itself with its C header (`SmolVLMFFIC`). The
// generated files are committed (tools/test_bindings.sh checks they match the library).
//
// Where `SmolVLMFFIC` comes from:
// - A release: the XCFramework zip attached to it, by URL and checksum. The release's tagged
//   commit sets `release` below to what `tools/build_xcframework.sh --release URL` prints.
// - Otherwise, on Apple platforms: the XCFramework that `tools/build_xcframework.sh` builds into
//   target/ios/ (build it once before opening the package in Xcode).
// - On Linux (unless SMOLVLM_HOST_LIBRARY=0), or with SMOLVLM_HOST_LIBRARY=1: the Rust library
//   built for the machine itself (`cargo build -p smolvlm-ffi`), linked by name; pass its folder
//   to SwiftPM, e.g. `swift test -Xlinker -L target/debug` (how CI runs the tests).
import PackageDescription

/// The release's XCFramework (`nil` on the main branch).
let release: (url: String, checksum: String)? = nil

/// Whether to link the host library instead of the XCFramework: SMOLVLM_HOST_LIBRARY=1 or 0 if
/// set, else on Linux only.
let hostLibrary: Bool = {
    if let choice = Context.environment["SMOLVLM_HOST_LIBRARY"] { return choice == "1" }
    #if os(Linux)
    return true
    #else
    return false
    #endif
}()

let native: Target =
    if hostLibrary {
        .target(
            name: "SmolVLMFFIC",
            path: "ios/Sources/SmolVLMFFIC",
            linkerSettings: [.linkedLibrary("smolvlm_ffi")]
        )
    } else if let release {
        .binaryTarget(name: "SmolVLMFFIC", url: release.url, checksum: release.checksum)
    } else {
        .binaryTarget(name: "SmolVLMFFIC", path: "target/ios/SmolVLMFFIC.xcframework")
    }

let package = Package(
    name: "SmolVLM",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "SmolVLM", targets: ["SmolVLM"])],
    targets: [
        native,
        .target(
            name: "SmolVLMFFI",
            dependencies: ["SmolVLMFFIC"],
            path: "ios/Sources/SmolVLMFFI",
            swiftSettings: [.swiftLanguageMode(.v5)],
            // What the static library calls into (tools/test_ios_native.sh checks this list
            // against its undefined symbols).
            linkerSettings: [
                .linkedFramework("CoreFoundation", .when(platforms: [.iOS, .macOS])),
                .linkedFramework("Foundation", .when(platforms: [.iOS, .macOS])),
                .linkedFramework("Metal", .when(platforms: [.iOS, .macOS])),
            ]
        ),
        .target(name: "SmolVLM", dependencies: ["SmolVLMFFI"], path: "ios/Sources/SmolVLM"),
        .testTarget(
            name: "SmolVLMTests",
            dependencies: ["SmolVLM", "SmolVLMFFI"],
            path: "ios/Tests/SmolVLMTests"
        ),
    ]
)

// swift-tools-version:6.0
// The SmolVLM Swift package: a thin, hand-written Swift API (`SmolVLM`) over the uniffi-generated
// bindings (`SmolVLMFFI`, with its C header module `SmolVLMFFIC`). `tools/test_bindings.sh`
// generates those two from the built library; on Apple platforms link the XCFramework built
// from the `staticlib` instead of the `-L` flags below.
import PackageDescription

// Folder holding libsmolvlm_ffi (.so/.dylib); the test script sets it.
let libDir = Context.environment["SMOLVLM_LIB_DIR"] ?? "../target/debug"

let package = Package(
    name: "SmolVLM",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "SmolVLM", targets: ["SmolVLM"])],
    targets: [
        .target(name: "SmolVLMFFIC", path: "Sources/SmolVLMFFIC"),
        .target(
            name: "SmolVLMFFI",
            dependencies: ["SmolVLMFFIC"],
            path: "Sources/SmolVLMFFI",
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: [.unsafeFlags(["-L", libDir]), .linkedLibrary("smolvlm_ffi")]
        ),
        .target(name: "SmolVLM", dependencies: ["SmolVLMFFI"], path: "Sources/SmolVLM"),
        .testTarget(name: "SmolVLMTests", dependencies: ["SmolVLM"], path: "Tests/SmolVLMTests"),
    ]
)

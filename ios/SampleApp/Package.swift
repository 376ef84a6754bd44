// swift-tools-version:6.0
// The camera sample's platform-neutral state (`SampleState`: Foundation and the SDK only) and its
// tests, which run on Linux against the real library (`test.sh`). The iOS app itself (`App/`) is
// an Xcode project generated from `project.yml`, which links the `SampleState` product below.
import PackageDescription

let package = Package(
    name: "SmolVLMSample",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [.library(name: "SampleState", targets: ["SampleState"])],
    dependencies: [.package(name: "SmolVLM", path: "../..")],
    targets: [
        .target(
            name: "SampleState",
            dependencies: [.product(name: "SmolVLM", package: "SmolVLM")],
            path: "State"
        ),
        .testTarget(name: "SampleStateTests", dependencies: ["SampleState"], path: "Tests"),
    ]
)

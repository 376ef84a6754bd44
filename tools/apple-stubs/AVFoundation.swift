// Stand-in for Apple's AVFoundation (see README.md): only what the SDK's helpers use. The
// AVAsset properties are read with the async `load(_:)` API (iOS 15, macOS 12).
@_exported import CoreGraphics
@_exported import CoreMedia
@_exported import Foundation

public struct AVMediaType: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let video = AVMediaType(rawValue: "vide")
}

open class AVPartialAsyncProperty<Root> {}

open class AVAsyncProperty<Root, Value>: AVPartialAsyncProperty<Root> {}

public protocol AVAsynchronousKeyValueLoading {}

extension AVAsynchronousKeyValueLoading {
    public func load<T>(_ property: AVAsyncProperty<Self, T>) async throws -> T { fatalError("stand-in") }
}

open class AVAsset: AVAsynchronousKeyValueLoading {
    open func loadTracks(withMediaType mediaType: AVMediaType) async throws -> [AVAssetTrack] { fatalError("stand-in") }
}

open class AVURLAsset: AVAsset {
    public init(url URL: URL, options: [String: Any]? = nil) { fatalError("stand-in") }
}

open class AVAssetTrack: AVAsynchronousKeyValueLoading {}

extension AVPartialAsyncProperty where Root: AVAsset {
    public static var duration: AVAsyncProperty<Root, CMTime> { fatalError("stand-in") }
}

extension AVPartialAsyncProperty where Root: AVAssetTrack {
    public static var nominalFrameRate: AVAsyncProperty<Root, Float> { fatalError("stand-in") }
}

open class AVAssetImageGenerator {
    public init(asset: AVAsset) { fatalError("stand-in") }
    open var appliesPreferredTrackTransform: Bool { get { fatalError("stand-in") } set { fatalError("stand-in") } }
    open var requestedTimeToleranceBefore: CMTime { get { fatalError("stand-in") } set { fatalError("stand-in") } }
    open var requestedTimeToleranceAfter: CMTime { get { fatalError("stand-in") } set { fatalError("stand-in") } }
    @available(iOS 16, macOS 13, *)
    open func image(at requestedTime: CMTime) async throws -> (image: CGImage, actualTime: CMTime) { fatalError("stand-in") }
    @available(iOS, deprecated: 16)
    @available(macOS, deprecated: 13)
    open func copyCGImage(at requestedTime: CMTime, actualTime: UnsafeMutablePointer<CMTime>?) throws -> CGImage {
        fatalError("stand-in")
    }
}

// Stand-in for Apple's CoreMedia (see README.md): only what the SDK's helpers use.
public typealias CMTimeScale = Int32

public struct CMTime: Sendable {
    public init(seconds: Double, preferredTimescale: CMTimeScale) { fatalError("stand-in") }
    public var seconds: Double { fatalError("stand-in") }
    public static var zero: CMTime { fatalError("stand-in") }
}

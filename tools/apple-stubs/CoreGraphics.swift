// Stand-in for Apple's CoreGraphics (see README.md): only what the SDK's helpers use.
@_exported import Foundation

public final class CGImage {
    public var width: Int { fatalError("stand-in") }
    public var height: Int { fatalError("stand-in") }
}

public final class CGColorSpace {
    public init?(name: CFString) { fatalError("stand-in") }
    public static var sRGB: CFString { fatalError("stand-in") }
}

public typealias CFString = String

public enum CGImageAlphaInfo: UInt32 {
    case none = 0, premultipliedLast, premultipliedFirst, last, first, noneSkipLast, noneSkipFirst, alphaOnly
}

public struct CGBitmapInfo: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let byteOrder32Big = CGBitmapInfo(rawValue: 4 << 12)
}

public final class CGContext {
    public init?(
        data: UnsafeMutableRawPointer?, width: Int, height: Int, bitsPerComponent: Int, bytesPerRow: Int,
        space: CGColorSpace, bitmapInfo: UInt32
    ) { fatalError("stand-in") }
    public func draw(_ image: CGImage, in rect: CGRect) { fatalError("stand-in") }
}

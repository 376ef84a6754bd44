// Stand-in for Apple's UIKit (see README.md): only what the SDK's helpers use.
@_exported import CoreGraphics
@_exported import Foundation

open class UIImage {
    public enum Orientation: Int {
        case up, down, left, right, upMirrored, downMirrored, leftMirrored, rightMirrored
    }
    open var cgImage: CGImage? { fatalError("stand-in") }
    open var imageOrientation: Orientation { fatalError("stand-in") }
    open var size: CGSize { fatalError("stand-in") }
    open var scale: CGFloat { fatalError("stand-in") }
    open func draw(at point: CGPoint) { fatalError("stand-in") }
}

open class UIGraphicsImageRendererFormat {
    open class func `default`() -> UIGraphicsImageRendererFormat { fatalError("stand-in") }
    open var scale: CGFloat { get { fatalError("stand-in") } set { fatalError("stand-in") } }
}

open class UIGraphicsImageRendererContext {}

open class UIGraphicsImageRenderer {
    public init(size: CGSize, format: UIGraphicsImageRendererFormat) { fatalError("stand-in") }
    open func image(actions: (UIGraphicsImageRendererContext) -> Void) -> UIImage { fatalError("stand-in") }
}

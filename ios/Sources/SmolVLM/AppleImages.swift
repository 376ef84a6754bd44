// Converters from Apple image types. They exist only where CoreGraphics, ImageIO, UIKit and
// CoreVideo do (Apple platforms); the rest of the package builds on Linux without them. CI
// type-checks this file on Linux against stand-in modules of exactly the API it uses
// (tools/apple-stubs).

#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension ImageInput {
    /// Converts a `CGImage` (any colour space or pixel layout) by drawing it into an RGBA8888
    /// buffer.
    ///
    /// - Parameter orientation: how to turn the stored pixels upright, e.g. a photo's EXIF
    ///   orientation as `CGImagePropertyOrientation(rawValue:)` gives it, or
    ///   ``ImageOrientation/camera(rotationAngle:mirrored:)`` for camera output.
    /// - Throws: `.invalidImage` if the image cannot be drawn.
    public static func cgImage(_ image: CGImage, orientation: ImageOrientation = .up) throws -> ImageInput {
        let (w, h) = (image.width, image.height)
        var rgba = Data(count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { raw in
            guard let space = CGColorSpace(name: CGColorSpace.sRGB),
                let ctx = CGContext(
                    data: raw.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4, space: space,
                    bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue | CGBitmapInfo.byteOrder32Big.rawValue)
            else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { throw SmolVLMError.invalidImage(reason: "cannot draw a \(w)x\(h) CGImage") }
        return try oriented(orientation) { degrees in
            try pixels(rgba, format: .rgba8888, width: w, height: h, rowStride: w * 4, rotationDegrees: degrees)
        }
    }
}

#endif

#if canImport(ImageIO)
import ImageIO

extension ImageOrientation {
    /// The same orientation as a `CGImagePropertyOrientation` (EXIF's numbering).
    public init(_ orientation: CGImagePropertyOrientation) {
        self = ImageOrientation(rawValue: orientation.rawValue) ?? .up
    }
}
#endif

#if canImport(UIKit)
import UIKit

extension ImageOrientation {
    /// The same orientation as a `UIImage.Orientation`.
    public init(_ orientation: UIImage.Orientation) {
        switch orientation {
        case .up: self = .up
        case .upMirrored: self = .upMirrored
        case .down: self = .down
        case .downMirrored: self = .downMirrored
        case .left: self = .left
        case .leftMirrored: self = .leftMirrored
        case .right: self = .right
        case .rightMirrored: self = .rightMirrored
        @unknown default: self = .up
        }
    }
}

extension ImageInput {
    /// Converts a `UIImage` (a photo from the library or the camera), upright as UIKit shows it:
    /// its `imageOrientation` is applied, mirrored ones included (a front-camera photo).
    ///
    /// - Throws: `.invalidImage` if the image has no bitmap to read.
    public static func uiImage(_ image: UIImage) throws -> ImageInput {
        if let cg = image.cgImage {
            return try cgImage(cg, orientation: ImageOrientation(image.imageOrientation))
        }
        // A CIImage-backed image: render it (upright) through UIKit.
        let format = UIGraphicsImageRendererFormat.default()
        format.scale = image.scale
        let rendered = UIGraphicsImageRenderer(size: image.size, format: format).image { _ in
            image.draw(at: .zero)
        }
        guard let cg = rendered.cgImage else {
            throw SmolVLMError.invalidImage(reason: "the UIImage has no bitmap (\(image.size.width)x\(image.size.height))")
        }
        return try cgImage(cg)
    }
}
#endif

#if canImport(CoreVideo)
import CoreVideo
import Foundation

extension ImageInput {
    /// Converts a camera `CVPixelBuffer` (`AVCaptureVideoDataOutput`): 32BGRA, or bi-planar
    /// 4:2:0 (`420YpCbCr8BiPlanarFullRange` "420f" / `…VideoRange` "420v"), honouring its row
    /// strides.
    ///
    /// - Parameter orientation: how to turn the buffer upright:
    ///   ``ImageOrientation/camera(rotationAngle:mirrored:)`` from the capture connection
    ///   (`.right` for the back camera of a phone held in portrait).
    /// - Throws: `.invalidImage` for another pixel format.
    public static func pixelBuffer(_ buffer: CVPixelBuffer, orientation: ImageOrientation = .up) throws -> ImageInput {
        try oriented(orientation) { try convert(buffer, rotationDegrees: $0, deferred: false) }
    }

    /// A camera `CVPixelBuffer` for ``LiveCamera/push(_:timestampMs:)``: its planes are copied
    /// (the buffer can be reused right after) and converted only if the live loop takes the
    /// frame; most are dropped unconverted. Same formats as ``pixelBuffer(_:orientation:)``.
    public static func frame(pixelBuffer buffer: CVPixelBuffer, orientation: ImageOrientation = .up) throws -> ImageInput {
        try oriented(orientation) { try convert(buffer, rotationDegrees: $0, deferred: true) }
    }

    private static func convert(_ buffer: CVPixelBuffer, rotationDegrees: Int, deferred: Bool) throws -> ImageInput {
        guard CVPixelBufferLockBaseAddress(buffer, .readOnly) == kCVReturnSuccess else {
            throw SmolVLMError.invalidImage(reason: "cannot lock the CVPixelBuffer")
        }
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let (w, h) = (CVPixelBufferGetWidth(buffer), CVPixelBufferGetHeight(buffer))
        let format = CVPixelBufferGetPixelFormatType(buffer)
        // The bytes are read (or copied, for a deferred frame) before the buffer is unlocked.
        func bytes(_ base: UnsafeMutableRawPointer?, _ count: Int) throws -> Data {
            guard let base else { throw SmolVLMError.invalidImage(reason: "the CVPixelBuffer has no pixel data") }
            return Data(bytesNoCopy: base, count: count, deallocator: .none)
        }
        switch format {
        case kCVPixelFormatType_32BGRA:
            let stride = CVPixelBufferGetBytesPerRow(buffer)
            let data = try bytes(CVPixelBufferGetBaseAddress(buffer), stride * h)
            return try packed(data, .bgra8888, w, h, stride, 0, rotationDegrees, deferred: deferred)
        case kCVPixelFormatType_420YpCbCr8BiPlanarFullRange, kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange:
            let (yStride, uvStride) = (CVPixelBufferGetBytesPerRowOfPlane(buffer, 0), CVPixelBufferGetBytesPerRowOfPlane(buffer, 1))
            let y = try bytes(CVPixelBufferGetBaseAddressOfPlane(buffer, 0), yStride * CVPixelBufferGetHeightOfPlane(buffer, 0))
            let uv = try bytes(CVPixelBufferGetBaseAddressOfPlane(buffer, 1), uvStride * CVPixelBufferGetHeightOfPlane(buffer, 1))
            let range: YuvColorRange = format == kCVPixelFormatType_420YpCbCr8BiPlanarFullRange ? .full : .limited
            // The interleaved CbCr plane is read as U from its first byte and V from its second.
            return try planar(y, uv, uv.dropFirst(), w, h, yStride, uvStride, 2, rotationDegrees, range, deferred: deferred)
        default:
            throw SmolVLMError.invalidImage(reason: "unsupported CVPixelBuffer format \(format)")
        }
    }
}
#endif

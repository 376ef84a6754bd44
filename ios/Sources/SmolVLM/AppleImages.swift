// Converters from Apple image types. They exist only where CoreGraphics / CoreVideo do (Apple
// platforms); the rest of the package builds on Linux without them.

#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension ImageInput {
    /// Converts a `CGImage` by drawing it into an RGBA8888 buffer (any colour space or layout).
    ///
    /// - Parameter rotationDegrees: clockwise rotation that makes the image upright (e.g. from
    ///   `UIImage.imageOrientation`).
    public static func cgImage(_ image: CGImage, rotationDegrees: Int = 0) throws -> ImageInput {
        let (w, h) = (image.width, image.height)
        var rgba = Data(count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { raw in
            guard let ctx = CGContext(
                data: raw.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                space: CGColorSpace(name: CGColorSpace.sRGB)!,
                bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue | CGBitmapInfo.byteOrder32Big.rawValue
            ) else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { throw SmolVlmError.InvalidImage(reason: "cannot draw a \(w)x\(h) CGImage") }
        return try pixels(rgba, format: .rgba8888, width: w, height: h, rowStride: w * 4, rotationDegrees: rotationDegrees)
    }
}
#endif

#if canImport(CoreVideo)
import CoreVideo
import Foundation

extension ImageInput {
    /// Converts a camera `CVPixelBuffer` (`AVCaptureVideoDataOutput`): 32BGRA, or bi-planar
    /// 4:2:0 (`420YpCbCr8BiPlanarFullRange` / `…VideoRange`), honouring its row strides.
    ///
    /// - Parameter rotationDegrees: clockwise rotation that makes the frame upright (90 for the
    ///   back camera of a phone held in portrait with the default landscape-right buffers).
    public static func pixelBuffer(_ buffer: CVPixelBuffer, rotationDegrees: Int = 0) throws -> ImageInput {
        try convert(buffer, rotationDegrees: rotationDegrees, deferred: false)
    }

    /// A camera `CVPixelBuffer` for ``LiveCamera/push(_:timestampMs:)``: its planes are copied
    /// (the buffer can be reused right after) and converted only if the live loop takes the
    /// frame; most are dropped unconverted. Same formats as ``pixelBuffer(_:rotationDegrees:)``.
    public static func frame(pixelBuffer buffer: CVPixelBuffer, rotationDegrees: Int = 0) throws -> ImageInput {
        try convert(buffer, rotationDegrees: rotationDegrees, deferred: true)
    }

    private static func convert(_ buffer: CVPixelBuffer, rotationDegrees: Int, deferred: Bool) throws -> ImageInput {
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let (w, h) = (CVPixelBufferGetWidth(buffer), CVPixelBufferGetHeight(buffer))
        func plane(_ i: Int) -> (Data, Int) {
            let stride = CVPixelBufferGetBytesPerRowOfPlane(buffer, i)
            let rows = CVPixelBufferGetHeightOfPlane(buffer, i)
            let base = CVPixelBufferGetBaseAddressOfPlane(buffer, i)!
            return (Data(bytesNoCopy: base, count: stride * rows, deallocator: .none), stride)
        }
        switch CVPixelBufferGetPixelFormatType(buffer) {
        case kCVPixelFormatType_32BGRA:
            let stride = CVPixelBufferGetBytesPerRow(buffer)
            let base = CVPixelBufferGetBaseAddress(buffer)!
            let data = Data(bytesNoCopy: base, count: stride * h, deallocator: .none)
            if deferred {
                return try frame(data, format: .bgra8888, width: w, height: h, rowStride: stride, rotationDegrees: rotationDegrees)
            }
            return try pixels(data, format: .bgra8888, width: w, height: h, rowStride: stride, rotationDegrees: rotationDegrees)
        case kCVPixelFormatType_420YpCbCr8BiPlanarFullRange, kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange:
            let (y, yStride) = plane(0)
            let (uv, uvStride) = plane(1)
            let full = CVPixelBufferGetPixelFormatType(buffer) == kCVPixelFormatType_420YpCbCr8BiPlanarFullRange
            let range: YuvColorRange = full ? .full : .limited
            if deferred {
                return try frameYuv420(
                    y: y, u: uv, v: uv.dropFirst(), width: w, height: h,
                    yRowStride: yStride, uvRowStride: uvStride, uvPixelStride: 2,
                    rotationDegrees: rotationDegrees, range: range)
            }
            return try yuv420(
                y: y, u: uv, v: uv.dropFirst(), width: w, height: h,
                yRowStride: yStride, uvRowStride: uvStride, uvPixelStride: 2,
                rotationDegrees: rotationDegrees, range: range)
        default:
            throw SmolVlmError.InvalidImage(reason: "unsupported CVPixelBuffer format \(CVPixelBufferGetPixelFormatType(buffer))")
        }
    }
}
#endif

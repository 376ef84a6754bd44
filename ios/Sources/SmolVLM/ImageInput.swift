import Foundation
internal import SmolVLMFFI

/// An image ready to be asked about: decoded from a file or encoded bytes (EXIF orientation
/// applied), or converted from raw camera pixels. Immutable and thread-safe; one image can be
/// used in several questions and chats.
///
/// On Apple platforms `CGImage`, `UIImage` and `CVPixelBuffer` convert with
/// ``cgImage(_:orientation:)``, `uiImage(_:)`, ``pixelBuffer(_:orientation:)`` and
/// ``frame(pixelBuffer:orientation:)``.
public struct ImageInput: Sendable {
    let raw: SmolVLMFFI.ImageInput

    init(raw: SmolVLMFFI.ImageInput) { self.raw = raw }

    /// Reads an image file (JPEG, PNG, WebP, GIF, BMP; EXIF orientation applied).
    ///
    /// - Throws: `.invalidImage` if the file is missing, unreadable or not a supported image.
    public static func file(_ path: String) throws -> ImageInput {
        ImageInput(raw: try native { try SmolVLMFFI.ImageInput.fromFile(path: path) })
    }

    /// Decodes an encoded image held in memory (JPEG, PNG, WebP, GIF, BMP).
    ///
    /// - Throws: `.invalidImage` if the bytes are not a supported image.
    public static func encoded(_ data: Data) throws -> ImageInput {
        ImageInput(raw: try native { try SmolVLMFFI.ImageInput.fromEncoded(bytes: data) })
    }

    /// Converts one buffer of raw pixels (RGBA8888, BGRA8888, RGB888, NV21, NV12).
    ///
    /// - Parameters:
    ///   - rowStride: bytes from one row to the next (0: tightly packed).
    ///   - pixelStride: bytes from one pixel to the next for packed formats (0: natural size).
    ///   - rotationDegrees: clockwise rotation (0, 90, 180, 270) that makes the frame upright.
    /// - Throws: `.invalidImage` when the bytes do not match the size and strides;
    ///   `.invalidArgument` for another rotation or a negative size or stride (naming it).
    public static func pixels(
        _ data: Data, format: PixelFormat, width: Int, height: Int,
        rowStride: Int = 0, pixelStride: Int = 0, rotationDegrees: Int = 0
    ) throws -> ImageInput {
        try packed(data, format, width, height, rowStride, pixelStride, rotationDegrees, deferred: false)
    }

    /// Converts a three-plane YUV 4:2:0 frame: each plane with its row stride, and the chroma
    /// planes' shared pixel stride (2 when U and V are interleaved). Throws as
    /// ``pixels(_:format:width:height:rowStride:pixelStride:rotationDegrees:)`` does (strides
    /// must be at least 1).
    public static func yuv420(
        y: Data, u: Data, v: Data, width: Int, height: Int,
        yRowStride: Int, uvRowStride: Int, uvPixelStride: Int,
        rotationDegrees: Int = 0, range: YuvColorRange = .full
    ) throws -> ImageInput {
        try planar(y, u, v, width, height, yRowStride, uvRowStride, uvPixelStride, rotationDegrees, range, deferred: false)
    }

    /// A camera frame for ``LiveCamera/push(_:timestampMs:)``:
    /// ``pixels(_:format:width:height:rowStride:pixelStride:rotationDegrees:)`` without the
    /// conversion. The bytes are copied and converted only if the live loop takes the frame, so
    /// the frames it drops cost nothing more; bytes that do not match the size come back as a
    /// `.frameError` event (or `.invalidImage` when passed to
    /// ``Chat/ask(_:images:options:videos:)``).
    public static func frame(
        _ data: Data, format: PixelFormat, width: Int, height: Int,
        rowStride: Int = 0, pixelStride: Int = 0, rotationDegrees: Int = 0
    ) throws -> ImageInput {
        try packed(data, format, width, height, rowStride, pixelStride, rotationDegrees, deferred: true)
    }

    /// A three-plane YUV 4:2:0 camera frame for ``LiveCamera/push(_:timestampMs:)``:
    /// ``yuv420(y:u:v:width:height:yRowStride:uvRowStride:uvPixelStride:rotationDegrees:range:)``
    /// without the conversion (see ``frame(_:format:width:height:rowStride:pixelStride:rotationDegrees:)``).
    public static func frameYuv420(
        y: Data, u: Data, v: Data, width: Int, height: Int,
        yRowStride: Int, uvRowStride: Int, uvPixelStride: Int,
        rotationDegrees: Int = 0, range: YuvColorRange = .full
    ) throws -> ImageInput {
        try planar(y, u, v, width, height, yRowStride, uvRowStride, uvPixelStride, rotationDegrees, range, deferred: true)
    }

    /// One buffer of packed pixels or NV12/NV21, converted now or (`deferred`) when used.
    static func packed(
        _ data: Data, _ format: PixelFormat, _ width: Int, _ height: Int, _ rowStride: Int, _ pixelStride: Int,
        _ rotationDegrees: Int, deferred: Bool
    ) throws -> ImageInput {
        let (w, h, rs, ps) = try (int32(width, "width"), int32(height, "height"), int32(rowStride, "rowStride"), int32(pixelStride, "pixelStride"))
        let make = deferred ? SmolVLMFFI.ImageInput.fromPixelsDeferred : SmolVLMFFI.ImageInput.fromPixels
        return ImageInput(raw: try native {
            try make(data, format.ffi, w, h, rs, ps, Int32(clamping: rotationDegrees))
        })
    }

    /// A three-plane YUV 4:2:0 frame, converted now or (`deferred`) when used.
    static func planar(
        _ y: Data, _ u: Data, _ v: Data, _ width: Int, _ height: Int, _ yRowStride: Int, _ uvRowStride: Int,
        _ uvPixelStride: Int, _ rotationDegrees: Int, _ range: YuvColorRange, deferred: Bool
    ) throws -> ImageInput {
        let (w, h) = try (int32(width, "width"), int32(height, "height"))
        let (ys, uvs, uvp) = try (int32(yRowStride, "yRowStride"), int32(uvRowStride, "uvRowStride"), int32(uvPixelStride, "uvPixelStride"))
        let make = deferred ? SmolVLMFFI.ImageInput.fromYuv420Deferred : SmolVLMFFI.ImageInput.fromYuv420
        return ImageInput(raw: try native {
            try make(y, u, v, w, h, ys, uvs, uvp, range.ffi, Int32(clamping: rotationDegrees))
        })
    }

    /// Width in pixels, upright (after the rotation).
    public var width: Int { Int(raw.width()) }

    /// Height in pixels, upright (after the rotation).
    public var height: Int { Int(raw.height()) }

    /// Whether this is a camera frame converted only when used (the `frame…` factories).
    public var isDeferred: Bool { raw.isDeferred() }

    /// The pixels the model will see, before its own resizing: `width * height * 3` bytes, rows
    /// top to bottom, R G B (for previews and tests). A deferred frame is converted for this
    /// call; one whose bytes do not match its size gives empty data.
    public var rgbBytes: Data { raw.rgbBytes() }

    /// This image mirrored left to right (after its rotation): a deferred frame stays deferred
    /// and is mirrored when converted. Mirroring twice gives the original.
    public func mirrored() -> ImageInput { ImageInput(raw: raw.mirrored()) }

    /// Builds an image in `orientation`: `make` converts the stored pixels with the clockwise
    /// rotation it is given, and the result is mirrored if the orientation is. (A mirror after a
    /// rotation by `r` equals a mirror before a rotation by `360 - r`, which is what EXIF means.)
    static func oriented(_ orientation: ImageOrientation, _ make: (_ rotationDegrees: Int) throws -> ImageInput) rethrows -> ImageInput {
        guard orientation.isMirrored else { return try make(orientation.clockwiseDegrees) }
        return try make((360 - orientation.clockwiseDegrees) % 360).mirrored()
    }
}

/// A size or stride as the native API's `Int32`. A value too large for it is `.invalidArgument`
/// here; a negative one is refused, by name, by the library.
func int32(_ v: Int, _ name: String) throws(SmolVLMError) -> Int32 {
    guard let i = Int32(exactly: v) else {
        throw SmolVLMError.invalidArgument(reason: "\(name) \(v) is out of range")
    }
    return i
}

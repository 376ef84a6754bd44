package dev.smolvlm

import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.PixelFormat
import dev.smolvlm.ffi.YuvColorRange
import java.nio.ByteBuffer

/**
 * Builds [ImageInput]s for [Chat.ask] and [LiveCamera.push]. Every function keeps no reference
 * to the buffers passed in, so camera buffers can be recycled right after. Direct [ByteBuffer]s
 * (what CameraX planes are) are read in place; arrays and heap buffers are copied once into
 * native memory.
 *
 * [file], [encoded], [pixels] and [yuv420] decode or convert during the call, and throw
 * `SmolVlmException.InvalidImage` when the data does not match its size and strides. [frame] and
 * [frameYuv420], for [LiveCamera.push], only copy the bytes: the live loop converts a frame if
 * it takes it, and reports bad data then (a `LiveEvent.FrameError`). All throw
 * `SmolVlmException.InvalidArgument` for a rotation that is not a multiple of 90 or a negative
 * size or stride (the message names it).
 *
 * From Java: `Image.file(path)`, `Image.pixels(buffer, PixelFormat.RGBA8888, width, height)` (the
 * functions are static, with overloads for the default arguments).
 */
object Image {
    /** Reads an image file (JPEG, PNG, WebP, GIF, BMP; EXIF orientation applied). */
    @JvmStatic
    fun file(path: String): ImageInput = ImageInput.fromFile(path)

    /** Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP) held in memory. */
    @JvmStatic
    fun encoded(bytes: ByteArray): ImageInput = ImageInput.fromEncoded(bytes.direct())

    /** Decodes an encoded image from the remaining bytes of [buffer]. */
    @JvmStatic
    fun encoded(buffer: ByteBuffer): ImageInput = ImageInput.fromEncoded(buffer.direct())

    /**
     * Converts one buffer of raw pixels: packed RGBA8888 / BGRA8888 / RGB888, or NV21 / NV12 (Y
     * plane followed by the interleaved chroma rows at `rowStride * height`).
     *
     * @param rowStride bytes from one row to the next (0: tightly packed).
     * @param pixelStride bytes from one pixel to the next for packed formats (0: natural size).
     * @param rotationDegrees clockwise rotation that makes the frame upright (CameraX's
     *   `imageInfo.rotationDegrees`).
     */
    @JvmStatic
    @JvmOverloads
    fun pixels(
        data: ByteBuffer,
        format: PixelFormat,
        width: Int,
        height: Int,
        rowStride: Int = 0,
        pixelStride: Int = 0,
        rotationDegrees: Int = 0,
    ): ImageInput = ImageInput.fromPixels(data.direct(), format, width, height, rowStride, pixelStride, rotationDegrees)

    /** [pixels] for a byte array (copied once). */
    @JvmStatic
    @JvmOverloads
    fun pixels(
        data: ByteArray,
        format: PixelFormat,
        width: Int,
        height: Int,
        rowStride: Int = 0,
        pixelStride: Int = 0,
        rotationDegrees: Int = 0,
    ): ImageInput = pixels(data.direct(), format, width, height, rowStride, pixelStride, rotationDegrees)

    /**
     * Converts a three-plane YUV 4:2:0 frame (`ImageFormat.YUV_420_888`, e.g. CameraX
     * `ImageProxy.planes`): each plane's buffer with its row stride, and the chroma planes' shared
     * pixel stride (2 when U and V are interleaved, 1 when planar).
     *
     * @param range [YuvColorRange.FULL] (JFIF, what Android cameras produce) unless the frames
     *   come from a video decoder.
     */
    @JvmStatic
    @JvmOverloads
    fun yuv420(
        y: ByteBuffer,
        u: ByteBuffer,
        v: ByteBuffer,
        width: Int,
        height: Int,
        yRowStride: Int,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int = 0,
        range: YuvColorRange = YuvColorRange.FULL,
    ): ImageInput = ImageInput.fromYuv420(
        y.direct(), u.direct(), v.direct(), width, height, yRowStride, uvRowStride, uvPixelStride, range, rotationDegrees,
    )

    /**
     * A camera frame for [LiveCamera.push]: [pixels] without the conversion. The bytes are copied
     * (one memcpy) and converted only if the live loop takes the frame, so the frames it drops
     * cost nothing more; bytes that do not match the size come back as a `LiveEvent.FrameError`
     * (or `SmolVlmException.InvalidImage` when passed to [Chat.ask]).
     */
    @JvmStatic
    @JvmOverloads
    fun frame(
        data: ByteBuffer,
        format: PixelFormat,
        width: Int,
        height: Int,
        rowStride: Int = 0,
        pixelStride: Int = 0,
        rotationDegrees: Int = 0,
    ): ImageInput = ImageInput.fromPixelsDeferred(data.direct(), format, width, height, rowStride, pixelStride, rotationDegrees)

    /** [frame] for a byte array. */
    @JvmStatic
    @JvmOverloads
    fun frame(
        data: ByteArray,
        format: PixelFormat,
        width: Int,
        height: Int,
        rowStride: Int = 0,
        pixelStride: Int = 0,
        rotationDegrees: Int = 0,
    ): ImageInput = frame(data.direct(), format, width, height, rowStride, pixelStride, rotationDegrees)

    /**
     * A three-plane YUV 4:2:0 camera frame for [LiveCamera.push]: [yuv420] without the
     * conversion (see [frame]). The strides must be at least 1.
     */
    @JvmStatic
    @JvmOverloads
    fun frameYuv420(
        y: ByteBuffer,
        u: ByteBuffer,
        v: ByteBuffer,
        width: Int,
        height: Int,
        yRowStride: Int,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int = 0,
        range: YuvColorRange = YuvColorRange.FULL,
    ): ImageInput = ImageInput.fromYuv420Deferred(
        y.direct(), u.direct(), v.direct(), width, height, yRowStride, uvRowStride, uvPixelStride, range, rotationDegrees,
    )
}

/** A direct buffer over the remaining bytes (a zero-copy view when already direct). */
private fun ByteBuffer.direct(): ByteBuffer =
    if (isDirect) slice() else ByteBuffer.allocateDirect(remaining()).put(duplicate()).also { it.flip() }

private fun ByteArray.direct(): ByteBuffer = ByteBuffer.allocateDirect(size).put(this).also { it.flip() }

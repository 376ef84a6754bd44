package dev.smolvlm.android

import android.graphics.ImageFormat
import android.graphics.PixelFormat as AndroidPixelFormat
import androidx.camera.core.ImageProxy
import dev.smolvlm.Image
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.PixelFormat

// CameraX converters: camera-core is a compileOnly dependency of the SDK, so apps that use
// CameraX get them and others never load them.

/**
 * Converts a CameraX frame, reading its planes in place (no copy): `YUV_420_888` (the
 * ImageAnalysis default) through its three planes with their strides, or `RGBA_8888` (when the
 * analysis use case asks for `OUTPUT_IMAGE_FORMAT_RGBA_8888`). The frame is rotated by
 * `imageInfo.rotationDegrees` so the model sees it upright. Close the proxy afterwards as usual.
 */
fun ImageProxy.toImageInput(): ImageInput = convert(deferred = false)

/**
 * This CameraX frame for [dev.smolvlm.LiveCamera.push]: its planes are copied (the proxy can be
 * closed right after) and converted, upright, only if the live loop takes the frame; most are
 * dropped unconverted. Same formats as [toImageInput].
 *
 * ```kotlin
 * analysis.setAnalyzer(executor) { proxy -> proxy.use { camera.push(it.toFrame(), it.imageInfo.timestamp / 1_000_000) } }
 * ```
 */
fun ImageProxy.toFrame(): ImageInput = convert(deferred = true)

private fun ImageProxy.convert(deferred: Boolean): ImageInput {
    val rotation = imageInfo.rotationDegrees
    return when (format) {
        ImageFormat.YUV_420_888 -> {
            val (y, u, v) = planes
            require(u.rowStride == v.rowStride && u.pixelStride == v.pixelStride) { "U and V planes differ in layout" }
            if (deferred) {
                Image.frameYuv420(
                    y.buffer, u.buffer, v.buffer, width, height,
                    yRowStride = y.rowStride, uvRowStride = u.rowStride, uvPixelStride = u.pixelStride,
                    rotationDegrees = rotation,
                )
            } else {
                Image.yuv420(
                    y.buffer, u.buffer, v.buffer, width, height,
                    yRowStride = y.rowStride, uvRowStride = u.rowStride, uvPixelStride = u.pixelStride,
                    rotationDegrees = rotation,
                )
            }
        }
        AndroidPixelFormat.RGBA_8888 -> {
            val p = planes[0]
            if (deferred) Image.frame(p.buffer, PixelFormat.RGBA8888, width, height, p.rowStride, p.pixelStride, rotation)
            else Image.pixels(p.buffer, PixelFormat.RGBA8888, width, height, p.rowStride, p.pixelStride, rotation)
        }
        else -> throw IllegalArgumentException("unsupported ImageProxy format $format")
    }
}

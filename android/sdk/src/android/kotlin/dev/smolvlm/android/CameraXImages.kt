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
fun ImageProxy.toImageInput(): ImageInput {
    val rotation = imageInfo.rotationDegrees
    return when (format) {
        ImageFormat.YUV_420_888 -> {
            val (y, u, v) = planes
            require(u.rowStride == v.rowStride && u.pixelStride == v.pixelStride) { "U and V planes differ in layout" }
            Image.yuv420(
                y.buffer, u.buffer, v.buffer, width, height,
                yRowStride = y.rowStride, uvRowStride = u.rowStride, uvPixelStride = u.pixelStride,
                rotationDegrees = rotation,
            )
        }
        AndroidPixelFormat.RGBA_8888 -> {
            val p = planes[0]
            Image.pixels(p.buffer, PixelFormat.RGBA8888, width, height, p.rowStride, p.pixelStride, rotation)
        }
        else -> throw IllegalArgumentException("unsupported ImageProxy format $format")
    }
}

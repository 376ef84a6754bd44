package dev.smolvlm.android

import android.graphics.Bitmap
import androidx.camera.core.ImageProxy
import dev.smolvlm.Image
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.PixelFormat
import java.nio.ByteBuffer

/**
 * Converts this bitmap for [dev.smolvlm.Chat.ask]. `ARGB_8888` bitmaps are read through one
 * direct buffer (their memory order is R, G, B, A); other configs are converted to it first.
 *
 * @param rotationDegrees clockwise rotation that makes the bitmap upright.
 */
fun Bitmap.toImageInput(rotationDegrees: Int = 0): ImageInput {
    val argb = if (config == Bitmap.Config.ARGB_8888) this else copy(Bitmap.Config.ARGB_8888, false)
    val buffer = ByteBuffer.allocateDirect(argb.rowBytes * argb.height)
    argb.copyPixelsToBuffer(buffer)
    buffer.rewind()
    return Image.pixels(buffer, PixelFormat.RGBA8888, argb.width, argb.height, argb.rowBytes, 4, rotationDegrees)
}

/**
 * Converts a CameraX frame, reading its planes in place (no copy): `YUV_420_888` (the
 * ImageAnalysis default) through its three planes with their strides, or `RGBA_8888` (when the
 * analysis use case asks for `OUTPUT_IMAGE_FORMAT_RGBA_8888`). The frame is rotated by
 * `imageInfo.rotationDegrees` so the model sees it upright. Close the proxy afterwards as usual.
 */
fun ImageProxy.toImageInput(): ImageInput {
    val rotation = imageInfo.rotationDegrees
    return when (format) {
        android.graphics.ImageFormat.YUV_420_888 -> {
            val (y, u, v) = planes
            require(u.rowStride == v.rowStride && u.pixelStride == v.pixelStride) { "U and V planes differ in layout" }
            Image.yuv420(
                y.buffer, u.buffer, v.buffer, width, height,
                yRowStride = y.rowStride, uvRowStride = u.rowStride, uvPixelStride = u.pixelStride,
                rotationDegrees = rotation,
            )
        }
        android.graphics.PixelFormat.RGBA_8888 -> {
            val p = planes[0]
            Image.pixels(p.buffer, PixelFormat.RGBA8888, width, height, p.rowStride, p.pixelStride, rotation)
        }
        else -> throw IllegalArgumentException("unsupported ImageProxy format $format")
    }
}

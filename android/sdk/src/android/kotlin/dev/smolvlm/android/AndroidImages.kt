package dev.smolvlm.android

import android.graphics.Bitmap
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
@JvmOverloads
fun Bitmap.toImageInput(rotationDegrees: Int = 0): ImageInput {
    val argb = if (config == Bitmap.Config.ARGB_8888) this else copy(Bitmap.Config.ARGB_8888, false)
    val buffer = ByteBuffer.allocateDirect(argb.rowBytes * argb.height)
    argb.copyPixelsToBuffer(buffer)
    buffer.rewind()
    return Image.pixels(buffer, PixelFormat.RGBA8888, argb.width, argb.height, argb.rowBytes, 4, rotationDegrees)
}

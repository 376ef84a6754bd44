package dev.smolvlm.android

import android.content.Context
import android.media.MediaExtractor
import android.media.MediaFormat
import android.media.MediaMetadataRetriever
import android.net.Uri
import android.os.Build
import dev.smolvlm.SmolVLM
import dev.smolvlm.Video
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.VideoInput
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.withContext
import kotlin.math.roundToInt
import kotlin.math.roundToLong

/** The frame rate assumed when the frame count is unknown and neither the caller nor the file gives a rate. */
private const val DEFAULT_FPS = 30.0

/**
 * Reads the video file at [path] for [dev.smolvlm.Chat.ask] on [dispatcher] (never the main
 * thread), decoding only the frames the model reads: see [readVideo] with a
 * `MediaMetadataRetriever` for how they are chosen. Cancelling the calling coroutine stops it
 * before the next frame is decoded.
 *
 * ```kotlin
 * val video = vlm.readVideo(File(context.filesDir, "clip.mp4").path)
 * chat.ask("What happens in this video?", video).collect { print(it) }
 * ```
 *
 * @throws SmolVlmException.InvalidImage if the file is not a video the platform can decode.
 * @throws SmolVlmException.InvalidArgument if the model takes no videos (`info.videoFrameLimit`
 *   is 0).
 */
@JvmOverloads
suspend fun SmolVLM.readVideo(path: String, dispatcher: CoroutineDispatcher = Dispatchers.IO): VideoInput =
    withContext(dispatcher) {
        read({ it.setDataSource(path) }, { it.setDataSource(path) }) { ensureActive() }
    }

/**
 * Reads the video at [uri] (a `content://` URI from the photo picker or the `MediaStore`, or a
 * file URI) for [dev.smolvlm.Chat.ask] on [dispatcher] (never the main thread), decoding only the
 * frames the model reads: see [readVideo] with a `MediaMetadataRetriever` for how they are
 * chosen. Cancelling the calling coroutine stops it before the next frame is decoded.
 *
 * @throws SmolVlmException.InvalidImage if [uri] is not a video the platform can decode.
 * @throws SmolVlmException.InvalidArgument if the model takes no videos.
 */
@JvmOverloads
suspend fun SmolVLM.readVideo(context: Context, uri: Uri, dispatcher: CoroutineDispatcher = Dispatchers.IO): VideoInput =
    withContext(dispatcher) {
        read({ it.setDataSource(context, uri) }, { it.setDataSource(context, uri, null) }) { ensureActive() }
    }

/**
 * Reads a video from [retriever], whose data source the caller has set (and which the caller
 * releases), decoding only the frames the model reads. Blocking: call it off the main thread.
 *
 * The video's duration comes from `METADATA_KEY_DURATION`. From API 28 the frame count comes from
 * `METADATA_KEY_VIDEO_FRAME_COUNT`, and the frame rate is that count over the duration; below API
 * 28 (or when the file does not record the count) the count is the duration times
 * [framesPerSecond] (when 0: the file's capture frame rate if it records one, else 30), rounded. [SmolVLM.videoFrameIndices] names the frames a question
 * reads (at most `info.videoFrameLimit`, chosen as transformers' SmolVLM2 video processor does);
 * each is decoded to a bitmap (`getFrameAtIndex` from API 28, else `getFrameAtTime` at the
 * frame's time with `OPTION_CLOSEST`), converted with [toImageInput] and recycled. The frames'
 * timestamps are their index divided by the frame rate, and the result is a
 * [Video.chosen] video.
 *
 * @throws SmolVlmException.InvalidImage if the duration is missing or not positive, or a frame
 *   cannot be decoded.
 * @throws SmolVlmException.InvalidArgument if the model takes no videos.
 */
@JvmOverloads
fun SmolVLM.readVideo(retriever: MediaMetadataRetriever, framesPerSecond: Double = 0.0): VideoInput =
    decode(retriever, { framesPerSecond }) {}

/**
 * [readVideo] from [retriever]; [frameRate] is asked only when the frame count is unknown (0:
 * unknown too), and [beforeFrame] is called before each frame is decoded.
 */
private fun SmolVLM.decode(retriever: MediaMetadataRetriever, frameRate: () -> Double, beforeFrame: () -> Unit): VideoInput {
    val durationMs = retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_DURATION)?.toLongOrNull()
    if (durationMs == null || durationMs <= 0) {
        throw SmolVlmException.InvalidImage("not a video, or its duration is unknown (METADATA_KEY_DURATION: $durationMs)")
    }
    val duration = durationMs / 1000.0
    // The exact frame count, where the platform reports it (API 28).
    val counted = if (Build.VERSION.SDK_INT >= 28) {
        retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_FRAME_COUNT)?.toIntOrNull()?.takeIf { it > 0 }
    } else {
        null
    }
    val fps = if (counted != null) {
        counted / duration
    } else {
        frameRate().takeIf { it > 0 }
            ?: retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_CAPTURE_FRAMERATE)?.toDoubleOrNull()?.takeIf { it > 0 }
            ?: DEFAULT_FPS
    }
    val count = counted ?: (duration * fps).roundToInt().coerceAtLeast(1)
    val indices = videoFrameIndices(count, duration)
    val frames = ArrayList<ImageInput>(indices.size)
    for (index in indices) {
        beforeFrame()
        val bitmap = if (Build.VERSION.SDK_INT >= 28 && counted != null) {
            retriever.getFrameAtIndex(index)
        } else {
            retriever.getFrameAtTime((index / fps * 1_000_000).roundToLong(), MediaMetadataRetriever.OPTION_CLOSEST)
        } ?: throw SmolVlmException.InvalidImage("cannot decode frame $index of $count")
        try {
            frames.add(bitmap.toImageInput())
        } finally {
            bitmap.recycle()
        }
    }
    return Video.chosen(frames, indices.map { it / fps }, duration)
}

/**
 * Opens a retriever with [setSource], reads the video from it and releases it. Where the frame
 * count is unknown (below API 28, or a file that does not record it), the video track's frame
 * rate comes from a [MediaExtractor] opened with [setExtractorSource].
 */
private fun SmolVLM.read(
    setSource: (MediaMetadataRetriever) -> Unit,
    setExtractorSource: (MediaExtractor) -> Unit,
    beforeFrame: () -> Unit,
): VideoInput {
    val retriever = MediaMetadataRetriever()
    try {
        try {
            setSource(retriever)
        } catch (e: RuntimeException) {
            throw SmolVlmException.InvalidImage("cannot open the video: ${e.message}")
        }
        return decode(retriever, { trackFrameRate(setExtractorSource) ?: 0.0 }, beforeFrame)
    } finally {
        retriever.release()
    }
}

/** The first video track's `KEY_FRAME_RATE` (an integer or a float in the format), if any. */
private fun trackFrameRate(setSource: (MediaExtractor) -> Unit): Double? {
    val extractor = MediaExtractor()
    return try {
        setSource(extractor)
        (0 until extractor.trackCount).asSequence().map(extractor::getTrackFormat).firstNotNullOfOrNull { format ->
            val video = format.getString(MediaFormat.KEY_MIME)?.startsWith("video/") == true
            if (!video || !format.containsKey(MediaFormat.KEY_FRAME_RATE)) {
                null
            } else {
                runCatching { format.getInteger(MediaFormat.KEY_FRAME_RATE).toDouble() }
                    .recoverCatching { format.getFloat(MediaFormat.KEY_FRAME_RATE).toDouble() }
                    .getOrNull()?.takeIf { it > 0 }
            }
        }
    } catch (e: Exception) {
        null
    } finally {
        extractor.release()
    }
}

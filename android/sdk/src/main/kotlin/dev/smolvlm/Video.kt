package dev.smolvlm

import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.VideoInput

/**
 * Builds [VideoInput]s for [Chat.ask]: a video is its frames (any [ImageInput], e.g. from
 * [Image.file] or, on Android, `Bitmap.toImageInput()`), each frame's time in seconds from the
 * start, and the whole video's duration in seconds. The library decodes no video files: the app
 * (or `dev.smolvlm.android.readVideo`, which uses `MediaMetadataRetriever`) decodes the frames.
 *
 * Two ways to give a video:
 * - [frames]: every frame of a clip (or frames taken at a steady rate). When the question is
 *   answered, the frames the model reads are chosen from them exactly as transformers' SmolVLM2
 *   video processor chooses them from a decoded video.
 * - [chosen]: only the frames that [SmolVLM.videoFrameIndices] names, decoded by the app; all of
 *   them are read. For long videos this decodes at most `info.videoFrameLimit` frames instead
 *   of all of them, and gives the same answer.
 *
 * Both throw `SmolVlmException.InvalidArgument` when there are no frames, the number of
 * timestamps differs from the number of frames, the timestamps go backwards, or a time or the
 * duration is negative or not finite. A [VideoInput] can be asked about in several questions
 * and chats; deferred frames ([Image.frame]) are converted when it is asked about.
 *
 * From Java: `Video.frames(frames, timestamps, duration)` (the functions are static).
 */
object Video {
    /**
     * A video from all of its frames (or frames at a steady rate): the frames the model reads
     * are chosen from them when it is asked about.
     *
     * ```kotlin
     * val frames = (0 until 6).map { Image.file("clip/f00$it.png") }
     * val clip = Video.frames(frames, timestamps = frames.indices.map { it / 2.0 }, durationSeconds = 3.0)
     * ```
     *
     * @param frames the frames, in order.
     * @param timestamps each frame's time in seconds from the start (frame index / frames per
     *   second), as many as [frames], never decreasing.
     * @param durationSeconds the video's length in seconds.
     */
    @JvmStatic
    fun frames(frames: List<ImageInput>, timestamps: List<Double>, durationSeconds: Double): VideoInput =
        VideoInput(frames, timestamps, durationSeconds)

    /**
     * A video from the frames that [SmolVLM.videoFrameIndices] chose out of a longer one (decode
     * only those): every frame given is read.
     *
     * ```kotlin
     * val indices = vlm.videoFrameIndices(frameCount, durationSeconds)
     * val video = Video.chosen(indices.map { decode(it) }, indices.map { it / fps }, durationSeconds)
     * ```
     *
     * @param frames the chosen frames, in the order of the indices.
     * @param timestamps each chosen frame's time in seconds (its index / frames per second).
     * @param durationSeconds the whole video's length in seconds (not the span of the frames).
     */
    @JvmStatic
    fun chosen(frames: List<ImageInput>, timestamps: List<Double>, durationSeconds: Double): VideoInput =
        VideoInput.chosen(frames, timestamps, durationSeconds)
}

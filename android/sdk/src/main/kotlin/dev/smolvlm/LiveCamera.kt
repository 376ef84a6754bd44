package dev.smolvlm

import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.LiveCaptioner
import dev.smolvlm.ffi.LiveCounters
import dev.smolvlm.ffi.LiveEvent
import dev.smolvlm.ffi.SmolVlmException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.asExecutor
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.channelFlow
import kotlinx.coroutines.withContext

/**
 * The camera loop over a [SmolVLM] model (made by [SmolVLM.live]): push camera frames as fast as
 * the camera makes them, collect captions of the newest frame, ask questions mid-stream.
 *
 * ```kotlin
 * vlm.live(LiveConfig(prompt = "What is in front of me?")).use { camera ->
 *     analysis.setAnalyzer(executor) { proxy -> proxy.use { camera.push(it.toFrame(), it.imageInfo.timestamp / 1_000_000) } }
 *     camera.events.collect { if (it is LiveEvent.Answer) caption.text = it.text }
 * }
 * ```
 *
 * [push] never blocks on the model: a frame only replaces the one waiting (which is dropped
 * unconverted), and the loop converts a frame only when it takes it. Frames that barely changed
 * are skipped (`LiveConfig.changeThreshold`). The loop runs on its own native thread inside the
 * model's thread pool while the camera is open. Thread-safe: push from the camera's executor,
 * collect from a coroutine, ask, pause or close from anywhere.
 */
class LiveCamera internal constructor(
    private val raw: LiveCaptioner,
    private val dispatcher: CoroutineDispatcher,
) : AutoCloseable {

    /**
     * The loop's events, in order: [LiveEvent.Piece]s of the answer being generated, then its
     * [LiveEvent.Answer] (the frame, the question for an answer to [ask], the text, the finish
     * reason and [dev.smolvlm.ffi.LiveStats]: frame-to-first-token latency, vision ms, tokens/s,
     * frames dropped and skipped since the previous answer), and [LiveEvent.FrameError] for a
     * frame that could not be converted (the loop goes on).
     *
     * The events are pulled from the native loop by one blocking task on [SmolVLM.live]'s
     * dispatcher (a thread held while the flow is collected) and buffered (64 events) for the
     * collector. Collect this flow once: the camera lives as long as it is collected. When the
     * collector stops early (cancelled, or an operator such as `first()` or `take(n)`), the
     * camera is closed, which stops the loop within one decode step, and the collector resumes
     * only once it has stopped. After [close] the flow completes normally. A failure that ends
     * the loop (`SmolVlmException.Internal`: a panic inside it) is thrown by the flow; a failed
     * answer (a question too long for the model, say) is a `FrameError` event.
     */
    val events: Flow<LiveEvent> = channelFlow {
        // One thread pulls the events (fewer hops and thread switches than a dispatch per event).
        dispatcher.asExecutor().execute {
            try {
                while (true) {
                    val event = raw.nextEvent(null) ?: continue
                    if (trySendBlocking(event).isFailure) break // the collector is gone
                }
            } catch (e: SmolVlmException.Cancelled) {
                close() // closed: the flow completes
            } catch (e: Throwable) {
                close(e)
            }
        }
        try {
            awaitClose()
        } finally {
            // Also when the collector is cancelled: stop the loop, which ends the pull above.
            withContext(NonCancellable + dispatcher) { raw.release() }
        }
    }

    /**
     * Hands the loop a new camera frame and returns its id (1, 2, … in push order; events carry
     * it with [timestampMs]). Never blocks on the model. Push deferred frames ([Image.frame],
     * [Image.frameYuv420], or `ImageProxy.toFrame()` on Android): a copy of the pixels that the
     * loop converts only if it takes the frame; a frame that cannot be converted comes back as a
     * [LiveEvent.FrameError].
     *
     * [frame]'s handle is closed by this call (the loop keeps its own reference until it takes or
     * drops the frame), so its native memory is freed at once rather than whenever the garbage
     * collector runs: do not use [frame] afterwards.
     *
     * @param timestampMs the app's timestamp of the frame, e.g. CameraX's
     *   `imageInfo.timestamp / 1_000_000` (not negative).
     * @throws SmolVlmException.InvalidArgument for a negative [timestampMs], or after [close].
     */
    @JvmOverloads
    fun push(frame: ImageInput, timestampMs: Long = System.currentTimeMillis()): Long {
        try {
            return raw.pushFrame(frame, timestampMs)
        } finally {
            frame.close()
        }
    }

    /**
     * Asks [question] about the newest frame (while paused: about the frame last answered
     * about). It is answered after the answer in progress, as events that carry the question;
     * captioning then goes on.
     *
     * @throws SmolVlmException.InvalidArgument for an empty question, or after [close].
     */
    fun ask(question: String) = raw.ask(question)

    /**
     * Asks [question] about the last [seconds] of frames, as a video of the frames kept one per
     * second (set `LiveConfig(historySeconds = …)`; SmolVLM2 models). Frames encoded for an
     * earlier such question are not encoded again. It is answered after the answer in progress,
     * as events that carry the question; with no frame kept yet the answer is a `FrameError`.
     *
     * @throws SmolVlmException.InvalidArgument for an empty question, a [seconds] that is not
     *   positive, or after [close].
     */
    fun askRecent(question: String, seconds: Double) = raw.askRecent(question, seconds)

    /**
     * Stops captioning: frames are still accepted (and dropped), and questions are answered about
     * the frame last answered about, which stays frozen.
     *
     * @throws SmolVlmException.InvalidArgument after [close].
     */
    fun pause() = raw.pause()

    /**
     * Captions again, from the newest frame.
     *
     * @throws SmolVlmException.InvalidArgument after [close].
     */
    fun resume() = raw.resume()

    /** Frames pushed, and frames dropped unconverted because a newer one came first. */
    val counters: LiveCounters get() = raw.counters()

    /** Whether the camera is closed ([close], its [events] collector stopped, or a failure). */
    val isClosed: Boolean get() = raw.isReleased()

    /**
     * Stops the loop within one decode step and returns once it has stopped and given up its
     * share of the model (blocking: at most one decode step, a few ms to ~100 ms). The [events]
     * flow then completes; later [push], [ask], [pause] and [resume] calls throw
     * `SmolVlmException.InvalidArgument`. Safe to call more than once, from any thread.
     */
    override fun close() = raw.release()
}

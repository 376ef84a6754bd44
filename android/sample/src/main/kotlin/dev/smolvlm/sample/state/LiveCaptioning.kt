package dev.smolvlm.sample.state

import dev.smolvlm.LiveCamera
import dev.smolvlm.SmolVLM
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.LiveConfig
import dev.smolvlm.ffi.LiveEvent
import dev.smolvlm.ffi.LiveStats
import dev.smolvlm.ffi.SmolVlmException
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.asExecutor
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import kotlin.math.roundToLong

/**
 * The camera screen's state.
 *
 * @property running whether a live session is open (frames are taken).
 * @property caption the newest complete caption (captions are shown whole, never token by token:
 *   a caption that grows and then restarts with every frame flickers).
 * @property numbers the latency, speed and memory of the newest caption or answer.
 * @property ask the question about the frozen frame and its answer; `null` while captioning.
 * @property problem the newest failure (a frame that could not be read, a failed answer, the
 *   model closed); cleared by the next caption.
 */
data class CameraState(
    val running: Boolean = false,
    val caption: String = "",
    val numbers: LiveNumbers? = null,
    val ask: AskState? = null,
    val problem: Problem? = null,
)

/**
 * The numbers under a caption or answer.
 *
 * @property firstTokenMs milliseconds from the frame's arrival to the first word: what the user waits.
 * @property tokensPerSecond generation speed after the first word.
 * @property memoryMb the app's resident memory when the answer ended.
 */
data class LiveNumbers(val firstTokenMs: Long, val tokensPerSecond: Double, val memoryMb: Long)

/**
 * A question about the frozen frame.
 *
 * @property question the question asked (trimmed).
 * @property answer the answer so far, redrawn every few pieces while [streaming].
 * @property pieces how many pieces [answer] holds.
 * @property frameId the camera frame the answer is about (`null` until the first piece).
 * @property streaming whether the answer is still being generated.
 * @property stopped whether [LiveCaptioning.stop] cut it short.
 */
data class AskState(
    val question: String,
    val answer: String = "",
    val pieces: Int = 0,
    val frameId: Long? = null,
    val streaming: Boolean = true,
    val stopped: Boolean = false,
)

/**
 * The ready-made questions of the ask mode.
 *
 * @property question what is asked. The model reads English, so it is not translated (the
 *   buttons' labels are).
 */
enum class Preset(val question: String) {
    /** A longer description than the live caption. */
    DESCRIBE("Describe this picture in detail."),

    /** Reading signs, labels, pages. */
    READ_TEXT("Read the text in this picture."),

    /** Naming the main object. */
    WHAT_IS_THIS("What is this?"),
}

/**
 * Live captions of the camera and questions about a frozen frame, over one [SmolVLM] model
 * ([LiveCamera] underneath).
 *
 * Captioning: [open] starts a live session; the camera's analyzer calls [push] for every frame
 * (frames the loop is too busy for are dropped unconverted); [state] carries the newest
 * caption and its numbers. Ask mode: [ask] pauses captioning, which freezes the frame last
 * captioned, and asks about it; follow-up questions are about the same frame (its encoding is
 * cached, so they skip the vision encoder) until [backToLive]. The answer streams into
 * [CameraState.ask], redrawn at most every [redrawEveryPieces] pieces or [redrawEveryMs].
 * [stop] cuts an answer short.
 *
 * Plain Kotlin (no Android classes) so that it runs in JVM tests against the real library. Call
 * it from one thread (the main thread in the app), except [push], which the camera's analyzer
 * thread calls.
 *
 * @param scope where the events are collected and the state updated (a `viewModelScope`).
 * @param config the live session's settings (standing prompt, tokens per answer, …).
 * @param io where the library blocks: waiting for events, closing a session.
 * @param clock milliseconds on a monotonic clock, for the redraw throttle.
 * @param memoryBytes the process's resident memory, for [LiveNumbers.memoryMb].
 */
class LiveCaptioning(
    private val scope: CoroutineScope,
    private val config: LiveConfig = LiveConfig(maxTokens = 96),
    private val io: CoroutineDispatcher = Dispatchers.IO,
    private val clock: () -> Long = { System.nanoTime() / 1_000_000 },
    private val memoryBytes: () -> Long = ::residentMemoryBytes,
    private val redrawEveryPieces: Int = 4,
    private val redrawEveryMs: Long = 150,
) : AutoCloseable {
    private val _state = MutableStateFlow(CameraState())

    /** What the camera screen shows. */
    val state: StateFlow<CameraState> = _state.asStateFlow()

    /** An open live session and the coroutine collecting its events. */
    private class Session(val camera: LiveCamera, val collector: Job)

    @Volatile private var session: Session? = null
    private var model: SmolVLM? = null
    @Volatile private var foreground = true
    private val answer = StringBuilder()
    private var answerPieces = 0
    private var piecesSinceDraw = 0
    private var lastDrawMs = 0L

    /** Whether a live session is open. */
    val isOpen: Boolean get() = session != null

    /**
     * Starts captioning with [vlm] (closing a session already open). A model that cannot run the
     * loop (closed, or without vision) becomes a [Problem], not an exception.
     */
    fun open(vlm: SmolVLM) {
        closeSession()
        model = vlm
        answer.clear()
        _state.value = CameraState()
        openSession(vlm, paused = !foreground)
    }

    /**
     * Hands the live session a camera frame. [frame] is called (to copy the camera's buffers)
     * only when a session is open and the app is in the foreground; never blocks on the model.
     * Call it from the camera's analyzer thread, and close the camera's image afterwards.
     *
     * @param timestampMs the frame's time, e.g. the camera's `imageInfo.timestamp / 1_000_000`.
     */
    fun push(timestampMs: Long, frame: () -> ImageInput) {
        val camera = session?.camera ?: return
        if (!foreground) return
        val input = try {
            frame()
        } catch (e: Exception) {
            report(e)
            return
        }
        try {
            camera.push(input, timestampMs.coerceAtLeast(0))
        } catch (e: SmolVlmException.InvalidArgument) {
            // Closed between the check and the push (Stop, backgrounded): the frame is not needed.
        }
    }

    /**
     * Freezes the frame last captioned and asks [question] about it (a [Preset]'s question, or
     * the user's). Ignored while an answer is streaming or without a session, and for a blank
     * question.
     */
    fun ask(question: String) {
        val camera = session?.camera ?: return
        val text = question.trim()
        if (text.isEmpty() || _state.value.ask?.streaming == true) return
        answer.clear()
        answerPieces = 0
        piecesSinceDraw = 0
        // The first piece is drawn at once; later ones every few pieces.
        lastDrawMs = clock() - redrawEveryMs
        _state.update { it.copy(ask = AskState(text), problem = null) }
        try {
            camera.pause()
            camera.ask(text)
        } catch (e: SmolVlmException) {
            _state.update { it.copy(ask = AskState(text, streaming = false), problem = e.toProblem()) }
        }
    }

    /**
     * Cuts the answer being generated short: the session is closed, which stops generating
     * within one decode step, and a new one opens, still paused ([CameraState.running] is false
     * in between). The live session cannot cancel
     * one answer on its own, so the frozen frame goes with it: the next question is about a new
     * frame. The answer so far stays on screen, marked [AskState.stopped].
     */
    fun stop() {
        val ask = _state.value.ask ?: return
        if (!ask.streaming) return
        val vlm = model ?: return
        val old = session ?: return
        session = null
        _state.update {
            it.copy(running = false, ask = ask.copy(answer = answer.toString(), pieces = answerPieces, streaming = false, stopped = true))
        }
        scope.launch {
            stopSession(old)
            if (session == null && model === vlm) openSession(vlm, paused = true)
        }
    }

    /** Leaves ask mode: captioning goes on from the newest frame. */
    fun backToLive() {
        if (_state.value.ask?.streaming == true) return
        _state.update { it.copy(ask = null) }
        if (foreground) resumeCaptioning()
    }

    /**
     * The app came to the foreground ([visible] true, `onStart`) or left it (`onStop`): frames
     * are taken and captioned only while visible. An answer being generated when the app leaves
     * still finishes (at most the configured tokens).
     */
    fun setForeground(visible: Boolean) {
        foreground = visible
        val camera = session?.camera ?: return
        try {
            if (!visible) camera.pause() else if (_state.value.ask == null) camera.resume()
        } catch (e: SmolVlmException) {
            report(e)
        }
    }

    /**
     * Closes the live session without waiting (its memory, a thread of the model's pool and the
     * frozen frame are given back once it has stopped, within one decode step); [open] starts a
     * new one. The model itself is not closed.
     */
    override fun close() {
        closeSession()
        model = null
        _state.update { it.copy(running = false, ask = it.ask?.copy(streaming = false)) }
    }

    private fun openSession(vlm: SmolVLM, paused: Boolean) {
        val camera = try {
            vlm.live(config, io).also { if (paused) it.pause() }
        } catch (e: SmolVlmException) {
            _state.update { it.copy(running = false, problem = e.toProblem()) }
            return
        }
        val collector = scope.launch {
            try {
                camera.events.collect { event -> if (session?.camera === camera) handle(event) }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                // The loop itself failed (a bug inside the library): say so, keep the app alive.
                if (session?.camera === camera) {
                    session = null
                    _state.update { it.copy(running = false, problem = e.toProblem()) }
                }
            }
        }
        session = Session(camera, collector)
        _state.update { it.copy(running = true) }
    }

    private fun closeSession() {
        val old = session ?: return
        session = null
        old.collector.cancel()
        io.asExecutor().execute { old.camera.close() }
    }

    /** Stops [old]'s collector and waits until its loop has stopped and let go of the model. */
    private suspend fun stopSession(old: Session) {
        old.collector.cancelAndJoin()
        withContext(io) { old.camera.close() }
    }

    private fun resumeCaptioning() {
        try {
            session?.camera?.resume()
        } catch (e: SmolVlmException) {
            report(e)
        }
    }

    private fun handle(event: LiveEvent) {
        when (event) {
            is LiveEvent.Piece -> event.question?.let { onPiece(it, event.text, event.frame.id) }
            is LiveEvent.Answer -> when (val question = event.question) {
                null -> _state.update { it.copy(caption = event.text, numbers = numbers(event.stats), problem = null) }
                else -> onAnswer(question, event.text, event.frame.id, event.stats)
            }
            is LiveEvent.FrameError -> onFrameError(event.error)
        }
    }

    private fun onPiece(question: String, text: String, frameId: Long) {
        val ask = _state.value.ask ?: return
        if (!ask.streaming || ask.question != question) return
        answer.append(text)
        answerPieces++
        piecesSinceDraw++
        val now = clock()
        if (piecesSinceDraw >= redrawEveryPieces || now - lastDrawMs >= redrawEveryMs) {
            piecesSinceDraw = 0
            lastDrawMs = now
            _state.update { it.copy(ask = ask.copy(answer = answer.toString(), pieces = answerPieces, frameId = frameId)) }
        }
    }

    private fun onAnswer(question: String, text: String, frameId: Long, stats: LiveStats) {
        val ask = _state.value.ask ?: return
        if (!ask.streaming || ask.question != question) return
        _state.update {
            it.copy(
                ask = ask.copy(answer = text, pieces = answerPieces, frameId = frameId, streaming = false),
                numbers = numbers(stats),
            )
        }
    }

    private fun onFrameError(error: SmolVlmException) {
        val problem = error.toProblem()
        _state.update {
            // A frame that could not be read is skipped (a question waits for the next one); any
            // other failure was the answer itself (say, a question too long for the model).
            val ask = it.ask
            val failedAnswer = problem.kind != ProblemKind.BAD_FRAME && ask != null && ask.streaming
            it.copy(problem = problem, ask = if (failedAnswer) ask.copy(streaming = false) else ask)
        }
    }

    private fun report(e: Exception) = _state.update { it.copy(problem = e.toProblem()) }

    private fun numbers(stats: LiveStats) = LiveNumbers(
        firstTokenMs = stats.frameToFirstTokenMs.roundToLong(),
        tokensPerSecond = stats.decodeTokensPerS,
        memoryMb = memoryBytes() shr 20,
    )
}

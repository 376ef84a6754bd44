package dev.smolvlm.sample.state

import dev.smolvlm.Image
import dev.smolvlm.SmolVLM
import dev.smolvlm.ffi.LiveConfig
import dev.smolvlm.ffi.PixelFormat
import dev.smolvlm.ffi.liveObjects
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.ExecutorCoroutineDispatcher
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import org.junit.After
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.util.Collections
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/**
 * [LiveCaptioning] on the tiny fixture model through the real library: captions with their
 * numbers, ask mode on a frozen frame, Stop, the background pause, and failures that become
 * problems. A thread of the test stands in for the camera's analyzer; the captioning's "main
 * thread" is a single thread of the test's own, and its clock stands still, so the redraw
 * throttle goes by pieces only.
 */
class LiveCaptioningTest {
    companion object {
        private val fixtures = File(System.getProperty("smolvlm.fixtures") ?: "tests/fixtures").absoluteFile
        private lateinit var vlm: SmolVLM

        @BeforeClass @JvmStatic fun load() {
            vlm = runBlocking { SmolVLM.load(File(fixtures, "models/tiny-smolvlm2").path) }
        }

        @AfterClass @JvmStatic fun unload() = vlm.close()

        private const val W = 160
        private const val H = 120

        /** The redraw throttle's step: an answer is redrawn every EVERY pieces. */
        private const val EVERY = 3

        /** A 160×120 RGBA frame: a bright bar on a dark gradient, [step] px right (so no frame repeats). */
        private fun frame(step: Int) = Image.frame(
            ByteBuffer.allocateDirect(W * H * 4).also { buf ->
                for (y in 0 until H) for (x in 0 until W) {
                    val v = if ((x + W - step % W) % W < 40) 230 else 20 + y / 4
                    val i = (y * W + x) * 4
                    buf.put(i, v.toByte()); buf.put(i + 1, (v / 2).toByte()); buf.put(i + 2, (255 - v).toByte()); buf.put(i + 3, -1)
                }
            },
            PixelFormat.RGBA8888, W, H,
        )
    }

    private val main: ExecutorCoroutineDispatcher = Executors.newSingleThreadExecutor().asCoroutineDispatcher()
    private val scope = CoroutineScope(SupervisorJob() + main)
    private val stopCamera = AtomicBoolean(false)
    private val framesTaken = AtomicInteger()

    @After fun tearDown() {
        stopCamera.set(true)
        scope.cancel()
        main.close()
    }

    private fun captioning(maxTokens: Int) = LiveCaptioning(
        scope, LiveConfig(maxTokens = maxTokens, changeThreshold = 0f),
        clock = { 0L }, redrawEveryPieces = EVERY,
    )

    /** Runs [block] on the captioning's main thread, as the app's activity would. */
    private suspend fun <T> onMain(block: () -> T): T = withContext(main) { block() }

    private suspend fun LiveCaptioning.await(ms: Long = 30_000, ok: (CameraState) -> Boolean): CameraState =
        withTimeout(ms) { state.first(ok) }

    /** The camera: a new frame every 33 ms through [LiveCaptioning.push], until the test ends. */
    private fun camera(captioning: LiveCaptioning) = thread(name = "analyzer", isDaemon = true) {
        var n = 0
        while (!stopCamera.get()) {
            n++
            captioning.push(n * 33L) { framesTaken.incrementAndGet(); frame(n * 7) }
            Thread.sleep(33)
        }
    }

    /** Waits until the native side holds [n] live sessions (closing one finishes off the main thread). */
    private suspend fun awaitSessions(n: Long) = withTimeout(5_000) {
        while (liveObjects().captioners != n) delay(10)
    }

    @Test fun captionsComeWithTheirNumbers(): Unit = runBlocking {
        val c = captioning(maxTokens = 6)
        onMain { c.open(vlm) }
        camera(c)
        val s = c.await { it.numbers != null }
        assertTrue(s.running && s.ask == null && s.problem == null, "$s")
        val n = s.numbers!!
        assertTrue(n.firstTokenMs >= 0 && n.tokensPerSecond > 0 && n.memoryMb > 0, "$n")
        onMain { c.close() }
        assertEquals(false, c.state.value.running)
        awaitSessions(0)
    }

    @Test fun askFreezesTheFrameFollowUpsStayOnItAndTheAnswerIsRedrawnEveryFewPieces(): Unit = runBlocking {
        val c = captioning(maxTokens = 12)
        onMain { c.open(vlm) }
        camera(c)
        c.await { it.numbers != null }
        val seen = Collections.synchronizedList(mutableListOf<AskState>())
        val recorder = scope.launch { c.state.collect { s -> s.ask?.let(seen::add) } }

        onMain { c.ask(Preset.DESCRIBE.question) }
        val first = c.await { it.ask?.streaming == false }.ask!!
        assertEquals(Preset.DESCRIBE.question, first.question)
        assertTrue(first.pieces > 0 && first.answer.isNotEmpty() && !first.stopped, "$first")
        val frame = assertNotNull(first.frameId)
        // Drawn at the first piece, then every EVERY pieces (the clock stands still); the
        // collector may miss some redraws, never see others.
        val drawn = seen.filter { it.streaming && it.pieces > 0 }
        assertTrue(drawn.all { (it.pieces - 1) % EVERY == 0 }, "redrawn at ${drawn.map { it.pieces }}")
        assertTrue(drawn.all { it.frameId == frame })

        // Frames keep coming (a few more are taken first), but the follow-up is about the frozen frame.
        val before = framesTaken.get()
        withTimeout(5_000) { while (framesTaken.get() < before + 3) delay(10) }
        onMain { c.ask(" What colour is it? ") }
        val second = c.await { s -> s.ask?.let { it.question == "What colour is it?" && !it.streaming } == true }.ask!!
        assertEquals(frame, second.frameId, "the follow-up looked at the frozen frame")
        recorder.cancel()

        // A blank question is ignored; back to live captions.
        onMain { c.ask("   ") }
        assertEquals("What colour is it?", c.state.value.ask?.question)
        onMain { c.backToLive() }
        assertNull(c.state.value.ask)
        onMain { c.close() }
        awaitSessions(0)
    }

    @Test fun stopCutsTheAnswerShortAndTheNextQuestionStillWorks(): Unit = runBlocking {
        // Answers without end (the tiny model never says it is done): only Stop ends them. The
        // question is asked before any frame comes, so no endless caption runs first.
        val c = captioning(maxTokens = 100_000)
        onMain { c.open(vlm) }
        onMain { c.ask(Preset.READ_TEXT.question) }
        camera(c)
        c.await { (it.ask?.pieces ?: 0) > EVERY }
        onMain { c.stop() }
        val stopped = c.state.value.ask!!
        assertTrue(stopped.stopped && !stopped.streaming && stopped.answer.isNotEmpty(), "$stopped")
        // The old session is closed (within a decode step), a new one opens, still paused.
        c.await(5_000) { it.running }
        awaitSessions(1)
        val piecesAtStop = stopped.pieces
        assertEquals(piecesAtStop, c.state.value.ask!!.pieces, "nothing more came from the stopped answer")

        onMain { c.ask(Preset.WHAT_IS_THIS.question) }
        val next = c.await { s -> s.ask?.let { it.question == Preset.WHAT_IS_THIS.question && it.pieces > 0 } == true }.ask!!
        assertTrue(next.streaming && !next.stopped, "$next")
        onMain { c.stop() }
        c.await(5_000) { it.ask?.stopped == true && it.running }
        onMain { c.close() }
        awaitSessions(0)
    }

    @Test fun inTheBackgroundNoFrameIsTakenAndCaptionsResumeAfter(): Unit = runBlocking {
        val c = captioning(maxTokens = 4)
        onMain {
            c.setForeground(false)
            c.open(vlm)
        }
        camera(c)
        delay(500)
        assertEquals(0, framesTaken.get(), "no frame is even copied while the app is hidden")
        assertNull(c.state.value.numbers)
        onMain { c.setForeground(true) }
        c.await { it.numbers != null }
        assertTrue(framesTaken.get() > 0)
        onMain { c.close() }
        awaitSessions(0)
    }

    @Test fun aModelThatDoesNotFitIsANoMemoryProblem() {
        val p = dev.smolvlm.ffi.SmolVlmException.InsufficientMemory(2_100_000_000L, 900_000_000L, "r").toProblem()
        assertEquals(Problem(ProblemKind.NO_MEMORY, "r", 2_100_000_000L, 900_000_000L), p)
    }

    @Test fun badFramesAndAClosedModelAreProblemsNotCrashes(): Unit = runBlocking {
        val c = captioning(maxTokens = 4)
        onMain { c.open(vlm) }
        // Bytes that do not match the frame's size: the loop reports the frame and goes on.
        c.push(1) { Image.frame(ByteBuffer.allocateDirect(16), PixelFormat.RGBA8888, W, H) }
        assertEquals(ProblemKind.BAD_FRAME, c.await { it.problem != null }.problem!!.kind)
        // A converter that throws (say, an ImageProxy format the library does not take).
        c.push(2) { throw IllegalArgumentException("unsupported ImageProxy format 42") }
        val thrown = c.await { it.problem?.kind == ProblemKind.UNEXPECTED }.problem!!
        assertTrue("format 42" in thrown.detail, thrown.detail)
        // Good frames: captions come, and a caption clears the problem.
        camera(c)
        assertNull(c.await { it.numbers != null }.problem)
        onMain { c.close() }

        // A closed model: the session cannot open; the state says why, and asking does nothing.
        val closed = SmolVLM.load(File(fixtures, "models/tiny-smolvlm2").path).also { it.close() }
        onMain { c.open(closed) }
        val s = c.state.value
        assertTrue(!s.running && s.problem?.kind == ProblemKind.UNEXPECTED, "$s")
        onMain { c.ask(Preset.DESCRIBE.question) }
        assertNull(c.state.value.ask)
        awaitSessions(0)
    }
}

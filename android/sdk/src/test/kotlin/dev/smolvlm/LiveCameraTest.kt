package dev.smolvlm

import dev.smolvlm.ffi.CancelSignal
import dev.smolvlm.ffi.LiveConfig
import dev.smolvlm.ffi.LiveEvent
import dev.smolvlm.ffi.LoadStage
import dev.smolvlm.ffi.PixelFormat
import dev.smolvlm.ffi.SmolVlm
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.liveObjects
import dev.smolvlm.readme.captionCamera
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.util.Collections
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** Tests of the camera loop ([LiveCamera]) and of cancellable loading, on the tiny model. */
class LiveCameraTest {
    companion object {
        lateinit var vlm: SmolVLM

        @BeforeClass @JvmStatic fun load() {
            vlm = runBlocking { SmolVLM.load(SmolVLMTest.modelDir) }
        }

        @AfterClass @JvmStatic fun unload() = vlm.close()

        const val W = 160
        const val H = 120

        /** Draws a 160×120 RGBA frame into [buf]: a bright bar on a dark gradient, [step] px right. */
        fun draw(buf: ByteBuffer, step: Int): ByteBuffer {
            for (y in 0 until H) for (x in 0 until W) {
                val lit = (x + W - step % W) % W < 40
                val v = if (lit) 230 else 20 + y / 4
                val i = (y * W + x) * 4
                buf.put(i, v.toByte()); buf.put(i + 1, (v / 2).toByte()); buf.put(i + 2, (255 - v).toByte()); buf.put(i + 3, -1)
            }
            return buf
        }

        fun frame(step: Int) = Image.frame(draw(ByteBuffer.allocateDirect(W * H * 4), step), PixelFormat.RGBA8888, W, H)

        /** Resident memory of this process (VmRSS of /proc/self/status), in kB. */
        fun rssKb(): Long = File("/proc/self/status").readLines().first { it.startsWith("VmRSS:") }
            .split(Regex("\\s+"))[1].toLong()

        /** Pushes a moving frame every [periodMs] on a thread of its own until [stop] or the camera closes. */
        fun pusher(camera: LiveCamera, periodMs: Long, stop: AtomicBoolean): Thread = thread(name = "pusher") {
            val buf = ByteBuffer.allocateDirect(W * H * 4) // one buffer: push copies it
            var n = 0
            val t0 = System.nanoTime()
            while (!stop.get()) {
                n++
                try {
                    camera.push(Image.frame(draw(buf, n * 5), PixelFormat.RGBA8888, W, H), n * periodMs)
                } catch (e: SmolVlmException.InvalidArgument) {
                    break // closed
                }
                val next = t0 + n * periodMs * 1_000_000
                val wait = (next - System.nanoTime()) / 1_000_000
                if (wait > 0) Thread.sleep(wait)
            }
        }
    }

    @Test fun configDefaultsAreTheCores() {
        // The same values as the Rust test config_defaults_are_the_cores checks against the core.
        assertEquals(
            LiveConfig(
                prompt = "Describe what you see in one sentence.", systemPrompt = null, maxTokens = 48,
                minIntervalMs = 0, imageSplitting = false, changeThreshold = 2.0f, onlyNewText = false,
            ),
            LiveConfig(),
        )
    }

    /**
     * 20 s of frames at 30 fps: memory stays flat, answers move forward, frames are dropped.
     * (RSS is comparable because tools/test_bindings.sh gives the JVM a small, fixed, pre-touched
     * heap; what still grows is the JVM's own warm-up, ~1-3 MB.)
     */
    @Test fun soakAt30FpsKeepsMemoryFlat(): Unit = runBlocking {
        vlm.live(LiveConfig(maxTokens = 96)).use { camera ->
            val answers = Collections.synchronizedList(mutableListOf<LiveEvent.Answer>())
            val collector = launch(Dispatchers.Default) {
                camera.events.collect { if (it is LiveEvent.Answer) answers.add(it) }
            }
            val stop = AtomicBoolean(false)
            val push = pusher(camera, 33, stop)
            Thread.sleep(3_000)
            val warm = rssKb()
            Thread.sleep(17_000)
            val end = rssKb()
            stop.set(true)
            push.join()
            val counters = camera.counters
            camera.close()
            collector.join()
            val got = answers.toList()
            println("soak: ${counters.framesPushed} frames pushed, ${counters.framesDropped} dropped, ${got.size} answers, RSS $warm -> $end kB")
            assertTrue(counters.framesPushed in 540L..620L, "30 fps for 20 s: ${counters.framesPushed}")
            assertTrue(got.size >= 20, "answers kept coming: ${got.size}")
            val ids = got.map { it.frame.id }
            assertTrue(ids.zipWithNext().all { (a, b) -> a < b }, "answered frame ids strictly increase: $ids")
            assertTrue(got.all { it.question == null && it.stats.generatedTokens > 0L })
            assertTrue(got.sumOf { it.stats.framesDropped } > 0L && counters.framesDropped > 0L, "frames were dropped")
            assertTrue(end - warm < 5 * 1024, "RSS grew ${end - warm} kB after the warm-up (limit 5 MB)")
        }
    }

    @Test fun anUnchangedFrameIsNotCaptionedAgain(): Unit = runBlocking {
        vlm.live(LiveConfig(maxTokens = 4)).use { camera ->
            val events = Collections.synchronizedList(mutableListOf<Pair<Long, LiveEvent>>())
            val collector = launch(Dispatchers.Default) { camera.events.collect { events.add(System.nanoTime() to it) } }
            val still = draw(ByteBuffer.allocateDirect(W * H * 4), 3)
            camera.push(Image.frame(still, PixelFormat.RGBA8888, W, H), 0)
            withTimeout(10_000) { while (events.none { it.second is LiveEvent.Answer }) kotlinx.coroutines.delay(5) }
            val first = events.first { it.second is LiveEvent.Answer }.first
            // The same picture at 30 fps for 2.2 s.
            repeat(66) { i ->
                camera.push(Image.frame(still, PixelFormat.RGBA8888, W, H), 33L * (i + 1))
                Thread.sleep(33)
            }
            val after = events.filter { it.first > first }
            assertTrue(after.isEmpty(), "no caption for 2 s of identical frames: $after")
            val moved = camera.push(frame(80), 9_999)
            withTimeout(10_000) { while (events.count { it.second is LiveEvent.Answer } < 2) kotlinx.coroutines.delay(5) }
            val answer = events.map { it.second }.filterIsInstance<LiveEvent.Answer>().last()
            assertEquals(moved, answer.frame.id)
            assertTrue(answer.stats.framesSkipped > 0L, "the identical frames were skipped: ${answer.stats}")
            collector.cancelAndJoin()
        }
    }

    @Test fun aQuestionAboutTheLastSecondsIsAskedAsAVideo(): Unit = runBlocking {
        vlm.live(LiveConfig(maxTokens = 4, historySeconds = 5)).use { camera ->
            camera.pause()
            val buf = ByteBuffer.allocateDirect(W * H * 4)
            // Frames every 500 ms for 4 s: one per second is kept, the newest five.
            for (i in 0..8) camera.push(Image.frame(draw(buf, i * 5), PixelFormat.RGBA8888, W, H), i * 500L)
            val question = "What happened in the last seconds?"
            camera.askRecent(question, 3.0)
            val answer = withTimeout(10_000) {
                camera.events.first { it is LiveEvent.Answer && it.question != null } as LiveEvent.Answer
            }
            assertEquals(question, answer.question)
            assertEquals(4000L, answer.frame.timestampMs, "named after the newest kept frame")
            assertTrue(answer.text.isNotEmpty())
        }
        vlm.live(LiveConfig(historySeconds = 5)).use { camera ->
            assertFailsWith<SmolVlmException.InvalidArgument> { camera.askRecent("When?", 0.0) }
            assertFailsWith<SmolVlmException.InvalidArgument> { camera.askRecent(" ", 3.0) }
        }
        assertFailsWith<SmolVlmException.InvalidArgument> { vlm.live(LiveConfig(historySeconds = -1)) }
    }

    @Test fun aQuestionMidStreamIsAnsweredWithIt(): Unit = runBlocking {
        vlm.live(LiveConfig(maxTokens = 8)).use { camera ->
            val stop = AtomicBoolean(false)
            val push = pusher(camera, 33, stop)
            val question = "What colour is the bar?"
            val pieces = mutableListOf<LiveEvent.Piece>()
            var asked = false
            val answer = withTimeout(10_000) {
                camera.events.first { e ->
                    if (e is LiveEvent.Answer && !asked) { camera.ask(question); asked = true }
                    if (e is LiveEvent.Piece && e.question != null) pieces.add(e)
                    e is LiveEvent.Answer && e.question != null
                } as LiveEvent.Answer
            }
            stop.set(true)
            push.join()
            assertEquals(question, answer.question)
            assertTrue(answer.text.isNotEmpty())
            assertEquals(answer.text, pieces.joinToString("") { it.text }, "its pieces carry the question too")
            assertTrue(camera.isClosed, "first() stopped the collector, which closed the camera")
            assertFailsWith<SmolVlmException.InvalidArgument> { camera.ask("Again?") }
        }
    }

    @Test fun aBadFrameIsAnEventAndLaterFramesAreAnswered(): Unit = runBlocking {
        vlm.live().use { camera ->
            // 400 bytes claimed to be a 160×120 RGBA frame: only noticed when the loop converts it.
            val badId = camera.push(Image.frame(ByteArray(400), PixelFormat.RGBA8888, W, H), 1)
            val error = withTimeout(10_000) { camera.events.first { it is LiveEvent.FrameError } } as LiveEvent.FrameError
            assertEquals(badId, error.frame.id)
            assertTrue(error.error is SmolVlmException.InvalidImage, "got ${error.error}")
        }
        vlm.live().use { camera ->
            camera.push(Image.frame(ByteArray(400), PixelFormat.RGBA8888, W, H), 1)
            val goodId = camera.push(frame(0), 2)
            val answer = withTimeout(10_000) { camera.events.first { it is LiveEvent.Answer } } as LiveEvent.Answer
            assertEquals(goodId, answer.frame.id)
        }
        Unit
    }

    @Test fun closeStopsTheLoopAtOnceAndTheFlowCompletes(): Unit = runBlocking {
        val before = settledLiveObjects()
        val camera = vlm.live(LiveConfig(maxTokens = 100_000, changeThreshold = 0f))
        var pieces = 0
        var failure: Throwable? = null
        val collector = launch(Dispatchers.Default) {
            try { camera.events.collect { pieces++ } } catch (e: Throwable) { failure = e }
        }
        assertFailsWith<SmolVlmException.InvalidArgument> { camera.push(frame(0), -1) }
        camera.push(frame(0), 0)
        withTimeout(10_000) { while (pieces < 3) kotlinx.coroutines.delay(5) }
        assertEquals(before.captioners + 1, liveObjects().captioners)
        val t = System.nanoTime()
        camera.close()
        val closeMs = (System.nanoTime() - t) / 1_000_000
        withTimeout(1_000) { collector.join() }
        assertTrue(closeMs < 1_000, "close() took $closeMs ms")
        assertEquals(null, failure, "after close() the flow completes normally")
        assertTrue(camera.isClosed)
        assertEquals(before, liveObjects(), "the loop's thread and model share are gone")
        assertFailsWith<SmolVlmException.InvalidArgument> { camera.push(frame(1), 1) }
        assertFailsWith<SmolVlmException.InvalidArgument> { camera.pause() }
        camera.close()

        // Cancelling the collector closes the camera too, within a decode step.
        val other = vlm.live(LiveConfig(maxTokens = 100_000, changeThreshold = 0f))
        var n = 0
        val job = launch(Dispatchers.Default) { other.events.collect { n++ } }
        other.push(frame(0), 0)
        withTimeout(10_000) { while (n < 3) kotlinx.coroutines.delay(5) }
        val t2 = System.nanoTime()
        job.cancelAndJoin()
        assertTrue(System.nanoTime() - t2 < 1_000_000_000, "stopped within a decode step")
        assertTrue(other.isClosed)
        assertEquals(before, liveObjects())
    }

    @Test fun aCancelledLoadThrowsCancelled(): Unit = runBlocking {
        val before = settledLiveObjects()
        // The native call: a signal given before, or from the progress callback.
        val given = CancelSignal().also { it.cancel() }
        assertFailsWith<SmolVlmException.Cancelled> { SmolVlm.load(SmolVLMTest.modelDir, null, null, given) }
        val signal = CancelSignal()
        val stages = mutableListOf<LoadStage>()
        val listener = object : dev.smolvlm.ffi.LoadProgressListener {
            override fun onProgress(stage: LoadStage, fraction: Float) {
                stages.add(stage)
                if (stage == LoadStage.VISION) signal.cancel()
            }
        }
        assertFailsWith<SmolVlmException.Cancelled> { SmolVlm.load(SmolVLMTest.modelDir, null, listener, signal) }
        assertTrue(LoadStage.READY !in stages, "stopped early: $stages")
        // The wrapper: cancelling the loading coroutine, right away or from the progress callback.
        val job = async(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) { SmolVLM.load(SmolVLMTest.modelDir) }
        job.cancel()
        assertFailsWith<CancellationException> { job.await() }
        val seen = mutableListOf<LoadStage>()
        val started = CompletableDeferred<Unit>()
        lateinit var loading: kotlinx.coroutines.Deferred<SmolVLM>
        loading = async(Dispatchers.Default) {
            started.await()
            SmolVLM.load(SmolVLMTest.modelDir) { s, _ -> seen.add(s); if (s == LoadStage.VISION) loading.cancel() }
        }
        started.complete(Unit)
        assertFailsWith<CancellationException> { loading.await() }
        assertTrue(LoadStage.READY !in seen, "stopped early: $seen")
        assertEquals(before, liveObjects(), "nothing left behind")
    }

    @Test fun readmeLiveExampleRuns(): Unit = runBlocking {
        val caption = CompletableDeferred<String>()
        val stop = AtomicBoolean(false)
        var push: Thread? = null
        val job = launch(Dispatchers.Default) {
            captionCamera(vlm, { camera -> push = pusher(camera, 33, stop) }) { caption.complete(it) }
        }
        val text = withTimeout(10_000) { caption.await() }
        job.cancelAndJoin()
        stop.set(true)
        push?.join()
        assertTrue(text.isNotEmpty())
    }
}

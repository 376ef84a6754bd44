package dev.smolvlm

import dev.smolvlm.ffi.Backend
import dev.smolvlm.ffi.ChatRole
import dev.smolvlm.ffi.FinishReason
import dev.smolvlm.ffi.GenerationConfig
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.InternalException
import dev.smolvlm.ffi.LiveObjects
import dev.smolvlm.ffi.LoadOptions
import dev.smolvlm.ffi.LoadStage
import dev.smolvlm.ffi.PixelFormat
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.WeightPrecision
import dev.smolvlm.ffi.YuvColorRange
import dev.smolvlm.ffi.debugPanic
import dev.smolvlm.ffi.liveObjects
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import dev.smolvlm.readme.describe
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import kotlin.math.abs
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/**
 * The native objects alive once what earlier tests closed has finished closing (cameras and
 * answers end on background threads): the baseline of a leak check. Only models may remain.
 */
internal suspend fun settledLiveObjects(): LiveObjects {
    val deadline = System.nanoTime() + 10_000_000_000L
    while (true) {
        val o = liveObjects()
        if (o.sessions == 0L && o.streams == 0L && o.captioners == 0L) return o
        check(System.nanoTime() < deadline) { "earlier tests left $o open" }
        kotlinx.coroutines.delay(5)
    }
}

/** Tests of the Kotlin API on the JVM against the host build of the native library. */
class SmolVLMTest {
    companion object {
        private val fixtures = File(System.getProperty("smolvlm.fixtures") ?: "tests/fixtures").absoluteFile
        val modelDir = File(fixtures, "models/tiny-smolvlm2").path
        fun image(name: String) = File(fixtures, "images/$name").path
        lateinit var vlm: SmolVLM

        @BeforeClass @JvmStatic fun load() {
            // No image cache in the shared model: each test sees its images encoded, whatever ran
            // before (imageCacheIsSharedByChats tests the cache).
            vlm = runBlocking { SmolVLM.load(modelDir, LoadOptions(imageCacheMb = 0)) }
        }

        @AfterClass @JvmStatic fun unload() = vlm.close()

        /** The `greedy_text` of a reference case (a minimal JSON string reader). */
        fun greedyText(case: String): String {
            val json = File(fixtures, "cases/$case/case.json").readText()
            val start = json.indexOf("\"greedy_text\"").let { json.indexOf('"', json.indexOf(':', it)) + 1 }
            val out = StringBuilder()
            var i = start
            while (json[i] != '"') {
                if (json[i] == '\\') {
                    i++
                    when (json[i]) {
                        'n' -> out.append('\n'); 't' -> out.append('\t'); 'r' -> out.append('\r')
                        'u' -> { out.append(json.substring(i + 1, i + 5).toInt(16).toChar()); i += 4 }
                        else -> out.append(json[i])
                    }
                } else out.append(json[i])
                i++
            }
            return out.toString()
        }

        fun greedy(n: Int) = GenerationConfig(maxTokens = n)
    }

    private fun answer(img: ImageInput, q: String = "What is in the picture?", n: Int = 8): String = runBlocking {
        vlm.newChat(defaults = greedy(n)).use { it.ask(q, img).toList().joinToString("") }
    }

    @Test fun memoryEstimateBeforeLoading() {
        val f32 = SmolVLM.estimateMemory(modelDir, LoadOptions(contextLength = 1024))
        val q8 = SmolVLM.estimateMemory(modelDir, LoadOptions(contextLength = 1024, precision = WeightPrecision.Q8))
        assertEquals(f32.weights + f32.kvCache + f32.activations + f32.runtime, f32.total)
        assertEquals(1024, f32.contextLength)
        assertTrue(q8.weights < f32.weights && q8.kvCache * 2 == f32.kvCache, "$q8 vs $f32")
        assertFailsWith<SmolVlmException.ModelMissing> { SmolVLM.estimateMemory("/no/such/model") }
        assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.estimateMemory(modelDir, LoadOptions(contextLength = -1)) }
    }

    @Test fun sameGreedyTextAsRustAndTransformers() = runBlocking {
        val want = greedyText("split_wide")
        vlm.newChat().use { chat ->
            val pieces = chat.ask("Can you describe this image?", listOf(Image.file(image("wide.png"))), greedy(16)).toList()
            assertEquals(want, pieces.joinToString(""))
            assertEquals(13L, chat.stats!!.visionTiles)
            assertEquals(16L, chat.stats!!.generatedTokens)
        }
    }

    @Test fun streamingDeliversPiecesInOrder() = runBlocking {
        vlm.newChat(defaults = greedy(12)).use { chat ->
            val seen = mutableListOf<String>()
            chat.ask("Tell me a story.").collect { seen.add(it) }
            assertTrue(seen.size > 1, "several pieces: $seen")
            assertTrue(seen.all { it.isNotEmpty() })
            val last = chat.transcript.last()
            assertEquals(ChatRole.ASSISTANT, last.role)
            assertEquals(seen.joinToString("").trimStart(), last.text)
        }
    }

    @Test fun encodedBytesAndFileGiveTheSameAnswer() {
        val bytes = File(image("small.png")).readBytes()
        val fromBytes = Image.encoded(bytes)
        val heap = Image.encoded(ByteBuffer.wrap(bytes))
        assertEquals(fromBytes.rgbBytes().toList(), heap.rgbBytes().toList())
        assertEquals(answer(Image.file(image("small.png"))), answer(fromBytes))
    }

    /** Rotates packed RGB counter-clockwise by 90°, i.e. what a sensor mounted sideways gives. */
    private fun rotateCcw(rgb: ByteArray, w: Int, h: Int): ByteArray {
        val out = ByteArray(rgb.size)
        for (y in 0 until h) for (x in 0 until w) {
            val (nx, ny) = y to (w - 1 - x)
            System.arraycopy(rgb, (y * w + x) * 3, out, (ny * h + nx) * 3, 3)
        }
        return out
    }

    @Test fun rawRgbaFrameWithStrideAndRotation() {
        val png = Image.file(image("small.png"))
        val (w, h) = png.width() to png.height()
        val sideways = rotateCcw(png.rgbBytes(), w, h)
        val (fw, fh) = h to w
        val stride = fw * 4 + 12
        val frame = ByteBuffer.allocateDirect(stride * fh)
        for (y in 0 until fh) for (x in 0 until fw) {
            val s = (y * fw + x) * 3
            frame.put(y * stride + x * 4, sideways[s]); frame.put(y * stride + x * 4 + 1, sideways[s + 1])
            frame.put(y * stride + x * 4 + 2, sideways[s + 2]); frame.put(y * stride + x * 4 + 3, -1)
        }
        val img = Image.pixels(frame, PixelFormat.RGBA8888, fw, fh, rowStride = stride, rotationDegrees = 90)
        assertEquals(w to h, img.width() to img.height())
        assertTrue(img.rgbBytes().contentEquals(png.rgbBytes()), "upright again, pixel for pixel")
        assertEquals(answer(png), answer(img))
        // BGRA: the same frame with red and blue swapped reads differently.
        val bgr = Image.pixels(frame, PixelFormat.BGRA8888, fw, fh, rowStride = stride, rotationDegrees = 90)
        assertTrue(!bgr.rgbBytes().contentEquals(png.rgbBytes()))
    }

    /** Full-range BT.601 (JFIF), as Android cameras produce. */
    private fun ycbcr(r: Int, g: Int, b: Int): IntArray = intArrayOf(
        Math.round(0.299 * r + 0.587 * g + 0.114 * b).toInt(),
        Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b).toInt().coerceIn(0, 255),
        Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b).toInt().coerceIn(0, 255),
    )

    /** A w x h image whose 2x2 blocks share one colour (so 4:2:0 chroma loses nothing). */
    private fun blocky(w: Int, h: Int) = ByteArray(w * h * 3) { i ->
        val p = i / 3; val x = (p % w) / 2; val y = (p / w) / 2
        when (i % 3) { 0 -> (x * 37 + y * 11) % 256; 1 -> (255 - x * 23) and 255; else -> (y * 53 + 40) % 256 }.toByte()
    }

    private fun assertClose(want: ByteArray, got: ByteArray, tol: Int) {
        assertEquals(want.size, got.size)
        val worst = want.indices.maxOf { abs((want[it].toInt() and 255) - (got[it].toInt() and 255)) }
        assertTrue(worst <= tol, "largest difference $worst > $tol")
    }

    @Test fun nv21FrameWithStrideAndRotation() {
        val (w, h, stride) = Triple(40, 24, 48)
        val upright = blocky(h, w) // the frame is stored sideways: w x h, upright is h x w
        val stored = rotateCcw(upright, h, w)
        val nv21 = ByteArray(stride * h * 3 / 2)
        for (y in 0 until h) for (x in 0 until w) {
            val s = (y * w + x) * 3
            val (l, cb, cr) = ycbcr(stored[s].toInt() and 255, stored[s + 1].toInt() and 255, stored[s + 2].toInt() and 255).toList()
            nv21[y * stride + x] = l.toByte()
            val c = stride * h + (y / 2) * stride + (x / 2) * 2
            nv21[c] = cr.toByte(); nv21[c + 1] = cb.toByte()
        }
        val img = Image.pixels(nv21, PixelFormat.NV21, w, h, rowStride = stride, rotationDegrees = 90)
        assertEquals(h to w, img.width() to img.height())
        assertClose(upright, img.rgbBytes(), 2)
        // NV12 reads the chroma pairs the other way round: clearly different colours.
        val swapped = Image.pixels(nv21, PixelFormat.NV12, w, h, rowStride = stride, rotationDegrees = 90)
        assertTrue(!swapped.rgbBytes().contentEquals(img.rgbBytes()))
        assertTrue(answer(img).isNotEmpty())
    }

    @Test fun yuv420ThreePlanesFromDirectBuffers() {
        val (w, h) = 6 to 4
        val y = ByteBuffer.allocateDirect(8 * h).also { for (i in 0 until it.capacity()) it.put(i, 200.toByte()) }
        val uv = ByteBuffer.allocateDirect(8 * 2).also { for (i in 0 until it.capacity()) it.put(i, 128.toByte()) }
        val v = uv.duplicate(); val u = uv.duplicate().position(1) as ByteBuffer
        val img = Image.yuv420(y, u, v, w, h, yRowStride = 8, uvRowStride = 8, uvPixelStride = 2, rotationDegrees = 270)
        assertEquals(4 to 6, img.width() to img.height())
        assertTrue(img.rgbBytes().all { it == 200.toByte() })
        val video = Image.yuv420(y, u, v, w, h, 8, 8, 2, range = YuvColorRange.LIMITED)
        assertTrue(video.rgbBytes().all { it == 214.toByte() }, "(200-16)*255/219")
    }

    @Test fun followUpDoesNotReencodeTheImage() = runBlocking {
        vlm.newChat(systemPrompt = "You are a concise assistant.", defaults = greedy(4)).use { chat ->
            chat.ask("What do you see?", Image.file(image("tall.png"))).toList()
            val first = chat.stats!!
            assertTrue(first.visionTiles > 0L && first.visionEncodeMs > 0.0)
            chat.ask("And how many shapes are there?").toList()
            val second = chat.stats!!
            assertEquals(0L, second.visionTiles)
            assertEquals(0.0, second.visionEncodeMs)
            assertTrue(second.prefillTokens * 4L < second.promptTokens, "only the new turn is computed: $second")
            assertEquals(5, chat.transcript.size)
            chat.reset()
            assertTrue(chat.transcript.isEmpty())
        }
    }

    @Test fun cancelFromAnotherThread() {
        vlm.newChat(defaults = greedy(100_000)).use { chat ->
            var error: Throwable? = null
            var pieces = 0
            val reader = Thread {
                try { runBlocking { chat.ask("Describe it at length.", Image.file(image("wide.png"))).collect { pieces++ } } }
                catch (e: Throwable) { error = e }
            }
            reader.start()
            val t0 = System.nanoTime()
            while (pieces < 3 && System.nanoTime() - t0 < 30_000_000_000) Thread.sleep(5)
            val t = System.nanoTime()
            chat.cancel()
            reader.join(5_000)
            assertTrue(!reader.isAlive, "the stream ended")
            assertTrue(System.nanoTime() - t < 2_000_000_000, "within a step")
            assertTrue(error is SmolVlmException.Cancelled, "got $error")
            assertTrue(pieces >= 3)
            assertTrue(chat.transcript.isEmpty(), "the cancelled question is undone")
        }
    }

    @Test fun cancellingTheCollectorCancelsGeneration() = runBlocking {
        vlm.newChat(defaults = greedy(100_000)).use { chat ->
            assertEquals(2, chat.ask("Count to a million.").take(2).toList().size)
            assertTrue(chat.transcript.isEmpty(), "the abandoned question is undone")
            var n = 0
            val job = launch(Dispatchers.Default) { chat.ask("Again, please.").collect { n++ } }
            while (n < 2) kotlinx.coroutines.delay(5)
            val t = System.nanoTime()
            job.cancelAndJoin()
            assertTrue(System.nanoTime() - t < 2_000_000_000)
            // The session is free again at once.
            assertEquals(1, chat.ask("Hi", options = greedy(1)).toList().size)
        }
    }

    /**
     * Stress, bounded in time: chats whose answers are collected by several coroutines at once,
     * collectors cancelled at random points, chats closed while they generate. Only typed errors;
     * afterwards no native chat or answer is left.
     */
    @Test fun collectorsCancelledAtRandomAndChatsClosedWhileGenerating() = runBlocking {
        val before = settledLiveObjects()
        val rng = java.util.Random(7)
        val end = System.nanoTime() + 8_000_000_000L
        var pieces = 0
        while (System.nanoTime() < end) {
            val chat = vlm.newChat(defaults = greedy(1 + rng.nextInt(24)))
            val jobs = (0 until 3).map { i ->
                launch(Dispatchers.Default) {
                    try {
                        chat.ask("Question $i?").collect { pieces++ }
                    } catch (e: SmolVlmException.InvalidArgument) {
                        // busy with another collector's answer, or closed
                    } catch (e: SmolVlmException.Cancelled) {
                        // closed while generating
                    }
                }
            }
            kotlinx.coroutines.delay(rng.nextInt(40).toLong())
            when (rng.nextInt(3)) {
                0 -> jobs[rng.nextInt(jobs.size)].cancel()
                1 -> chat.close()
                else -> {}
            }
            jobs.forEach { it.join() }
            chat.close()
        }
        val deadline = System.nanoTime() + 5_000_000_000L
        while (liveObjects() != before && System.nanoTime() < deadline) kotlinx.coroutines.delay(10)
        assertEquals(before, liveObjects(), "no chat or answer left behind")
        assertTrue(pieces > 50, "the stress did some work: $pieces pieces")
    }

    @Test fun everyErrorVariant() = runBlocking {
        assertFailsWith<SmolVlmException.ModelMissing> { SmolVLM.load("/nonexistent/model") }
        val broken = kotlin.io.path.createTempDirectory("smolvlm-bad").toFile()
        File(modelDir).listFiles()!!.forEach { it.copyTo(File(broken, it.name)) }
        File(broken, "config.json").writeText("{ not json")
        val invalid = assertFailsWith<SmolVlmException.ModelInvalid> { SmolVLM.load(broken.path) }
        assertTrue(invalid.message!!.contains("config.json"), invalid.message)
        broken.deleteRecursively()
        assertFailsWith<SmolVlmException.InvalidImage> { Image.encoded("not an image".toByteArray()) }
        assertFailsWith<SmolVlmException.InvalidImage> { Image.file(image("missing.png")) }
        assertFailsWith<SmolVlmException.InvalidImage> { Image.pixels(ByteArray(10), PixelFormat.RGBA8888, 4, 4) }
        assertFailsWith<SmolVlmException.InvalidArgument> { Image.pixels(ByteArray(64), PixelFormat.RGBA8888, 4, 4, rotationDegrees = 45) }
        // The API is signed (Java has no unsigned types): a negative size is refused by name.
        val negative = assertFailsWith<SmolVlmException.InvalidArgument> { Image.frame(ByteArray(64), PixelFormat.RGBA8888, -4, 4) }
        assertTrue(negative.message!!.contains("width"), negative.message)
        assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.load(modelDir, LoadOptions(threads = -1)) }
        vlm.newChat().use { chat ->
            assertFailsWith<SmolVlmException.InvalidArgument> { chat.ask("hi", options = GenerationConfig(maxTokens = 0)).toList() }
            val limit = vlm.info.contextLength
            val overflow = assertFailsWith<SmolVlmException.ContextOverflow> { chat.ask("word ".repeat(limit.toInt() + 10)).toList() }
            assertEquals(limit, overflow.limit)
            assertTrue(overflow.tokens > limit)
            assertFailsWith<SmolVlmException.Cancelled> {
                chat.ask("hi", options = greedy(1000)).collect { chat.cancel() }
            }
        }
        val closed = runBlocking { SmolVLM.load(modelDir) }
        closed.close()
        assertFailsWith<SmolVlmException.InvalidArgument> { closed.newChat() }
        // A Rust panic becomes an exception, not a crash.
        val panic = assertFailsWith<InternalException> { debugPanic("boom") }
        assertTrue(panic.message!!.contains("boom"), panic.message)
        Unit
    }

    @Test fun closeFreesNativeMemory() = runBlocking {
        val before = settledLiveObjects()
        val other = SmolVLM.load(modelDir)
        val a = other.newChat(); val b = other.newChat()
        assertEquals(before.engines + 1, liveObjects().engines)
        assertEquals(before.sessions + 2, liveObjects().sessions)
        a.ask("Hello", options = greedy(2)).toList()
        other.close()
        assertEquals(before.engines + 1, liveObjects().engines, "open chats keep the weights")
        a.close(); b.close()
        assertEquals(before, liveObjects())
    }

    @Test fun concurrentSessionsShareOneEngine() = runBlocking {
        val want = vlm.newChat(defaults = greedy(6)).use { it.ask("Tell me a story.").toList().joinToString("") }
        val got = (1..3).map {
            async(Dispatchers.Default) { vlm.newChat(defaults = greedy(6)).use { it.ask("Tell me a story.").toList().joinToString("") } }
        }.awaitAll()
        assertEquals(listOf(want, want, want), got)
    }

    @Test fun loadOptionsAndProgress() = runBlocking {
        val stages = mutableListOf<Pair<LoadStage, Float>>()
        SmolVLM.load(modelDir, LoadOptions(imageSplitting = false, longestEdge = 64, threads = 1)) { s, f -> stages.add(s to f) }.use { small ->
            assertEquals(LoadStage.READING to 0.0f, stages.first())
            assertEquals(LoadStage.READY to 1.0f, stages.last())
            assertTrue(stages.zipWithNext().all { (a, b) -> a.second < b.second }, "fractions grow: $stages")
            assertEquals(setOf(LoadStage.READING, LoadStage.VISION, LoadStage.TEXT, LoadStage.READY), stages.map { it.first }.toSet())
            assertEquals(false, small.info.imageSplitting)
            small.newChat(defaults = greedy(2)).use { chat ->
                chat.ask("What?", Image.file(image("wide.png"))).toList()
                assertEquals(1L, chat.stats!!.visionTiles)
            }
        }
    }

    @Test fun imageCacheIsSharedByChats() = runBlocking {
        suspend fun askWide(model: SmolVLM) = model.newChat(defaults = greedy(2)).use { chat ->
            chat.ask("What?", Image.file(image("wide.png"))).toList()
            chat.stats!!
        }
        SmolVLM.load(modelDir).use { cached ->
            val first = askWide(cached)
            assertEquals(13L to 0L, first.visionTiles to first.cachedImages)
            val second = askWide(cached)
            assertEquals(0L to 1L, second.visionTiles to second.cachedImages, "a new chat reuses the encoding")
        }
        repeat(2) { assertEquals(13L to 0L, askWide(vlm).let { it.visionTiles to it.cachedImages }, "imageCacheMb = 0: no cache") }
    }

    @Test fun quantizedPrecisionsLoadAndAnswer() = runBlocking {
        SmolVLM.load(modelDir, LoadOptions(precision = WeightPrecision.F16)).use { f16 ->
            assertEquals(WeightPrecision.F16, f16.info.precision)
            f16.newChat().use { chat ->
                val text = chat.ask("Can you describe this image?", listOf(Image.file(image("wide.png"))), greedy(16)).toList().joinToString("")
                assertEquals(greedyText("split_wide"), text, "f16 keeps the reference's greedy answer here")
            }
        }
        SmolVLM.load(modelDir, LoadOptions(precision = WeightPrecision.Q8)).use { q8 ->
            assertEquals(WeightPrecision.Q8, q8.info.precision)
            q8.newChat(defaults = greedy(8)).use { chat ->
                assertTrue(chat.ask("What is in the picture?", Image.file(image("wide.png"))).toList().isNotEmpty())
                assertEquals(8L, chat.stats!!.generatedTokens)
                assertEquals(13L, chat.stats!!.visionTiles)
            }
        }
        assertEquals(WeightPrecision.F32, vlm.info.precision, "the default")
    }

    @Test fun contextLengthCapsTheChat() = runBlocking {
        SmolVLM.load(modelDir, LoadOptions(contextLength = 64)).use { small ->
            assertEquals(64L, small.info.contextLength)
            small.newChat().use { chat ->
                val e = assertFailsWith<SmolVlmException.ContextOverflow> { chat.ask("word ".repeat(80)).toList() }
                assertEquals(64L, e.limit)
                assertTrue(e.tokens > 64L)
                chat.ask("Hi", options = greedy(1000)).toList()
                val stats = chat.stats!!
                assertEquals(FinishReason.LENGTH, stats.finishReason)
                assertEquals(64L, stats.promptTokens + stats.generatedTokens, "the answer stops where the context is full")
            }
        }
        val max = vlm.info.contextLength
        assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.load(modelDir, LoadOptions(contextLength = (max + 1).toInt())) }
        assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.load(modelDir, LoadOptions(contextLength = 0)) }
        Unit
    }

    @Test fun metalIsATypedErrorWhereItIsMissing() = runBlocking {
        assertEquals(Backend.CPU, vlm.info.backend, "the default")
        // The JVM tests run on Linux, where the library has no Metal backend.
        val e = assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.load(modelDir, LoadOptions(backend = Backend.METAL)) }
        assertTrue(e.message!!.contains("Metal"), e.message)
        SmolVLM.load(modelDir, LoadOptions(backend = Backend.AUTO)).use { assertEquals(Backend.CPU, it.info.backend) }
    }

    @Test fun ggufPairTakesImages() = runBlocking {
        val gguf = File(fixtures, "gguf")
        val options = LoadOptions(mmproj = File(gguf, "mmproj-tiny-smolvlm2-f16.gguf").path)
        SmolVLM.load(File(gguf, "tiny-smolvlm2-f16.gguf").path, options).use { pair ->
            assertTrue(pair.info.hasVision)
            pair.newChat(defaults = greedy(4)).use { chat ->
                assertTrue(chat.ask("What is in the picture?", Image.file(image("wide.png"))).toList().isNotEmpty())
                assertTrue(chat.stats!!.visionTiles > 0L)
            }
        }
    }

    @Test fun readmeExampleRuns() = runBlocking {
        val text = describe(modelDir, image("wide.png"))
        assertTrue(text.isNotEmpty())
    }

    @Test fun statsOfTheStreamAreNullUntilAnAnswerFinishes() {
        vlm.newChat().use { chat -> assertNull(chat.stats); assertNotNull(vlm.info) }
    }
}

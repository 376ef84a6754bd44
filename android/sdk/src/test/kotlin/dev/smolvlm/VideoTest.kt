package dev.smolvlm

import dev.smolvlm.ffi.GenerationConfig
import dev.smolvlm.ffi.LoadOptions
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.VideoInput
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import dev.smolvlm.readme.describeClip
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/**
 * Videos through the Kotlin API: the reference conversations of tests/fixtures/cases/video_*
 * give the same greedy text as Rust and transformers (and the Swift suite).
 */
class VideoTest {
    companion object {
        private val fixtures = File(System.getProperty("smolvlm.fixtures") ?: "tests/fixtures").absoluteFile
        lateinit var vlm: SmolVLM

        @BeforeClass @JvmStatic fun load() {
            // No image cache: each question encodes its frames, so the tile counts are the prompt's.
            vlm = runBlocking { SmolVLM.load(SmolVLMTest.modelDir, LoadOptions(imageCacheMb = 0)) }
        }

        @AfterClass @JvmStatic fun unload() = vlm.close()

        /** The user turn of a case's messages.json: its video, image paths and text. */
        class Turn(val frames: List<String>, val timestamps: List<Double>, val duration: Double, val images: List<String>, val text: String)

        /** Reads messages.json (one user message: a video, then images, then a text) with regexes. */
        fun turn(case: String): Turn {
            val dir = File(fixtures, "cases/$case")
            val json = File(dir, "messages.json").readText()
            fun path(p: String) = File(dir, p).canonicalPath
            fun strings(key: String) = Regex("\"$key\"\\s*:\\s*\\[([^\\]]*)]").find(json)!!.groupValues[1]
            val frames = Regex("\"([^\"]+)\"").findAll(strings("frames")).map { path(it.groupValues[1]) }.toList()
            val timestamps = strings("timestamps").split(',').map { it.trim().toDouble() }
            val duration = Regex("\"duration\"\\s*:\\s*([0-9.eE+-]+)").find(json)!!.groupValues[1].toDouble()
            val images = Regex("\"path\"\\s*:\\s*\"([^\"]+)\"").findAll(json).map { path(it.groupValues[1]) }.toList()
            val text = Regex("\"text\"\\s*:\\s*\"([^\"]*)\"").find(json)!!.groupValues[1]
            return Turn(frames, timestamps, duration, images, text)
        }

        /** The integers of a case.json array, e.g. the first video's `sampled_indices`. */
        fun ints(case: String, key: String): List<Int> {
            val json = File(fixtures, "cases/$case/case.json").readText()
            return Regex("\"$key\"\\s*:\\s*\\[([^\\]]*)]").find(json)!!.groupValues[1].split(',').map { it.trim().toInt() }
        }

        fun greedy16() = GenerationConfig(maxTokens = 16, temperature = 0f)
    }

    /** Asks [text] about [video] and [images] in a new chat; returns the text and the tiles encoded. */
    private fun answer(video: VideoInput, images: List<String>, text: String, model: SmolVLM = vlm): Pair<String, Long> = runBlocking {
        model.newChat().use { chat ->
            val pieces = chat.ask(text, images.map(Image::file), greedy16(), videos = listOf(video)).toList()
            assertEquals(16L, chat.stats!!.generatedTokens)
            pieces.joinToString("") to chat.stats!!.visionTiles
        }
    }

    @Test fun videoAndImageGiveTheSameGreedyTextAsRustAndTransformers() {
        val t = turn("video_and_image")
        assertEquals(6, t.frames.size)
        assertEquals(listOf("small.png"), t.images.map { File(it).name })
        val video = Video.frames(t.frames.map(Image::file), t.timestamps, t.duration)
        assertEquals(6, video.frameCount())
        assertEquals(3.0, video.duration())
        val (text, tiles) = answer(video, t.images, t.text)
        assertEquals(SmolVLMTest.greedyText("video_and_image"), text)
        assertEquals(3L + 13L, tiles, "3 chosen frames, then small.png's 12 tiles and its overview")
        // The one-video overload: the same conversation.
        val again = runBlocking {
            vlm.newChat(defaults = greedy16()).use { it.ask(t.text, video, Image.file(t.images[0])).toList().joinToString("") }
        }
        assertEquals(text, again)
    }

    @Test fun readmeVideoExampleRuns() = runBlocking {
        val t = turn("video_and_image")
        val text = describeClip(vlm, t.frames, fps = 2.0)
        assertTrue(text.isNotEmpty())
        // The README's timestamps and duration (index / fps, count / fps) are the fixture's.
        val clip = Video.frames(t.frames.map(Image::file), t.timestamps, t.duration)
        val direct = vlm.newChat().use { it.ask("What happens in this video?", videos = listOf(clip)).toList().joinToString("") }
        assertEquals(direct, text)
    }

    @Test fun frameIndicesOfALongVideo() {
        assertEquals(64, vlm.info.videoFrameLimit)
        val indices = vlm.videoFrameIndices(130, 65.0)
        assertEquals(64, indices.size)
        assertEquals(0, indices.first())
        assertEquals(129, indices.last())
        assertEquals(ints("video_max_frames", "sampled_indices"), indices)
        assertFailsWith<SmolVlmException.InvalidArgument> { vlm.videoFrameIndices(0, 1.0) }
        assertFailsWith<SmolVlmException.InvalidArgument> { vlm.videoFrameIndices(3, 0.0) }
    }

    @Test fun chosenFramesGiveTheSameTextAsTheWholeVideo() {
        val t = turn("video_max_frames")
        assertEquals(130, t.frames.size)
        val frames = t.frames.map(Image::file)
        val want = SmolVLMTest.greedyText("video_max_frames")
        val (whole, wholeTiles) = answer(Video.frames(frames, t.timestamps, t.duration), emptyList(), t.text)
        assertEquals(want, whole)
        assertEquals(64L, wholeTiles)
        // What a decoder does: decode only the frames the question reads.
        val indices = vlm.videoFrameIndices(frames.size, t.duration)
        val chosen = Video.chosen(indices.map { frames[it] }, indices.map { t.timestamps[it] }, t.duration)
        assertEquals(64, chosen.frameCount())
        val (text, tiles) = answer(chosen, emptyList(), t.text)
        assertEquals(want, text)
        assertEquals(64L, tiles)
        // More chosen frames than the model reads is refused.
        val tooMany = Video.chosen(frames, t.timestamps, t.duration)
        assertFailsWith<SmolVlmException.InvalidArgument> { answer(tooMany, emptyList(), t.text) }
    }

    @Test fun badVideosAreInvalidArguments() {
        val frame = Image.file(SmolVLMTest.image("small.png"))
        assertFailsWith<SmolVlmException.InvalidArgument> { Video.frames(emptyList(), emptyList(), 1.0) }
        assertFailsWith<SmolVlmException.InvalidArgument> { Video.frames(listOf(frame, frame), listOf(0.0), 2.0) }
        assertFailsWith<SmolVlmException.InvalidArgument> { Video.frames(listOf(frame, frame), listOf(1.0, 0.0), 2.0) }
        assertFailsWith<SmolVlmException.InvalidArgument> { Video.chosen(listOf(frame), listOf(0.0), Double.NaN) }
        assertFailsWith<SmolVlmException.InvalidArgument> { Video.chosen(listOf(frame), listOf(-1.0), 2.0) }
    }

    @Test fun anImageOnlyModelRefusesVideos() = runBlocking {
        SmolVLM.load(File(fixtures, "models/tiny-idefics3").path).use { idefics ->
            assertEquals(0, idefics.info.videoFrameLimit)
            assertFailsWith<SmolVlmException.InvalidArgument> { idefics.videoFrameIndices(6, 3.0) }
            val frame = Image.file(SmolVLMTest.image("small.png"))
            val video = Video.frames(listOf(frame, frame), listOf(0.0, 0.5), 1.0)
            idefics.newChat().use { chat ->
                assertFailsWith<SmolVlmException.InvalidArgument> { chat.ask("What happens?", videos = listOf(video)).toList() }
                assertTrue(chat.transcript.isEmpty(), "the refused question is not in the transcript")
                // The chat still answers questions without videos.
                assertTrue(chat.ask("Hi", options = GenerationConfig(maxTokens = 2)).toList().isNotEmpty())
            }
        }
    }

    @Test fun maxVideoFramesCapsTheFramesRead() = runBlocking {
        SmolVLM.load(SmolVLMTest.modelDir, LoadOptions(maxVideoFrames = 8)).use { capped ->
            assertEquals(8, capped.info.videoFrameLimit)
            val indices = capped.videoFrameIndices(130, 65.0)
            assertEquals(8, indices.size)
            // 65 s is longer than 8 frames at 1 fps + 2 s: 1 s is trimmed at both ends (frames 2 to 130 - 2).
            assertEquals(2, indices.first())
            assertEquals(128, indices.last())
        }
        assertFailsWith<SmolVlmException.InvalidArgument> { SmolVLM.load(SmolVLMTest.modelDir, LoadOptions(maxVideoFrames = -1)) }
        Unit
    }
}

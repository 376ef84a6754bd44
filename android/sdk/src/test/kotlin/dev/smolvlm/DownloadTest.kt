package dev.smolvlm

import dev.smolvlm.ffi.CheckpointFormat
import dev.smolvlm.ffi.DownloadProgress
import dev.smolvlm.ffi.DownloadRequest
import dev.smolvlm.ffi.GenerationConfig
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.WeightPrecision
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import java.util.Collections
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue

/**
 * [SmolVLM.download] against the local hub (tests/hub/server.py: 127.0.0.1, its CDN on
 * 127.0.0.2), with the faults it injects per repo: dropped connections, corrupt bytes, 401/403/404,
 * a stalled CDN.
 */
class DownloadTest {
    companion object {
        private val fixtures = File(System.getProperty("smolvlm.fixtures") ?: "tests/fixtures").absoluteFile
        private val model = File(fixtures, "models/tiny-smolvlm2")
        private lateinit var hub: Process
        private lateinit var url: String
        private lateinit var tmp: File
        private val log get() = File(tmp, "hub.log")

        @BeforeClass @JvmStatic fun startHub() {
            tmp = kotlin.io.path.createTempDirectory("smolvlm-download").toFile()
            // The hub runs until its stdin (a pipe, kept open here) reaches end of file.
            hub = ProcessBuilder("python3", File(fixtures, "../hub/server.py").canonicalPath, "--log", log.path)
                .redirectError(File(tmp, "hub.err"))
                .start()
            url = hub.inputStream.bufferedReader().readLine()
                ?: error("the local hub did not start: ${File(tmp, "hub.err").readText()}")
        }

        @AfterClass @JvmStatic fun stopHub() {
            hub.outputStream.close()
            hub.destroy()
            hub.waitFor()
            tmp.deleteRecursively()
        }

        fun request(
            repo: String,
            folder: File? = null,
            cacheDir: File? = null,
            token: String? = null,
            keepFreeBytes: Long = 0L,
        ) = DownloadRequest(
            repoId = "smolvlm-test/$repo", folder = folder?.path, cacheDir = cacheDir?.path,
            token = token, endpoint = url, keepFreeBytes = keepFreeBytes,
        )

        /** A field of one log line (`null` for JSON null; strings without escapes, numbers). */
        fun field(line: String, key: String): String? {
            val m = Regex("\"$key\": (null|\"([^\"\\\\]*)\"|-?\\d+)").find(line) ?: error("no $key in $line")
            return when {
                m.groupValues[1] == "null" -> null
                m.groupValues[1].startsWith("\"") -> m.groupValues[2]
                else -> m.groupValues[1]
            }
        }

        /** Finished GETs of the CDN (the weights) for a repo. */
        fun cdnGets(repo: String): List<String> =
            (if (log.exists()) log.readLines() else emptyList()).filter {
                field(it, "host") == "cdn" && field(it, "method") == "GET" && field(it, "path")!!.contains("/smolvlm-test/$repo/")
            }

        /** [cdnGets] once [ok] holds for them (the hub logs a request just after it ends), or after 3 s. */
        suspend fun awaitCdnGets(repo: String, ok: (List<String>) -> Boolean): List<String> {
            val t0 = System.nanoTime()
            while (!ok(cdnGets(repo)) && System.nanoTime() - t0 < 3_000_000_000) delay(20)
            return cdnGets(repo)
        }

        fun sameAsFixture(dir: String, name: String) = File(dir, name).readBytes().contentEquals(File(model, name).readBytes())
    }

    @Test fun tinyIntoAFolderWithProgressThenLoads() = runBlocking {
        val dir = File(tmp, "tiny")
        val seen = Collections.synchronizedList(mutableListOf<DownloadProgress>())
        val path = SmolVLM.download(request("tiny", folder = dir)) { seen.add(it) }
        assertEquals(dir.path, path)
        for (f in listOf("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "model.safetensors")) {
            assertTrue(sameAsFixture(path, f), f)
        }
        assertTrue(seen.isNotEmpty())
        assertTrue(seen.zipWithNext().all { (a, b) -> a.bytesDone <= b.bytesDone }, "bytes never decrease: $seen")
        val last = seen.last()
        assertTrue(last.bytesTotal > 0L && last.bytesDone == last.bytesTotal, "$last")
        assertEquals(last.filesTotal, last.filesDone)
        // The downloaded model works.
        SmolVLM.load(path).use { vlm ->
            assertTrue(vlm.info.hasVision)
            vlm.newChat(defaults = GenerationConfig(maxTokens = 2)).use { assertTrue(it.ask("Hi").toList().isNotEmpty()) }
        }
        // Everything in place: a second call fetches nothing.
        val gets = awaitCdnGets("tiny") { it.isNotEmpty() }.size
        assertEquals(path, SmolVLM.download(request("tiny", folder = dir)))
        assertEquals(gets, cdnGets("tiny").size)
    }

    @Test fun aDroppedConnectionIsContinuedWithARange() = runBlocking {
        val path = SmolVLM.download(request("tiny-drop", folder = File(tmp, "drop")))
        assertTrue(sameAsFixture(path, "model.safetensors"))
        val offset = Regex("^bytes=(\\d+)-$")
        val resumed = { gets: List<String> ->
            gets.mapNotNull { g -> field(g, "range")?.let { offset.find(it)?.groupValues?.get(1)?.toLong() } }.filter { it > 0 }
        }
        val gets = awaitCdnGets("tiny-drop") { resumed(it).isNotEmpty() }
        assertTrue(resumed(gets).isNotEmpty(), "a CDN GET with range bytes=N- (N > 0): $gets")
    }

    @Test fun corruptBytesAreRefused() = runBlocking {
        val dir = File(tmp, "corrupt")
        val e = assertFailsWith<SmolVlmException.IntegrityFailed> { SmolVLM.download(request("tiny-corrupt", folder = dir)) }
        assertTrue(e.message!!.contains("model.safetensors"), e.message)
        assertFalse(File(dir, "model.safetensors").exists(), "nothing under the final name")
    }

    @Test fun anUnknownRepoIsNotFound() = runBlocking {
        val e = assertFailsWith<SmolVlmException.NotFound> { SmolVLM.download(request("no-such-repo", folder = File(tmp, "unknown"))) }
        assertTrue(e.message!!.contains("smolvlm-test/no-such-repo"), e.message)
        Unit
    }

    @Test fun aGatedRepoNeedsTheToken() = runBlocking {
        val dir = File(tmp, "gated")
        assertFailsWith<SmolVlmException.Unauthorized> { SmolVLM.download(request("gated", folder = dir)) }
        assertFailsWith<SmolVlmException.Forbidden> { SmolVLM.download(request("gated", folder = dir, token = "hf_wrong")) }
        val path = SmolVLM.download(request("gated", folder = dir, token = "hf_test_token"))
        assertTrue(sameAsFixture(path, "model.safetensors"))
        val gets = awaitCdnGets("gated") { it.isNotEmpty() }
        assertTrue(gets.isNotEmpty())
        assertTrue(gets.all { field(it, "authorization") == null }, "the token never goes to the CDN: $gets")
    }

    @Test fun cancellingTheCoroutineStopsAStalledDownload() = runBlocking {
        val dir = File(tmp, "stall")
        val seen = Collections.synchronizedList(mutableListOf<DownloadProgress>())
        var thrown: Throwable? = null
        val job = launch(Dispatchers.Default) {
            try {
                SmolVLM.download(request("tiny-stall", folder = dir)) { seen.add(it) }
            } catch (e: Throwable) {
                thrown = e
                throw e
            }
        }
        val weights = { synchronized(seen) { seen.any { it.file == "model.safetensors" && it.fileBytesDone > 0L } } }
        val t0 = System.nanoTime()
        while (!weights() && System.nanoTime() - t0 < 1_500_000_000) delay(10)
        assertTrue(job.isActive, "the download is stalled, not finished")
        val t = System.nanoTime()
        job.cancelAndJoin()
        val ms = (System.nanoTime() - t) / 1_000_000
        assertTrue(ms < 1000, "the coroutine ended $ms ms after the cancel")
        assertTrue(job.isCancelled)
        assertTrue(thrown is CancellationException, "got $thrown")
        // The bytes received (the CDN sent 64 KiB before it stalled) stay for the next call.
        val partial = File(dir, ".cache/huggingface/download").listFiles()!!.filter {
            it.name.startsWith("model.safetensors.") && it.name.endsWith(".incomplete")
        }
        assertEquals(1, partial.size, "$partial")
        assertTrue(partial[0].length() in 1L..64L * 1024, "${partial[0].length()} bytes kept")
    }

    @Test fun keepFreeBytesRefusesToFillTheDisk() = runBlocking {
        val e = assertFailsWith<SmolVlmException.InsufficientSpace> {
            SmolVLM.download(request("tiny", folder = File(tmp, "full"), keepFreeBytes = 1L shl 62))
        }
        assertTrue(e.needed > e.available, "needed ${e.needed}, available ${e.available}")
        assertFalse(File(tmp, "full/model.safetensors").exists(), "checked before anything is fetched")
    }

    @Test fun twoDownloadsIntoOneCacheAtOnce() = runBlocking {
        val cache = File(tmp, "cache")
        val paths = (1..2).map { async(Dispatchers.Default) { SmolVLM.download(request("tiny", cacheDir = cache)) } }.awaitAll()
        assertEquals(paths[0], paths[1])
        assertTrue(paths[0].startsWith(File(cache, "models--smolvlm-test--tiny/snapshots").path), paths[0])
        assertTrue(sameAsFixture(paths[0], "model.safetensors"))
    }

    @Test fun requestsAreCheckedAndTheCatalogIsListed() = runBlocking {
        assertFailsWith<SmolVlmException.InvalidArgument> {
            SmolVLM.download(request("tiny", folder = File(tmp, "a"), cacheDir = File(tmp, "b")))
        }
        val catalog = SmolVLM.catalog
        val small = catalog.first { it.repoId == "HuggingFaceTB/SmolVLM-256M-Instruct" }
        assertEquals(CheckpointFormat.SAFETENSORS, small.format)
        assertEquals(WeightPrecision.Q8, small.precision)
        assertTrue(small.downloadBytes > 400_000_000L && small.memoryBytes > 0L)
        assertTrue(catalog.filter { it.format == CheckpointFormat.GGUF_PAIR }.all { it.files.size == 2 })
        assertTrue(catalog.any { it.video })
    }
}

package dev.smolvlm.sample.state

import dev.smolvlm.SmolVLM
import dev.smolvlm.ffi.CatalogModel
import dev.smolvlm.ffi.CheckpointFormat
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.WeightPrecision
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
import java.util.Collections
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicLong
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue

/**
 * [ModelSetup] against the real library and the local stand-in for the hub (tests/hub/server.py,
 * which serves the tiny fixture model under `smolvlm-test/<fault>` with the faults its name
 * asks for). The setup's "main thread" is a single thread of the test's own.
 */
class ModelSetupTest {
    companion object {
        private val fixtures = File(System.getProperty("smolvlm.fixtures") ?: "tests/fixtures").absoluteFile
        private val tinySize = File(fixtures, "models/tiny-smolvlm2").listFiles()!!.sumOf { it.length() }
        private lateinit var hub: Process
        private lateinit var url: String

        @BeforeClass @JvmStatic fun startHub() {
            // The hub prints its address, then runs until its stdin (a pipe kept open here) closes.
            val log = File.createTempFile("smolvlm-sample-hub", ".err").also { it.deleteOnExit() }
            hub = ProcessBuilder("python3", File(fixtures, "../hub/server.py").canonicalPath)
                .redirectError(log)
                .start()
            url = hub.inputStream.bufferedReader().readLine() ?: error("the local hub did not start: ${log.readText()}")
        }

        @AfterClass @JvmStatic fun stopHub() {
            hub.outputStream.close()
            hub.destroy()
            hub.waitFor()
        }

        /** A catalog entry for the hub's `smolvlm-test/[repo]`, the size of the tiny model. */
        private fun entry(
            repo: String,
            files: List<String> = emptyList(),
            downloadBytes: Long = tinySize,
            memoryBytes: Long = 64L shl 20,
        ) = CatalogModel(
            name = "test-$repo", repoId = "smolvlm-test/$repo", format = CheckpointFormat.SAFETENSORS, files = files, parameters = 1_000_000,
            downloadBytes = downloadBytes, sizeConfirmed = true, precision = WeightPrecision.F32,
            memoryBytes = memoryBytes, video = false,
        )
    }

    private val main: ExecutorCoroutineDispatcher = Executors.newSingleThreadExecutor().asCoroutineDispatcher()
    private val scope = CoroutineScope(SupervisorJob() + main)
    private val dir = kotlin.io.path.createTempDirectory("smolvlm-sample-setup").toFile()
    private val free = AtomicLong(1L shl 40)

    @After fun tearDown() {
        scope.cancel()
        main.close()
        dir.deleteRecursively()
    }

    private fun setup(catalog: List<CatalogModel>, deviceMemory: Long = Long.MAX_VALUE) = ModelSetup(
        scope, dir, catalog, deviceMemoryBytes = deviceMemory, keepFreeBytes = 1L shl 20,
        freeBytes = { free.get() }, endpoint = url,
    )

    /** Runs [block] on the setup's main thread, as the app's activity would. */
    private suspend fun <T> onMain(block: () -> T): T = withContext(main) { block() }

    private suspend inline fun <reified S : SetupState> ModelSetup.await(ms: Long = 30_000): S =
        withTimeout(ms) { state.first { it is S } as S }

    private suspend fun ModelSetup.awaitFailed(): SetupState.Failed =
        withTimeout(30_000) { state.first { it is SetupState.Failed || it is SetupState.Ready } } as? SetupState.Failed
            ?: error("expected a failure, got ${state.value}")

    /** Every state [setup] goes through while [block] runs (collected on the main thread). */
    private suspend fun recording(setup: ModelSetup, block: suspend () -> Unit): List<SetupState> {
        val seen = Collections.synchronizedList(mutableListOf<SetupState>())
        val job = scope.launch { setup.state.collect { seen.add(it) } }
        try {
            block()
        } finally {
            job.cancel()
        }
        return seen.toList()
    }

    @Test fun offersTheCatalogWithWhatFitsTheDevice(): Unit = runBlocking {
        free.set(1L shl 30)
        val small = entry("tiny")
        val huge = entry("big", downloadBytes = 10L shl 30, memoryBytes = 8L shl 30)
        val choosing = setup(listOf(small, huge), deviceMemory = 4L shl 30).await<SetupState.Choosing> { it.choices.isNotEmpty() }
        assertEquals(1L shl 30, choosing.freeBytes)
        val (s, h) = choosing.choices
        assertTrue(s.fitsStorage && s.fitsMemory && s.bytesOnDisk == 0L && s.bytesToFetch == tinySize, "$s")
        assertFalse(h.fitsStorage || h.fitsMemory, "$h")
        // The app's default list is the library's catalog, smallest first.
        val real = ModelSetup(scope, dir).await<SetupState.Choosing> { it.choices.isNotEmpty() }
        assertEquals(SmolVLM.catalog.map { it.name }, real.choices.map { it.model.name })
        assertTrue(real.choices.first().model.name.startsWith("SmolVLM"))
    }

    @Test fun downloadsWithProgressThenLoads(): Unit = runBlocking {
        val model = entry("tiny")
        val setup = setup(listOf(model))
        setup.await<SetupState.Choosing>()
        val states = recording(setup) {
            onMain { setup.start(model) }
            setup.await<SetupState.Ready>()
        }
        val downloads = states.filterIsInstance<SetupState.Downloading>()
        assertTrue(downloads.any { it.bytesTotal > 0 }, "progress was reported: $states")
        assertTrue(downloads.zipWithNext().all { (a, b) -> a.bytesDone <= b.bytesDone }, "bytes never go down: $downloads")
        assertTrue(states.any { it is SetupState.Loading }, "$states")
        val ready = setup.state.value as SetupState.Ready
        assertEquals(File(dir, model.name).path, ready.path)
        assertTrue(ready.vlm.info.hasVision)
        // The folder now holds the model: the choice says so.
        onMain { setup.cancel() }
        val again = setup.await<SetupState.Choosing> { it.choices.isNotEmpty() }
        assertEquals(0L, again.choices.single().bytesToFetch)
        assertFailsWith<SmolVlmException.InvalidArgument> { ready.vlm.newChat() } // closed on the way back
    }

    @Test fun tooLittleSpaceFailsAndRetrySucceedsOnceThereIsSpace(): Unit = runBlocking {
        val model = entry("tiny")
        val setup = setup(listOf(model))
        free.set(1000)
        onMain { setup.start(model) }
        val failed = setup.awaitFailed()
        assertEquals(ProblemKind.NO_SPACE, failed.problem.kind)
        assertEquals(tinySize + (1L shl 20), failed.problem.neededBytes)
        assertEquals(1000L, failed.problem.availableBytes)
        assertFalse(File(dir, model.name).exists(), "nothing was fetched")
        free.set(1L shl 40)
        onMain { setup.retry() }
        setup.await<SetupState.Ready>()
        onMain { setup.close() }
    }

    @Test fun hubFailuresBecomeProblemsAndRetryDownloadsAgain(): Unit = runBlocking {
        suspend fun failure(repo: String): Problem {
            val model = entry(repo)
            val setup = setup(listOf(model))
            onMain { setup.start(model) }
            return setup.awaitFailed().problem
        }
        assertEquals(ProblemKind.NO_ACCESS, failure("forbidden").kind)
        assertEquals(ProblemKind.NEEDS_TOKEN, failure("gated").kind)
        assertEquals(ProblemKind.NOT_FOUND, failure("no-such-repo").kind)

        val corrupt = entry("tiny-corrupt")
        val setup = setup(listOf(corrupt))
        onMain { setup.start(corrupt) }
        val first = setup.awaitFailed()
        assertEquals(ProblemKind.CORRUPT_DOWNLOAD, first.problem.kind)
        assertTrue(first.problem.detail.isNotBlank())
        // Retry goes through the download again (the hub corrupts it again).
        val states = recording(setup) {
            onMain { setup.retry() }
            withTimeout(30_000) { setup.state.first { it is SetupState.Downloading } }
            setup.awaitFailed()
        }
        assertTrue(states.any { it is SetupState.Downloading }, "$states")
        assertEquals(ProblemKind.CORRUPT_DOWNLOAD, (setup.state.value as SetupState.Failed).problem.kind)
    }

    @Test fun aMissingModelFileIsAFailedStateNotACrash(): Unit = runBlocking {
        // Only config.json is fetched: loading the folder finds no tokenizer or weights.
        val partial = entry("tiny", files = listOf("config.json"))
        val setup = setup(listOf(partial))
        onMain { setup.start(partial) }
        val missing = setup.awaitFailed()
        assertEquals(ProblemKind.MODEL_MISSING, missing.problem.kind, "${missing.problem}")
        assertTrue("not found" in missing.problem.detail, missing.problem.detail)
        // Retrying with the whole model in the catalog entry fetches the rest and loads.
        val whole = entry("tiny")
        val again = setup(listOf(whole))
        onMain { again.start(whole) }
        again.await<SetupState.Ready>()
        onMain { again.close() }
    }

    @Test fun cancelStopsAStalledDownloadAndGoesBackToTheChoice(): Unit = runBlocking {
        val model = entry("tiny-stall")
        val setup = setup(listOf(model))
        onMain { setup.start(model) }
        setup.await<SetupState.Downloading>()
        // Into the stalled weights (the small files come at once; progress may not be reported
        // for them before the stall, which sends nothing more).
        delay(1_000)
        val t0 = System.nanoTime()
        onMain { setup.cancel() }
        setup.await<SetupState.Choosing>(5_000) { it.choices.isNotEmpty() }
        val ms = (System.nanoTime() - t0) / 1_000_000
        assertTrue(ms < 3_000, "cancelled after $ms ms")
    }

    @Test fun unloadGivesTheModelBackAndReloadLoadsItFromDisk(): Unit = runBlocking {
        val model = entry("tiny")
        val setup = setup(listOf(model))
        onMain { setup.start(model) }
        val ready = setup.await<SetupState.Ready>()
        onMain { setup.unload() }
        assertEquals(SetupState.Unloaded(model, ready.path), setup.state.value)
        assertFailsWith<SmolVlmException.InvalidArgument> { ready.vlm.newChat() }
        onMain { setup.reload() }
        val again = setup.await<SetupState.Ready>()
        assertEquals(ready.path, again.path)
        again.vlm.newChat().close()
        onMain { setup.close() }
    }

    private suspend inline fun <reified S : SetupState> ModelSetup.await(ms: Long = 30_000, crossinline ok: (S) -> Boolean): S =
        withTimeout(ms) { state.first { it is S && ok(it) } as S }
}

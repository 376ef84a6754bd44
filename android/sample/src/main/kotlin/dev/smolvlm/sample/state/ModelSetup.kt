package dev.smolvlm.sample.state

import dev.smolvlm.SmolVLM
import dev.smolvlm.ffi.CatalogModel
import dev.smolvlm.ffi.CheckpointFormat
import dev.smolvlm.ffi.DownloadRequest
import dev.smolvlm.ffi.ImagePreset
import dev.smolvlm.ffi.LoadOptions
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File

/** Where getting the model stands; [ModelSetup.state] holds one. */
sealed interface SetupState {
    /**
     * Nothing picked yet (or the pick was cancelled).
     *
     * @property choices the models to offer; empty until the storage has been looked at.
     * @property freeBytes the free storage where models go.
     */
    data class Choosing(val choices: List<ModelChoice>, val freeBytes: Long) : SetupState

    /**
     * A model is being downloaded.
     *
     * @property model the model.
     * @property bytesDone bytes in place so far (an earlier partial download counts).
     * @property bytesTotal bytes of the whole download (0 until the hub has answered).
     */
    data class Downloading(val model: CatalogModel, val bytesDone: Long, val bytesTotal: Long) : SetupState {
        /** Percent done, 0–100. */
        val percent: Int get() = if (bytesTotal <= 0) 0 else (bytesDone * 100 / bytesTotal).toInt()
    }

    /**
     * A model is downloaded and being loaded.
     *
     * @property model the model.
     * @property path its folder.
     * @property fraction how much of the load is done, 0–1.
     */
    data class Loading(val model: CatalogModel, val path: String, val fraction: Float) : SetupState

    /**
     * A model is loaded and answers.
     *
     * @property model the model.
     * @property path its folder.
     * @property vlm the loaded model (owned by [ModelSetup]: do not close it).
     */
    data class Ready(val model: CatalogModel, val path: String, val vlm: SmolVLM) : SetupState

    /**
     * A model was loaded and then unloaded to give its memory back (the app went to the
     * background); [ModelSetup.reload] loads it again without touching the network.
     *
     * @property model the model.
     * @property path its folder.
     */
    data class Unloaded(val model: CatalogModel, val path: String) : SetupState

    /**
     * Getting a model failed; [ModelSetup.retry] tries again (a download continues where it
     * stopped).
     *
     * @property model the model.
     * @property problem what went wrong.
     */
    data class Failed(val model: CatalogModel, val problem: Problem) : SetupState
}

/**
 * One model the app can offer, with what it takes on this device.
 *
 * @property model the catalog entry (name, repo, download size, memory, precision).
 * @property bytesOnDisk what is already in its folder (a finished or partial earlier download).
 * @property bytesToFetch about how much is left to download.
 * @property fitsStorage whether [bytesToFetch] plus the reserve fits the free storage now.
 * @property fitsMemory whether the model's memory estimate fits the device's RAM.
 */
data class ModelChoice(
    val model: CatalogModel,
    val bytesOnDisk: Long,
    val bytesToFetch: Long,
    val fitsStorage: Boolean,
    val fitsMemory: Boolean,
)

/**
 * Gets a model from [catalog] onto the device and loads it: the choice, a free-space check,
 * the download with progress ([SmolVLM.download], which resumes), the load ([SmolVLM.load]),
 * retry after a failure, and unloading when memory is short. Every failure ends in
 * [SetupState.Failed] with a [Problem]; nothing here throws at the caller.
 *
 * Plain Kotlin (no Android classes) so that it runs in JVM tests against the real library. Call
 * its functions from one thread (the main thread in the app); [state] may be read from any.
 *
 * @param scope where the work runs (a `viewModelScope`); cancelling it stops the work.
 * @param modelsDir the folder that holds one sub-folder per model (under `filesDir` on a phone).
 * @param catalog the models to offer, smallest first ([SmolVLM.catalog]).
 * @param deviceMemoryBytes the device's RAM; bigger models are offered but marked.
 * @param keepFreeBytes storage that must stay free after the download.
 * @param freeBytes how much storage is free in a folder.
 * @param endpoint the hub to download from (`null`: huggingface.co).
 * @param io where the blocking library calls run.
 */
class ModelSetup(
    private val scope: CoroutineScope,
    private val modelsDir: File,
    val catalog: List<CatalogModel> = SmolVLM.catalog,
    private val deviceMemoryBytes: Long = Long.MAX_VALUE,
    private val keepFreeBytes: Long = 256L shl 20,
    private val freeBytes: (File) -> Long = { it.usableSpace },
    private val endpoint: String? = null,
    private val io: CoroutineDispatcher = Dispatchers.IO,
) : AutoCloseable {
    private val _state = MutableStateFlow<SetupState>(SetupState.Choosing(emptyList(), 0))

    /** Where getting the model stands. */
    val state: StateFlow<SetupState> = _state.asStateFlow()

    private var job: Job? = null

    init {
        showChoices()
    }

    /** Downloads (or finds) and loads [model], replacing whatever was loaded or under way. */
    fun start(model: CatalogModel) = replaceJob { fetchAndLoad(model) }

    /** Tries the failed model again; the download continues where it stopped. */
    fun retry() {
        val failed = _state.value as? SetupState.Failed ?: return
        start(failed.model)
    }

    /**
     * Stops a download or load under way (its partial files stay), or closes the model loaded,
     * and goes back to the choice.
     */
    fun cancel() = showChoices()

    /**
     * Gives the model's memory back (the app went to the background and the system asked for
     * memory): the model is closed and [state] becomes [SetupState.Unloaded]; [reload] loads it
     * again. Close every live camera on the model first. Does nothing unless a model is ready.
     */
    fun unload() {
        val ready = _state.value as? SetupState.Ready ?: return
        _state.value = SetupState.Unloaded(ready.model, ready.path)
        ready.vlm.close()
    }

    /** Loads the model [unload] gave back, from its folder. Does nothing in any other state. */
    fun reload() {
        val unloaded = _state.value as? SetupState.Unloaded ?: return
        replaceJob { loadFrom(unloaded.model, unloaded.path) }
    }

    /** Stops what is under way and closes the model. */
    override fun close() {
        job?.cancel()
        (_state.value as? SetupState.Ready)?.vlm?.close()
    }

    /** Looks at the storage (off the caller's thread: it reads the disk) and offers the choice. */
    private fun showChoices() = replaceJob { _state.value = withContext(io) { choosing() } }

    /**
     * Closes the model loaded, cancels the job under way and waits until it has stopped (so no
     * late progress report overwrites the state), then runs [work].
     */
    private fun replaceJob(work: suspend () -> Unit) {
        val previous = job
        (_state.value as? SetupState.Ready)?.let { ready ->
            _state.value = SetupState.Choosing(emptyList(), 0)
            ready.vlm.close()
        }
        job = scope.launch {
            previous?.cancelAndJoin()
            work()
        }
    }

    private suspend fun fetchAndLoad(model: CatalogModel) {
        val folder = File(modelsDir, model.name)
        _state.value = SetupState.Downloading(model, 0, 0)
        val path = try {
            val choice = withContext(io) { choice(model) }
            if (!choice.fitsStorage) {
                val free = withContext(io) { freeBytes(modelsDir) }
                val needed = choice.bytesToFetch + keepFreeBytes
                _state.value = SetupState.Failed(model, Problem(ProblemKind.NO_SPACE, "${model.name}: $needed bytes needed, $free free", needed, free))
                return
            }
            withContext(io) { folder.mkdirs() }
            val request = DownloadRequest(
                repoId = model.repoId, folder = folder.path, files = model.files,
                endpoint = endpoint, keepFreeBytes = keepFreeBytes,
            )
            SmolVLM.download(request, io) { p ->
                _state.value = SetupState.Downloading(model, p.bytesDone, p.bytesTotal)
            }
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            _state.value = SetupState.Failed(model, e.toProblem())
            return
        }
        loadFrom(model, path)
    }

    private suspend fun loadFrom(model: CatalogModel, path: String) {
        _state.value = SetupState.Loading(model, path, 0f)
        try {
            // A GGUF pair loads its text file with the vision file beside it as `mmproj`.
            val gguf = model.format == CheckpointFormat.GGUF_PAIR && model.files.size == 2
            val options = LoadOptions(
                precision = model.precision,
                // Camera frames: at most 2×2 tiles, and a context that holds one frame's answer
                // with room to spare (the live loop starts each answer afresh).
                preset = ImagePreset.FAST,
                contextLength = 2048,
                mmproj = if (gguf) File(path, model.files[1]).path else null,
            )
            val target = if (gguf) File(path, model.files[0]).path else path
            val vlm = SmolVLM.load(target, options, io) { _, fraction ->
                _state.value = SetupState.Loading(model, path, fraction)
            }
            _state.value = SetupState.Ready(model, path, vlm)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            _state.value = SetupState.Failed(model, e.toProblem())
        }
    }

    private fun choosing() = SetupState.Choosing(catalog.map(::choice), freeBytes(modelsDir))

    private fun choice(model: CatalogModel): ModelChoice {
        val onDisk = File(modelsDir, model.name).walk().filter { it.isFile }.sumOf { it.length() }
        val toFetch = (model.downloadBytes - onDisk).coerceAtLeast(0)
        return ModelChoice(
            model, onDisk, toFetch,
            fitsStorage = freeBytes(modelsDir) >= toFetch + keepFreeBytes,
            fitsMemory = model.memoryBytes <= deviceMemoryBytes,
        )
    }
}

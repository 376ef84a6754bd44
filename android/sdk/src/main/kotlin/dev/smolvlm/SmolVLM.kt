package dev.smolvlm

import dev.smolvlm.ffi.CancelSignal
import dev.smolvlm.ffi.CatalogModel
import dev.smolvlm.ffi.ChatMessage
import dev.smolvlm.ffi.ChatSession
import dev.smolvlm.ffi.DownloadListener
import dev.smolvlm.ffi.DownloadProgress
import dev.smolvlm.ffi.DownloadRequest
import dev.smolvlm.ffi.GenerationConfig
import dev.smolvlm.ffi.GenerationStats
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.LiveConfig
import dev.smolvlm.ffi.LoadOptions
import dev.smolvlm.ffi.LoadProgressListener
import dev.smolvlm.ffi.LoadStage
import dev.smolvlm.ffi.MemoryEstimate
import dev.smolvlm.ffi.ModelDownload
import dev.smolvlm.ffi.ModelInfo
import dev.smolvlm.ffi.SmolVlm
import dev.smolvlm.ffi.SmolVlmException
import dev.smolvlm.ffi.TokenStream
import dev.smolvlm.ffi.VideoInput
import dev.smolvlm.ffi.modelCatalog
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.asExecutor
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlinx.coroutines.withContext
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException

/**
 * A SmolVLM model loaded on the device, answering questions about images and videos entirely
 * offline.
 *
 * Load it once with [SmolVLM.load] (off the main thread) from a model folder or a GGUF file,
 * open one [Chat] per conversation with [newChat], and [close] it when done. Thread-safe: several
 * chats may run on one model at once.
 *
 * ```kotlin
 * SmolVLM.load("/data/local/tmp/SmolVLM-256M-Instruct").use { vlm ->
 *     vlm.newChat().use { chat ->
 *         chat.ask("What is in this image?", Image.file("/sdcard/cat.jpg")).collect { print(it) }
 *     }
 * }
 * ```
 *
 * For camera frames, [live] runs the camera loop: it keeps captioning the newest frame and
 * answers questions mid-stream.
 *
 * A model not yet on the device is fetched with [SmolVLM.download]; [SmolVLM.catalog] lists the
 * known ones.
 *
 * Errors are thrown as [SmolVlmException] subclasses: `ModelMissing`, `ModelInvalid`,
 * `InsufficientMemory` (a model that would not fit, refused before loading),
 * `InvalidImage`, `InvalidArgument`, `ContextOverflow`, `Cancelled` and `Internal` (which also
 * reports a caught Rust panic); downloads add `NotFound`, `Unauthorized`, `Forbidden`,
 * `IntegrityFailed`, `InsufficientSpace`, `NetworkFailed` and `StorageFailed`.
 */
class SmolVLM private constructor(private val raw: SmolVlm) : AutoCloseable {

    /**
     * What the loaded model is: family, context length, image settings, the weight precision
     * and backend in use (`AUTO` resolved), and `videoFrameLimit`, the most frames one video
     * contributes to a question (0: the model takes no videos).
     */
    val info: ModelInfo get() = raw.info()

    /**
     * Which frames a question reads out of a video of [frameCount] frames spanning
     * [durationSeconds] seconds: indices from 0, ascending, at most `info.videoFrameLimit`,
     * chosen as transformers' SmolVLM2 video processor chooses them (the checkpoint's frames
     * per second and frame limit, 1 s trimmed at both ends of long videos).
     *
     * A video decoder decodes just these frames and passes them to [Video.chosen] (this is what
     * `dev.smolvlm.android.readVideo` does); [Video.frames] makes the same choice itself from
     * every frame of a clip.
     *
     * ```kotlin
     * val indices = vlm.videoFrameIndices(130, 65.0) // 64 indices: 0, 2, 4, …, 126, 129
     * ```
     *
     * @throws SmolVlmException.InvalidArgument if the model takes no videos or is closed, or
     *   [frameCount] or [durationSeconds] is not positive.
     */
    fun videoFrameIndices(frameCount: Int, durationSeconds: Double): List<Int> =
        raw.videoFrameIndices(frameCount, durationSeconds)

    /**
     * Opens a new conversation.
     *
     * @param systemPrompt optional instructions placed before the first question.
     * @param defaults generation settings used by every [Chat.ask] that passes none.
     * @throws SmolVlmException.InvalidArgument if this model is closed or [defaults] are invalid.
     */
    @JvmOverloads
    fun newChat(systemPrompt: String? = null, defaults: GenerationConfig = GenerationConfig()): Chat =
        Chat(raw.newSession(systemPrompt, defaults))

    /**
     * Starts the camera loop on this model: [LiveCamera.push] frames as the camera makes them,
     * collect [LiveCamera.events] for captions of the newest frame, [LiveCamera.ask] questions
     * mid-stream, and close it when done.
     *
     * ```kotlin
     * val camera = vlm.live(LiveConfig(prompt = "Read the sign aloud.", minIntervalMs = 500))
     * ```
     *
     * @param config every field has a default: `prompt` (the standing prompt, "Describe what you
     *   see in one sentence."), `maxTokens` per answer (48), `minIntervalMs` between captions
     *   (0), `changeThreshold` (2.0: frames that barely changed are skipped; 0 answers every
     *   frame), `imageSplitting` (off: one view per frame), `onlyNewText`, `systemPrompt`.
     * @param dispatcher where [LiveCamera.events] waits for the native loop (one thread while
     *   collected) and where closing waits for it to stop.
     * @throws SmolVlmException.InvalidArgument if this model is closed or takes no images, or
     *   [config] is out of range (also a negative `maxTokens` or `minIntervalMs`).
     */
    @JvmOverloads
    fun live(config: LiveConfig = LiveConfig(), dispatcher: CoroutineDispatcher = Dispatchers.IO): LiveCamera =
        LiveCamera(raw.live(config), dispatcher)

    /**
     * Releases this handle's share of the model. Chats and live cameras already open keep
     * working; the weights are freed once they are closed too. Safe to call more than once; later calls to [newChat]
     * throw `SmolVlmException.InvalidArgument`. (The small native handle itself is freed by the
     * garbage collector.)
     */
    override fun close() = raw.release()

    /** Loading and downloading entry points. */
    companion object {
        /**
         * Loads the model at [modelPath] on [dispatcher]: a folder in the Hugging Face layout,
         * or a llama.cpp text GGUF file (with `LoadOptions(mmproj = …)` for images).
         *
         * ```kotlin
         * SmolVLM.load(dir, LoadOptions(precision = WeightPrecision.Q8, contextLength = 2048)) { stage, f ->
         *     progressBar.progress = (f * 100).toInt()
         * }
         * ```
         *
         * Cancelling the calling coroutine stops the load after the layer being built (what was
         * built is freed); this function returns only once it has stopped, and then throws
         * [CancellationException].
         *
         * @param options every field is optional: `precision` (`F32` default, `F16`, `Q8`,
         *   `Q4K`, `AUTO`), `contextLength` (tokens one chat holds; a smaller cap also saves KV
         *   cache memory), `backend` (`CPU` default, `METAL`, `AUTO`), `preset` (`EXACT`,
         *   `FAST` for camera frames), `imageSplitting`, `longestEdge`, `threads`, `mmproj`,
         *   `imageCacheMb` (encodings of images seen, reused by later chats and questions; 32
         *   by default, 0 turns the cache off), `maxVideoFrames` (most frames one video
         *   contributes; null: the checkpoint's limit, lowered to what fits the context).
         * @param onProgress called on the loading thread with the stage and the fraction of the
         *   load done, which only grows: `READING` at 0.0, `VISION` and `TEXT` after each layer,
         *   `READY` at 1.0.
         * @throws SmolVlmException.ModelMissing or [SmolVlmException.ModelInvalid] naming the
         *   file at fault; [SmolVlmException.InvalidArgument] for options out of range (a
         *   negative number among them) or a backend this build or device lacks.
         */
        @JvmStatic
        suspend fun load(
            modelPath: String,
            options: LoadOptions = LoadOptions(),
            dispatcher: CoroutineDispatcher = Dispatchers.IO,
            onProgress: ((stage: LoadStage, fraction: Float) -> Unit)? = null,
        ): SmolVLM {
            val listener = onProgress?.let { cb ->
                object : LoadProgressListener {
                    override fun onProgress(stage: LoadStage, fraction: Float) = cb(stage, fraction)
                }
            }
            val signal = CancelSignal()
            val result = CompletableDeferred<SmolVlm>()
            try {
                dispatcher.asExecutor().execute {
                    try {
                        result.complete(SmolVlm.load(modelPath, options, listener, signal))
                    } catch (e: Throwable) {
                        result.completeExceptionally(e)
                    }
                }
                return SmolVLM(result.await())
            } catch (e: CancellationException) {
                // The coroutine was cancelled: stop the native load (after the layer being built)
                // and wait until it has stopped; a load that finished anyway is released.
                signal.cancel()
                withContext(NonCancellable) { runCatching { result.await() }.getOrNull()?.let { it.release(); it.close() } }
                throw e
            } finally {
                signal.close()
            }
        }

        /**
         * What loading [modelPath] with [options] will hold in memory, without loading it (only
         * the configuration files are read): the weights in the precision they will be held in,
         * one chat's KV cache at the context length the model would get (by default its maximum,
         * lowered to what the available memory holds), the largest transient activations, and
         * the tokenizer and library baseline, in bytes, with their `total`.
         *
         * ```kotlin
         * val need = SmolVLM.estimateMemory(dir, LoadOptions(precision = WeightPrecision.Q8))
         * if (need.total > budget) showPrecisionPicker()
         * ```
         *
         * @throws SmolVlmException.InsufficientMemory when the model would not fit the memory the
         *   OS says is available (use a smaller precision or `contextLength`; [load] refuses it
         *   the same way); [SmolVlmException.ModelMissing] or [SmolVlmException.ModelInvalid]
         *   for a missing or invalid model.
         */
        @JvmStatic
        fun estimateMemory(modelPath: String, options: LoadOptions = LoadOptions()): MemoryEstimate =
            dev.smolvlm.ffi.estimateMemory(modelPath, options)

        /**
         * Downloads a model from the Hugging Face hub on [dispatcher] and returns its folder,
         * ready for [load]. Only the files the engine needs are fetched, each checked against the
         * hub's size and SHA-256 before it gets its name.
         *
         * ```kotlin
         * val dir = File(context.filesDir, "SmolVLM-256M-Instruct").path
         * val path = SmolVLM.download(DownloadRequest(repoId = "HuggingFaceTB/SmolVLM-256M-Instruct", folder = dir)) { p ->
         *     progressBar.progress = (p.bytesDone * 100 / p.bytesTotal.coerceAtLeast(1)).toInt()
         * }
         * ```
         *
         * Cancelling the calling coroutine stops the download within a second; this function
         * returns only once it has stopped, and then throws [CancellationException]. Partial
         * files stay: calling it again with the same request continues where it stopped (also
         * after a failure or an app restart), and with everything in place it only checks the
         * hub's listing (nothing at all while the hub cannot be reached).
         *
         * @param request `repoId` (see [catalog]), `folder` (on a phone pass one, e.g. under
         *   `filesDir`: the default Hugging Face cache usually does not exist there) or
         *   `cacheDir` (a Hugging Face cache root; not both), `revision` (`main`), `files`
         *   (empty: what the engine needs), `token` (gated or private repos), `endpoint`,
         *   `keepFreeBytes` (space that must stay free).
         * @param onProgress called on the downloading thread at most 10 times a second and once
         *   at the end (`bytesDone == bytesTotal`); no number ever goes down.
         * @throws SmolVlmException.NotFound, [SmolVlmException.Unauthorized] (no valid token),
         *   [SmolVlmException.Forbidden], [SmolVlmException.IntegrityFailed],
         *   [SmolVlmException.InsufficientSpace], [SmolVlmException.NetworkFailed] (after
         *   retries), [SmolVlmException.StorageFailed], [SmolVlmException.ModelMissing]
         *   (`HF_HUB_OFFLINE` set and the model not there), [SmolVlmException.InvalidArgument]
         *   for a malformed request (or a negative `keepFreeBytes`).
         */
        @JvmStatic
        suspend fun download(
            request: DownloadRequest,
            dispatcher: CoroutineDispatcher = Dispatchers.IO,
            onProgress: ((DownloadProgress) -> Unit)? = null,
        ): String {
            val listener = onProgress?.let { cb ->
                object : DownloadListener {
                    override fun onProgress(progress: DownloadProgress) = cb(progress)
                }
            }
            val task = ModelDownload(request)
            val result = CompletableDeferred<String>()
            try {
                dispatcher.asExecutor().execute {
                    try {
                        result.complete(task.run(listener))
                    } catch (e: Throwable) {
                        result.completeExceptionally(e)
                    }
                }
                return result.await()
            } catch (e: CancellationException) {
                // The coroutine was cancelled: stop the native download (a cancel that comes
                // before its run starts applies to that run) and wait until it has stopped.
                task.cancel()
                withContext(NonCancellable) { result.join() }
                throw e
            } finally {
                if (result.isCompleted) task.close()
            }
        }

        /**
         * The known SmolVLM checkpoints, for a model picker: name, hub repo (`repoId` of a
         * [DownloadRequest]), `format` (`SAFETENSORS`: load the folder; `GGUF_PAIR`: load the
         * text GGUF with the `mmproj` file, both in `files`), `files`, `parameters`,
         * `downloadBytes`, the `precision` to load it at on a phone, about how much memory it
         * then needs (`memoryBytes`) and whether it knows video.
         */
        @JvmStatic
        val catalog: List<CatalogModel> get() = modelCatalog()
    }
}

/**
 * One conversation with a [SmolVLM] model. Follow-up questions reuse what the model has already
 * read, so an image is encoded only once per chat (see [stats]). One answer at a time per chat;
 * open several chats to answer in parallel. Close it to free its memory.
 */
class Chat internal constructor(private val raw: ChatSession) : AutoCloseable {

    /**
     * Asks [text] about [images] and [videos] and streams the answer as text pieces, in order.
     * The model reads the videos first, then the images, then the text.
     *
     * The answer is computed while the flow is collected (on [dispatcher]); cancelling the
     * collector cancels the generation within one decode step, and the question is then removed
     * from the [transcript]. Collect each flow once.
     *
     * ```kotlin
     * val clip = Video.frames(frames, timestamps = frames.indices.map { it / 2.0 }, durationSeconds = 3.0)
     * chat.ask("What happens in this video?", videos = listOf(clip)).collect { print(it) }
     * ```
     *
     * @param options overrides this chat's default generation settings.
     * @param videos videos made with [Video.frames] or [Video.chosen] (on Android,
     *   `dev.smolvlm.android.readVideo`); each chosen frame costs the vision tokens of one image
     *   tile, at most `SmolVLM.info.videoFrameLimit` frames per video.
     * @throws SmolVlmException.InvalidArgument if another answer is still streaming in this chat,
     *   or [videos] is not empty and the model takes no videos.
     * @throws SmolVlmException.InvalidImage if a deferred frame's bytes do not match its size.
     * @throws SmolVlmException.ContextOverflow if the conversation no longer fits the model.
     */
    @JvmOverloads
    fun ask(
        text: String,
        images: List<ImageInput> = emptyList(),
        options: GenerationConfig? = null,
        dispatcher: CoroutineDispatcher = Dispatchers.IO,
        videos: List<VideoInput> = emptyList(),
    ): Flow<String> = flow {
        val stream = raw.ask(text, images, options, videos)
        try {
            while (true) {
                val piece = stream.nextCancellable(dispatcher) ?: break
                emit(piece)
            }
        } finally {
            withContext(NonCancellable) {
                stream.release()
                stream.close()
            }
        }
    }

    /** Asks [text] about one or more [images]; see the list overload. */
    fun ask(text: String, vararg images: ImageInput): Flow<String> = ask(text, images.toList())

    /** Asks [text] about one [video] and zero or more [images] (read after the video); see the list overload. */
    fun ask(text: String, video: VideoInput, vararg images: ImageInput): Flow<String> =
        ask(text, images.toList(), videos = listOf(video))

    /** Stops the answer being generated, from any thread; its flow throws `Cancelled`. */
    fun cancel() = raw.cancel()

    /** Forgets the conversation (the system prompt stays), cancelling a running answer. */
    fun reset() = raw.reset()

    /** The conversation so far: system prompt, questions and answers. */
    val transcript: List<ChatMessage> get() = raw.transcript()

    /**
     * Timings and counts of the last finished answer (null before the first one). A follow-up
     * about an image already sent shows `visionTiles == 0L`.
     */
    val stats: GenerationStats? get() = raw.stats()

    /**
     * Frees the chat's memory (KV cache, transcript), cancelling a running answer. Safe to call
     * more than once; a later [ask] throws `SmolVlmException.InvalidArgument`.
     */
    override fun close() = raw.release()
}

/**
 * Runs the blocking [TokenStream.next] on [dispatcher]'s threads; if the calling coroutine is
 * cancelled meanwhile, cancels the stream at once (the native call then ends within one step).
 */
private suspend fun TokenStream.nextCancellable(dispatcher: CoroutineDispatcher): String? =
    suspendCancellableCoroutine { cont ->
        cont.invokeOnCancellation { this.cancel() }
        dispatcher.asExecutor().execute {
            try {
                cont.resume(next())
            } catch (e: Throwable) {
                cont.resumeWithException(e)
            }
        }
    }

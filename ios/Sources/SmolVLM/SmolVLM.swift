import Dispatch
import Foundation
internal import SmolVLMFFI

/// A SmolVLM model loaded on the device, answering questions about images and videos entirely
/// offline.
///
/// Load it once with ``SmolVLM/load(modelPath:options:onProgress:)`` (it runs off the caller's
/// thread) from a model folder or a GGUF file, open one ``Chat`` per conversation with
/// ``newChat(systemPrompt:defaults:)``, and call
/// ``close()`` (or drop the last reference) when done. Several chats may use one model at once,
/// from any tasks or threads.
///
/// For camera frames, ``live(_:)`` runs the camera loop (``LiveCamera``): it keeps captioning
/// the newest frame and answers questions mid-stream.
///
/// A model not yet on the device is fetched with ``SmolVLM/download(_:progress:)``;
/// ``SmolVLM/catalog`` lists the known ones.
///
/// Errors are thrown as ``SmolVLMError`` cases: `.modelMissing`, `.modelInvalid`,
/// `.invalidImage`, `.invalidArgument`, `.contextOverflow`, `.cancelled` and `.internal` (a
/// caught Rust panic included). Downloads add `.notFound`, `.unauthorized`, `.forbidden`,
/// `.integrityFailed`, `.insufficientSpace`, `.networkFailed` and `.storageFailed`. Cancelling
/// the awaiting task throws `CancellationError`.
public final class SmolVLM: Sendable {
    let raw: SmolVlm

    init(raw: SmolVlm) { self.raw = raw }

    /// Loads the model at `modelPath` on a background queue: a folder in the Hugging Face
    /// layout, or a llama.cpp text GGUF file (with `LoadOptions(mmproj:)` for images).
    ///
    /// ```swift
    /// let vlm = try await SmolVLM.load(
    ///     modelPath: dir, options: LoadOptions(precision: .q8, contextLength: 2048)
    /// ) { stage, fraction in print(stage, fraction) }
    /// ```
    ///
    /// Cancelling the calling task stops the load after the layer being built (what was built
    /// is freed); this function returns only once it has stopped, and then throws
    /// `CancellationError`.
    ///
    /// - Parameters:
    ///   - options: every field is optional: `precision` (`.f32` default, `.f16`, `.q8`, `.q4k`,
    ///     `.auto`), `contextLength` (tokens one chat holds; a smaller cap also saves KV cache
    ///     memory), `backend` (`.cpu` default, `.metal`, `.auto`), `preset` (`.exact`, `.fast`
    ///     for camera frames), `imageSplitting`, `longestEdge`, `threads`, `mmproj`,
    ///     `imageCacheMb` (encodings of images seen, reused by later chats and questions; 32 by
    ///     default, 0 turns the cache off), `maxVideoFrames` (most frames one video contributes;
    ///     `nil`: the checkpoint's limit, lowered to what fits the context).
    ///   - onProgress: called on the loading thread with the stage and the fraction of the load
    ///     done, which only grows: `.reading` at 0, `.vision` and `.text` after each layer,
    ///     `.ready` at 1.
    /// - Throws: `CancellationError` when the task is cancelled; ``SmolVLMError``
    ///   `.modelMissing` / `.modelInvalid` naming the file at fault, `.invalidArgument` for
    ///   options out of range or a backend this build, device or precision cannot use (Metal
    ///   runs f32 and f16 weights; quantized ones run on the CPU).
    public static func load(
        modelPath: String,
        options: LoadOptions? = nil,
        onProgress: (@Sendable (LoadStage, Float) -> Void)? = nil
    ) async throws -> SmolVLM {
        let listener = onProgress.map(ProgressRelay.init)
        let signal = CancelSignal()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    DispatchQueue.global(qos: .userInitiated).async {
                        do {
                            let raw = try SmolVlm.load(modelPath: modelPath, options: options?.ffi, listener: listener, cancel: signal)
                            continuation.resume(returning: SmolVLM(raw: raw))
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                }
            } onCancel: {
                // A cancel that comes before the load starts applies to it.
                signal.cancel()
            }
        } catch SmolVlmError.Cancelled where Task.isCancelled {
            throw CancellationError()
        } catch {
            throw SmolVLMError(any: error)
        }
    }

    /// Downloads a model from the Hugging Face hub on a background thread and returns its
    /// folder, ready for ``load(modelPath:options:onProgress:)``. Only the files the engine
    /// needs are fetched, each checked against the hub's size and SHA-256 before it gets its
    /// name.
    ///
    /// ```swift
    /// let dir = appSupport.appendingPathComponent("SmolVLM-256M-Instruct").path
    /// let path = try await SmolVLM.download(
    ///     DownloadRequest(repoId: "HuggingFaceTB/SmolVLM-256M-Instruct", folder: dir)
    /// ) { p in print(p.bytesDone, "of", p.bytesTotal) }
    /// ```
    ///
    /// Cancelling the calling task stops the download within a second; this function returns
    /// only once it has stopped, and then throws `CancellationError`. Partial files stay:
    /// calling it again with the same request continues where it stopped (also after a
    /// failure or an app restart), and with everything in place it only checks the hub's
    /// listing (nothing at all while the hub cannot be reached).
    ///
    /// - Parameters:
    ///   - request: `repoId` (see ``catalog``), `folder` (on a phone pass one, e.g. under
    ///     Application Support: the default Hugging Face cache usually does not exist there)
    ///     or `cacheDir` (a Hugging Face cache root; not both), `revision` (`main`), `files`
    ///     (empty: what the engine needs), `token` (gated or private repos), `endpoint`,
    ///     `keepFreeBytes` (space that must stay free).
    ///   - progress: called on the downloading thread at most 10 times a second and once at
    ///     the end (`bytesDone == bytesTotal`); no number ever goes down.
    /// - Throws: `CancellationError` when the task is cancelled; ``SmolVLMError`` `.notFound`,
    ///   `.unauthorized` (no valid token), `.forbidden`, `.integrityFailed`,
    ///   `.insufficientSpace`, `.networkFailed` (after retries), `.storageFailed`,
    ///   `.modelMissing` (`HF_HUB_OFFLINE` set and the model not there), `.invalidArgument` for
    ///   a malformed request.
    public static func download(
        _ request: DownloadRequest,
        progress: (@Sendable (DownloadProgress) -> Void)? = nil
    ) async throws -> String {
        let task = ModelDownload(request: request.ffi)
        let listener = progress.map(DownloadRelay.init)
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    Thread.detachNewThread {
                        do {
                            continuation.resume(returning: try task.run(listener: listener))
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                }
            } onCancel: {
                // A cancel that comes before the run starts applies to that run.
                task.cancel()
            }
        } catch SmolVlmError.Cancelled where Task.isCancelled {
            throw CancellationError()
        } catch {
            throw SmolVLMError(any: error)
        }
    }

    /// What loading `modelPath` with `options` will hold in memory, without loading it (only
    /// the configuration files are read): the weights in the precision they will be held in,
    /// one chat's KV cache at the context length the model would get (by default its maximum,
    /// lowered to what the available memory holds), the largest transient activations, and the
    /// tokenizer and library baseline, in bytes, with their `total`.
    ///
    /// ```swift
    /// let need = try SmolVLM.estimateMemory(modelPath: dir, options: LoadOptions(precision: .q8))
    /// ```
    ///
    /// - Throws: ``SmolVLMError`` `.insufficientMemory` when the model would not fit the memory
    ///   available to the app (use a smaller precision or `contextLength`; ``load(modelPath:options:progress:)``
    ///   refuses it the same way), `.modelMissing` or `.modelInvalid`.
    public static func estimateMemory(modelPath: String, options: LoadOptions? = nil) throws -> MemoryEstimate {
        try native { MemoryEstimate(try SmolVLMFFI.estimateMemory(modelPath: modelPath, options: options?.ffi)) }
    }

    /// The known SmolVLM checkpoints, for a model picker: name, hub repo (`repoId` of a
    /// `DownloadRequest`), `format` (`.safetensors`: load the folder; `.ggufPair`: load the
    /// text GGUF with the `mmproj` file, both in `files`), `files`, `parameters`,
    /// `downloadBytes`, the `precision` to load it at on a phone, about how much memory it then
    /// needs (`memoryBytes`) and whether it knows video.
    public static var catalog: [CatalogModel] { modelCatalog().map(CatalogModel.init) }

    /// The native library's version (the Rust crates' version).
    public static var version: String { SmolVLMFFI.version() }

    /// What the loaded model is: family, context length, image settings, the weight precision
    /// and backend in use (`.auto` resolved), and `videoFrameLimit`, the most frames one video
    /// contributes to a question (0: the model takes no videos).
    public var info: ModelInfo { ModelInfo(raw.info()) }

    /// Which frames a question reads out of a video of `frameCount` frames spanning `duration`
    /// seconds: indices from 0, ascending, at most `info.videoFrameLimit`, chosen as
    /// transformers' SmolVLM2 video processor chooses them (the checkpoint's frames per second
    /// and frame limit, 1 s trimmed at both ends of long videos).
    ///
    /// A video decoder decodes just these frames and passes them to
    /// ``VideoInput/chosen(frames:timestamps:duration:)`` (what ``readVideo(_:)`` does on Apple
    /// platforms); ``VideoInput/init(frames:timestamps:duration:)`` makes the same choice itself
    /// from every frame of a clip.
    ///
    /// ```swift
    /// let indices = try vlm.videoFrameIndices(frameCount: 130, duration: 65) // 0, 2, 4, …, 126, 129
    /// ```
    ///
    /// - Throws: `.invalidArgument` if the model takes no videos or was closed, or `frameCount`
    ///   or `duration` is not positive.
    public func videoFrameIndices(frameCount: Int, duration: Double) throws -> [Int] {
        let count = try int32(frameCount, "frameCount")
        return try native { try raw.videoFrameIndices(frameCount: count, durationSeconds: duration) }.map(Int.init)
    }

    /// Opens a new conversation.
    ///
    /// - Parameters:
    ///   - systemPrompt: optional instructions placed before the first question.
    ///   - defaults: generation settings used by every
    ///     ``Chat/ask(_:images:options:videos:)`` that passes none (`nil`: greedy, 256 tokens).
    /// - Throws: `.invalidArgument` if the model was closed or `defaults` are out of range.
    public func newChat(systemPrompt: String? = nil, defaults: GenerationConfig? = nil) throws -> Chat {
        Chat(raw: try native { try raw.newSession(systemPrompt: systemPrompt, defaults: defaults?.ffi) })
    }

    /// Starts the camera loop on this model: ``LiveCamera/push(_:timestampMs:)`` frames as the
    /// camera makes them, iterate ``LiveCamera/events`` for captions of the newest frame,
    /// ``LiveCamera/ask(_:)`` questions mid-stream, and ``LiveCamera/close()`` it when done.
    ///
    /// ```swift
    /// let camera = try vlm.live(LiveConfig(prompt: "Read the sign aloud.", minIntervalMs: 500))
    /// ```
    ///
    /// - Parameter config: every field has a default: `prompt` (the standing prompt, "Describe
    ///   what you see in one sentence."), `maxTokens` per answer (48), `minIntervalMs` between
    ///   captions (0), `changeThreshold` (2: frames that barely changed are skipped; 0 answers
    ///   every frame), `imageSplitting` (off: one view per frame), `onlyNewText`,
    ///   `systemPrompt`.
    /// - Throws: `.invalidArgument` if the model was closed or takes no images, or `config` is
    ///   out of range.
    public func live(_ config: LiveConfig = LiveConfig()) throws -> LiveCamera {
        LiveCamera(raw: try native { try raw.live(config: config.ffi) })
    }

    /// Releases this handle's share of the model now. Open chats and live cameras keep working;
    /// the weights are freed when they are closed too. Safe to call more than once.
    public func close() { raw.release() }
}

/// Forwards load progress to a Swift closure.
private final class ProgressRelay: LoadProgressListener, @unchecked Sendable {
    let callback: @Sendable (LoadStage, Float) -> Void
    init(_ callback: @escaping @Sendable (LoadStage, Float) -> Void) { self.callback = callback }
    func onProgress(stage: SmolVLMFFI.LoadStage, fraction: Float) { callback(LoadStage(stage), fraction) }
}

/// Forwards download progress to a Swift closure.
private final class DownloadRelay: DownloadListener, @unchecked Sendable {
    let callback: @Sendable (DownloadProgress) -> Void
    init(_ callback: @escaping @Sendable (DownloadProgress) -> Void) { self.callback = callback }
    func onProgress(progress: SmolVLMFFI.DownloadProgress) { callback(DownloadProgress(progress)) }
}

/// One conversation with a ``SmolVLM`` model. Follow-up questions reuse what the model has
/// already read, so an image is encoded once per chat (see ``stats``). One answer at a time
/// per chat; open several chats to answer in parallel.
public final class Chat: Sendable {
    let raw: ChatSession

    init(raw: ChatSession) { self.raw = raw }

    /// Asks `text` about `images` and `videos` and streams the answer as text pieces, in order.
    /// The model reads the videos first, then the images, then the text.
    ///
    /// ```swift
    /// let clip = try VideoInput(frames: frames, timestamps: frames.indices.map { Double($0) / 2 }, duration: 3)
    /// for try await piece in chat.ask("What happens in this video?", videos: [clip]) { print(piece) }
    /// ```
    ///
    /// The answer is computed on a background thread while the stream is iterated. Terminating
    /// the stream (breaking out of `for try await`, or cancelling the consuming task) cancels the
    /// generation within one decode step, and the question is removed from the ``transcript``.
    /// Errors (``SmolVLMError``) are thrown by the iteration, e.g. `.invalidArgument` if another
    /// answer is still streaming in this chat or `videos` is not empty and the model takes no
    /// videos, `.invalidImage` if a deferred frame's bytes do not match its size,
    /// `.contextOverflow` if the conversation no longer fits, `.cancelled` after ``cancel()``.
    ///
    /// - Parameter videos: ``VideoInput``s (on Apple platforms, ``SmolVLM/readVideo(_:)`` reads
    ///   an `AVAsset`); each frame the model reads costs the vision tokens of one image tile, at
    ///   most `info.videoFrameLimit` frames per video.
    public func ask(
        _ text: String,
        images: [ImageInput] = [],
        options: GenerationConfig? = nil,
        videos: [VideoInput] = []
    ) -> AsyncThrowingStream<String, Error> {
        let raw = self.raw
        return AsyncThrowingStream { continuation in
            let stream: TokenStream
            do {
                stream = try raw.ask(text: text, images: images.map(\.raw), options: options?.ffi, videos: videos.map(\.raw))
            } catch {
                continuation.finish(throwing: SmolVLMError(any: error))
                return
            }
            continuation.onTermination = { _ in stream.cancel() }
            Thread.detachNewThread {
                defer { stream.release() }
                do {
                    while let piece = try stream.next() {
                        if case .terminated = continuation.yield(piece) { return }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: SmolVLMError(any: error))
                }
            }
        }
    }

    /// Stops the answer being generated, from any thread; its stream throws `.cancelled`.
    public func cancel() { raw.cancel() }

    /// Forgets the conversation (the system prompt stays), cancelling a running answer.
    public func reset() { raw.reset() }

    /// The conversation so far: system prompt, questions and answers.
    public var transcript: [ChatMessage] { raw.transcript().map(ChatMessage.init) }

    /// Timings and counts of the last finished answer (`nil` before the first one). A
    /// follow-up about an image already sent shows `visionTiles == 0`.
    public var stats: GenerationStats? { raw.stats().map(GenerationStats.init) }

    /// Frees the chat's memory now, cancelling a running answer. Safe to call more than once.
    public func close() { raw.release() }
}

import Dispatch
import Foundation
@_exported import SmolVLMFFI

/// A SmolVLM model loaded on the device, answering questions about images entirely offline.
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
/// Errors are thrown as ``SmolVlmError`` cases: `.ModelMissing`, `.ModelInvalid`,
/// `.InvalidImage`, `.InvalidArgument`, `.ContextOverflow`, `.Cancelled` and `.Internal`; a
/// caught Rust panic is thrown as `UniffiInternalError.rustPanic`. Downloads add `.NotFound`,
/// `.Unauthorized`, `.Forbidden`, `.IntegrityFailed`, `.InsufficientSpace`, `.NetworkFailed` and
/// `.StorageFailed`.
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
    ///     default, 0 turns the cache off).
    ///   - onProgress: called on the loading thread with the stage and the fraction of the load
    ///     done, which only grows: `.reading` at 0, `.vision` and `.text` after each layer,
    ///     `.ready` at 1.
    /// - Throws: `CancellationError` when the task is cancelled; ``SmolVlmError``
    ///   `.ModelMissing` / `.ModelInvalid` naming the file at fault, `.InvalidArgument` for
    ///   options out of range or a backend this build or device lacks.
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
                            let raw = try SmolVlm.load(modelPath: modelPath, options: options, listener: listener, cancel: signal)
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
    /// - Throws: `CancellationError` when the task is cancelled; ``SmolVlmError`` `.NotFound`,
    ///   `.Unauthorized` (no valid token), `.Forbidden`, `.IntegrityFailed`,
    ///   `.InsufficientSpace`, `.NetworkFailed` (after retries), `.StorageFailed`,
    ///   `.ModelMissing` (`HF_HUB_OFFLINE` set and the model not there), `.InvalidArgument` for
    ///   a malformed request.
    public static func download(
        _ request: DownloadRequest,
        progress: (@Sendable (DownloadProgress) -> Void)? = nil
    ) async throws -> String {
        let task = ModelDownload(request: request)
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
        }
    }

    /// The known SmolVLM checkpoints, for a model picker: name, hub repo (`repoId` of a
    /// `DownloadRequest`), `format` (`.safetensors`: load the folder; `.ggufPair`: load the
    /// text GGUF with the `mmproj` file, both in `files`), `files`, `parameters`,
    /// `downloadBytes`, the `precision` to load it at on a phone, about how much memory it then
    /// needs (`memoryBytes`) and whether it knows video.
    public static var catalog: [CatalogModel] { modelCatalog() }

    /// What the loaded model is: family, context length, image settings, and the weight
    /// precision and backend in use (`.auto` resolved).
    public var info: ModelInfo { raw.info() }

    /// Opens a new conversation.
    ///
    /// - Parameters:
    ///   - systemPrompt: optional instructions placed before the first question.
    ///   - defaults: generation settings used by every ``Chat/ask(_:images:options:)`` that
    ///     passes none (`nil`: greedy, 256 tokens).
    /// - Throws: `.InvalidArgument` if the model was closed or `defaults` are out of range.
    public func newChat(systemPrompt: String? = nil, defaults: GenerationConfig? = nil) throws -> Chat {
        Chat(raw: try raw.newSession(systemPrompt: systemPrompt, defaults: defaults))
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
    /// - Throws: `.InvalidArgument` if the model was closed or takes no images, or `config` is
    ///   out of range.
    public func live(_ config: LiveConfig = LiveConfig()) throws -> LiveCamera {
        LiveCamera(raw: try raw.live(config: config))
    }

    /// Releases this handle's share of the model now. Open chats and live cameras keep working;
    /// the weights are freed when they are closed too. Safe to call more than once.
    public func close() { raw.release() }
}

/// Forwards load progress to a Swift closure.
private final class ProgressRelay: LoadProgressListener, @unchecked Sendable {
    let callback: @Sendable (LoadStage, Float) -> Void
    init(_ callback: @escaping @Sendable (LoadStage, Float) -> Void) { self.callback = callback }
    func onProgress(stage: LoadStage, fraction: Float) { callback(stage, fraction) }
}

/// Forwards download progress to a Swift closure.
private final class DownloadRelay: DownloadListener, @unchecked Sendable {
    let callback: @Sendable (DownloadProgress) -> Void
    init(_ callback: @escaping @Sendable (DownloadProgress) -> Void) { self.callback = callback }
    func onProgress(progress: DownloadProgress) { callback(progress) }
}

/// One conversation with a ``SmolVLM`` model. Follow-up questions reuse what the model has
/// already read, so an image is encoded once per chat (see ``stats``). One answer at a time
/// per chat; open several chats to answer in parallel.
public final class Chat: Sendable {
    let raw: ChatSession

    init(raw: ChatSession) { self.raw = raw }

    /// Asks `text` about `images` and streams the answer as text pieces, in order.
    ///
    /// The answer is computed on a background thread while the stream is iterated. Terminating
    /// the stream (breaking out of `for try await`, or cancelling the consuming task) cancels the
    /// generation within one decode step, and the question is removed from the ``transcript``.
    /// Errors (``SmolVlmError``) are thrown by the iteration, e.g. `.InvalidArgument` if another
    /// answer is still streaming in this chat or `.ContextOverflow` if the conversation no
    /// longer fits.
    public func ask(
        _ text: String,
        images: [ImageInput] = [],
        options: GenerationConfig? = nil
    ) -> AsyncThrowingStream<String, Error> {
        let raw = self.raw
        return AsyncThrowingStream { continuation in
            let stream: TokenStream
            do {
                stream = try raw.ask(text: text, images: images, options: options)
            } catch {
                continuation.finish(throwing: error)
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
                    continuation.finish(throwing: error)
                }
            }
        }
    }

    /// Stops the answer being generated, from any thread; its stream throws `.Cancelled`.
    public func cancel() { raw.cancel() }

    /// Forgets the conversation (the system prompt stays), cancelling a running answer.
    public func reset() { raw.reset() }

    /// The conversation so far: system prompt, questions and answers.
    public var transcript: [ChatMessage] { raw.transcript() }

    /// Timings and counts of the last finished answer (`nil` before the first one). A
    /// follow-up about an image already sent shows `visionTiles == 0`.
    public var stats: GenerationStats? { raw.stats() }

    /// Frees the chat's memory now, cancelling a running answer. Safe to call more than once.
    public func close() { raw.release() }
}

extension ImageInput {
    /// Reads an image file (JPEG, PNG, WebP, GIF, BMP; EXIF orientation applied).
    public static func file(_ path: String) throws -> ImageInput { try fromFile(path: path) }

    /// Decodes an encoded image held in memory.
    public static func encoded(_ data: Data) throws -> ImageInput { try fromEncoded(bytes: data) }

    /// Converts one buffer of raw pixels (RGBA8888, BGRA8888, RGB888, NV21, NV12).
    ///
    /// - Parameters:
    ///   - rowStride: bytes from one row to the next (0: tightly packed).
    ///   - pixelStride: bytes from one pixel to the next for packed formats (0: natural size).
    ///   - rotationDegrees: clockwise rotation (0, 90, 180, 270) that makes the frame upright.
    /// - Throws: `.InvalidImage` when the bytes do not match the size and strides;
    ///   `.InvalidArgument` for another rotation or a negative size or stride (naming it).
    public static func pixels(
        _ data: Data, format: PixelFormat, width: Int, height: Int,
        rowStride: Int = 0, pixelStride: Int = 0, rotationDegrees: Int = 0
    ) throws -> ImageInput {
        try fromPixels(
            data: data, format: format, width: try int32(width, "width"), height: try int32(height, "height"),
            rowStride: try int32(rowStride, "rowStride"), pixelStride: try int32(pixelStride, "pixelStride"),
            rotationDegrees: Int32(clamping: rotationDegrees))
    }

    /// Converts a three-plane YUV 4:2:0 frame: each plane with its row stride, and the chroma
    /// planes' shared pixel stride (2 when U and V are interleaved). Throws as
    /// ``pixels(_:format:width:height:rowStride:pixelStride:rotationDegrees:)`` does (strides
    /// must be at least 1).
    public static func yuv420(
        y: Data, u: Data, v: Data, width: Int, height: Int,
        yRowStride: Int, uvRowStride: Int, uvPixelStride: Int,
        rotationDegrees: Int = 0, range: YuvColorRange = .full
    ) throws -> ImageInput {
        try fromYuv420(
            y: y, u: u, v: v, width: try int32(width, "width"), height: try int32(height, "height"),
            yRowStride: try int32(yRowStride, "yRowStride"), uvRowStride: try int32(uvRowStride, "uvRowStride"),
            uvPixelStride: try int32(uvPixelStride, "uvPixelStride"), range: range,
            rotationDegrees: Int32(clamping: rotationDegrees))
    }

    /// A camera frame for ``LiveCamera/push(_:timestampMs:)``:
    /// ``pixels(_:format:width:height:rowStride:pixelStride:rotationDegrees:)`` without the
    /// conversion. The bytes are copied and converted only if the live loop takes the frame, so
    /// the frames it drops cost nothing more; bytes that do not match the size come back as a
    /// `.frameError` event (or `.InvalidImage` when passed to ``Chat/ask(_:images:options:)``).
    public static func frame(
        _ data: Data, format: PixelFormat, width: Int, height: Int,
        rowStride: Int = 0, pixelStride: Int = 0, rotationDegrees: Int = 0
    ) throws -> ImageInput {
        try fromPixelsDeferred(
            data: data, format: format, width: try int32(width, "width"), height: try int32(height, "height"),
            rowStride: try int32(rowStride, "rowStride"), pixelStride: try int32(pixelStride, "pixelStride"),
            rotationDegrees: Int32(clamping: rotationDegrees))
    }

    /// A three-plane YUV 4:2:0 camera frame for ``LiveCamera/push(_:timestampMs:)``:
    /// ``yuv420(y:u:v:width:height:yRowStride:uvRowStride:uvPixelStride:rotationDegrees:range:)``
    /// without the conversion (see ``frame(_:format:width:height:rowStride:pixelStride:rotationDegrees:)``).
    public static func frameYuv420(
        y: Data, u: Data, v: Data, width: Int, height: Int,
        yRowStride: Int, uvRowStride: Int, uvPixelStride: Int,
        rotationDegrees: Int = 0, range: YuvColorRange = .full
    ) throws -> ImageInput {
        try fromYuv420Deferred(
            y: y, u: u, v: v, width: try int32(width, "width"), height: try int32(height, "height"),
            yRowStride: try int32(yRowStride, "yRowStride"), uvRowStride: try int32(uvRowStride, "uvRowStride"),
            uvPixelStride: try int32(uvPixelStride, "uvPixelStride"), range: range,
            rotationDegrees: Int32(clamping: rotationDegrees))
    }
}

/// A size or stride as the native API's `Int32`. A value too large for it is `.InvalidArgument`
/// here; a negative one is refused, by name, by the library.
private func int32(_ v: Int, _ name: String) throws -> Int32 {
    guard let i = Int32(exactly: v) else {
        throw SmolVlmError.InvalidArgument(reason: "\(name) \(v) is out of range")
    }
    return i
}

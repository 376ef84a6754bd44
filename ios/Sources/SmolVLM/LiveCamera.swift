import Foundation
internal import SmolVLMFFI

/// The camera loop over a ``SmolVLM`` model (made by ``SmolVLM/live(_:)``): push camera frames
/// as fast as the camera makes them, iterate ``events`` for captions of the newest frame, ask
/// questions mid-stream.
///
/// ```swift
/// let camera = try vlm.live(LiveConfig(prompt: "What is in front of me?"))
/// // AVCaptureVideoDataOutput's delegate:
/// try camera.push(.frame(pixelBuffer: buffer, orientation: .right), timestampMs: ms)
/// for try await event in camera.events {
///     if case .answer(_, _, let text, _, _) = event { caption = text }
/// }
/// ```
///
/// ``push(_:timestampMs:)`` never blocks on the model: a frame only replaces the one waiting
/// (which is dropped unconverted), and the loop converts a frame only when it takes it. Frames
/// that barely changed are skipped (`LiveConfig.changeThreshold`). The loop runs on its own
/// native thread inside the model's thread pool while the camera is open. Thread-safe: push from
/// the capture queue, iterate from a task, ask, pause or close from anywhere.
public final class LiveCamera: Sendable {
    let raw: LiveCaptioner

    init(raw: LiveCaptioner) { self.raw = raw }

    /// The loop's events, in order: `.piece`s of the answer being generated, then its `.answer`
    /// (the frame, the question for an answer to ``ask(_:)``, the text, the finish reason and
    /// `LiveStats`: frame-to-first-token latency, vision ms, tokens/s, frames dropped and skipped
    /// since the previous answer), and `.frameError` for a frame that could not be converted (the
    /// loop goes on).
    ///
    /// The events are waited for on a background thread. Iterate one stream: the camera lives as
    /// long as it is iterated. Terminating it (breaking out of `for try await`, or cancelling
    /// the iterating task) closes the camera, which stops the loop within one decode step. After
    /// ``close()`` the stream finishes normally. A failure that ends the loop (`.internal`: a panic
    /// inside it) is thrown by the iteration; a failed answer (a question too long for the
    /// model, say) is a `.frameError` event.
    public var events: AsyncThrowingStream<LiveEvent, Error> {
        let raw = self.raw
        return AsyncThrowingStream { continuation in
            // Closing waits for the loop to stop (one decode step): not on the terminating thread.
            continuation.onTermination = { _ in Thread.detachNewThread { raw.release() } }
            Thread.detachNewThread {
                do {
                    while true {
                        guard let event = try raw.nextEvent(timeoutMs: nil) else { continue }
                        if case .terminated = continuation.yield(LiveEvent(event)) { return }
                    }
                } catch SmolVlmError.Cancelled {
                    continuation.finish()  // closed
                } catch {
                    continuation.finish(throwing: SmolVLMError(any: error))
                }
            }
        }
    }

    /// Hands the loop a new camera frame and returns its id (1, 2, … in push order; events carry
    /// it with `timestampMs`). Never blocks on the model. Push deferred frames
    /// (``ImageInput/frame(_:format:width:height:rowStride:pixelStride:rotationDegrees:)``,
    /// `ImageInput.frameYuv420`, or `ImageInput.frame(pixelBuffer:orientation:)` on Apple
    /// platforms): a copy
    /// of the pixels that the loop converts only if it takes the frame; a frame that cannot be
    /// converted comes back as a `.frameError` event.
    ///
    /// - Parameter timestampMs: the app's timestamp of the frame (default: now, in ms since
    ///   1970), e.g. from `CMSampleBufferGetPresentationTimeStamp`; not negative. `Int64`, like
    ///   the `FrameInfo` (`id`, `timestampMs`) that events carry.
    /// - Throws: `.invalidArgument` for a negative timestamp, or after ``close()``.
    @discardableResult
    public func push(_ frame: ImageInput, timestampMs: Int64 = LiveCamera.nowMs()) throws -> Int64 {
        try native { try raw.pushFrame(image: frame.raw, timestampMs: timestampMs) }
    }

    /// Asks `question` about the newest frame (while paused: about the frame last answered
    /// about). It is answered after the answer in progress, as events that carry the question;
    /// captioning then goes on.
    ///
    /// - Throws: `.invalidArgument` for an empty question, or after ``close()``.
    public func ask(_ question: String) throws { try native { try raw.ask(question: question) } }

    /// Asks `question` about the last `seconds` of frames, as a video of the frames kept one per
    /// second (set `LiveConfig(historySeconds:)`; SmolVLM2 models). Frames encoded for an earlier
    /// such question are not encoded again. It is answered after the answer in progress, as
    /// events that carry the question; with no frame kept yet the answer is a frame error.
    ///
    /// - Throws: `.invalidArgument` for an empty question, a `seconds` that is not positive, or
    ///   after ``close()``.
    public func askRecent(_ question: String, seconds: Double) throws {
        try native { try raw.askRecent(question: question, seconds: seconds) }
    }

    /// Stops captioning: frames are still accepted (and dropped), and questions are answered
    /// about the frame last answered about, which stays frozen.
    ///
    /// - Throws: `.invalidArgument` after ``close()``.
    public func pause() throws { try native { try raw.pause() } }

    /// Captions again, from the newest frame.
    ///
    /// - Throws: `.invalidArgument` after ``close()``.
    public func resume() throws { try native { try raw.resume() } }

    /// Frames pushed, and frames dropped unconverted because a newer one came first.
    public var counters: LiveCounters { LiveCounters(raw.counters()) }

    /// Whether the camera is closed (``close()``, its ``events`` stream terminated, or a
    /// failure).
    public var isClosed: Bool { raw.isReleased() }

    /// Stops the loop within one decode step and returns once it has stopped and given up its
    /// share of the model (blocking: at most one decode step). The ``events`` stream then
    /// finishes; later ``push(_:timestampMs:)``, ``ask(_:)``, ``pause()`` and ``resume()`` calls
    /// throw `.invalidArgument`. Safe to call more than once, from any thread.
    public func close() { raw.release() }

    /// Milliseconds since 1970: the default frame timestamp.
    public static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

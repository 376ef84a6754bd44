import Foundation
import SmolVLM

/// What the camera screen shows.
public struct CameraState: Equatable, Sendable {
    /// The screen's two modes.
    public enum Mode: Sendable {
        /// Captions of what the camera sees, one after the other.
        case live
        /// Questions about a frozen frame.
        case ask
    }

    /// Live captions or questions.
    public var mode: Mode = .live
    /// Whether a live loop is open (frames are taken).
    public var running = false
    /// The newest complete caption. Captions are shown whole, never token by token: a caption
    /// that grows and then starts over with every frame flickers.
    public var caption = ""
    /// Latency, speed and memory of the newest caption or answer.
    public var numbers: LiveNumbers?
    /// The question about the frozen frame and its answer; `nil` in live mode and before the
    /// first question.
    public var ask: AskState?
    /// The newest failure (a frame that could not be read, a failed answer, a closed model);
    /// cleared by the next caption or question.
    public var problem: Problem?

    public init() {}

    /// The stats line under the caption or answer: "first token 812 ms · 14.2 tok/s · 380 MB".
    public var statsLine: String? { numbers?.line }
}

/// The numbers under a caption or an answer.
public struct LiveNumbers: Equatable, Sendable {
    /// Milliseconds from the frame's arrival to the first word: what the user waits.
    public let firstTokenMs: Int
    /// Generation speed after the first word.
    public let tokensPerSecond: Double
    /// The app's memory footprint when the answer ended, in MB (MiB).
    public let memoryMB: Int

    public init(firstTokenMs: Int, tokensPerSecond: Double, memoryMB: Int) {
        self.firstTokenMs = firstTokenMs
        self.tokensPerSecond = tokensPerSecond
        self.memoryMB = memoryMB
    }

    /// "first token 812 ms · 14.2 tok/s · 380 MB".
    public var line: String {
        "first token \(firstTokenMs) ms · \(String(format: "%.1f", tokensPerSecond)) tok/s · \(memoryMB) MB"
    }
}

/// A question about the frozen frame.
public struct AskState: Equatable, Sendable {
    /// The question asked (trimmed).
    public let question: String
    /// The answer so far, redrawn every few pieces while ``streaming``; whole at the end.
    public var answer = ""
    /// How many pieces ``answer`` holds.
    public var pieces = 0
    /// The camera frame the answer is about (`nil` until the first piece).
    public var frameId: Int64?
    /// Whether the answer is still being generated.
    public var streaming = true
    /// Whether ``LiveCaptioning/stop()`` (or leaving the app) cut it short.
    public var stopped = false

    public init(question: String) { self.question = question }
}

/// The ready-made questions of ask mode.
public enum Preset: String, CaseIterable, Sendable, Identifiable {
    case whatIsThis, readText, describe, person

    public var id: String { rawValue }

    /// What is asked. The model reads English, so this is not translated (the button's
    /// ``title`` would be).
    public var question: String {
        switch self {
        case .whatIsThis: return "What is this?"
        case .readText: return "Read the text."
        case .describe: return "Describe the scene."
        case .person: return "Is there a person?"
        }
    }

    /// The button's label.
    public var title: String {
        switch self {
        case .whatIsThis: return "What is this?"
        case .readText: return "Read text"
        case .describe: return "Describe"
        case .person: return "Person?"
        }
    }

    /// An SF Symbol for the button.
    public var symbol: String {
        switch self {
        case .whatIsThis: return "questionmark.circle"
        case .readText: return "text.viewfinder"
        case .describe: return "text.bubble"
        case .person: return "person.crop.rectangle"
        }
    }
}

/// Live captions of the camera and questions about a frozen frame, over one loaded model
/// (`LiveCamera` underneath).
///
/// Live mode: ``open(_:)`` starts the loop; the camera's capture queue calls
/// ``push(timestampMs:_:)`` for every frame (from any thread, never blocking: frames the loop is
/// too busy for are dropped unconverted); ``state`` carries the newest whole caption and its
/// numbers. Ask mode: ``enterAskMode()`` (or the first ``ask(_:)``) pauses captioning, which
/// freezes the frame last captioned, and questions are answered about it; follow-up questions
/// stay on that frame (its encoding is cached, so they skip the vision encoder) until
/// ``backToLive()``. The answer streams into ``CameraState/ask``, redrawn every
/// `redrawEveryPieces` pieces (or sooner when pieces come slowly) and at the end. ``stop()``
/// cuts an answer short. ``enterBackground()`` closes the loop (iOS allows no GPU work and no
/// camera in the background) and ``enterForeground()`` opens it again.
///
/// Main-actor state with no UI types, so that its tests run on Linux against the real library;
/// only ``push(timestampMs:_:)`` is called from elsewhere.
@MainActor
public final class LiveCaptioning {
    /// What the camera screen shows.
    public private(set) var state = CameraState() {
        didSet { broadcast.send(state) }
    }

    /// ``state`` now, then every change, in order.
    public var states: AsyncStream<CameraState> { broadcast.stream(startingWith: state) }

    /// Whether a live loop is open.
    public var isOpen: Bool { session != nil }

    /// Whether the app is in the foreground (``enterBackground()`` / ``enterForeground()``).
    public private(set) var isInForeground = true

    /// An open loop and the task reading its events.
    @MainActor private final class Session {
        let camera: LiveCamera
        var reader: Task<Void, Never>?
        init(camera: LiveCamera) { self.camera = camera }
    }

    private let config: LiveConfig
    private let redrawEveryPieces: Int
    private let redrawEveryMs: Int64
    private let clock: @Sendable () -> Int64
    private let memoryBytes: @Sendable () -> Int64
    private let broadcast = Broadcast<CameraState>()
    /// What ``push(timestampMs:_:)`` reads from the capture queue.
    private let gate = FrameGate()
    private var session: Session?
    private var model: SmolVLM?
    /// The loops closed so far, one after the other: a new one opens once they have stopped and
    /// let go of the model.
    private var closing: Task<Void, Never>?
    private var answer = ""
    private var answerPieces = 0
    private var piecesSinceDraw = 0
    private var lastDrawMs: Int64 = 0

    /// - Parameters:
    ///   - config: the loop's settings: the standing caption prompt, tokens per caption or
    ///     answer, the change threshold below which frames are skipped.
    ///   - redrawEveryPieces: an answer is redrawn every this many pieces...
    ///   - redrawEveryMs: ...or when this long has passed since the last redraw (slow models).
    ///   - clock: milliseconds on a monotonic clock, for the redraw throttle.
    ///   - memoryBytes: the app's memory, for the stats line.
    public init(
        config: LiveConfig = LiveConfig(maxTokens: 96),
        redrawEveryPieces: Int = 3,
        redrawEveryMs: Int64 = 150,
        clock: @escaping @Sendable () -> Int64 = { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) },
        memoryBytes: @escaping @Sendable () -> Int64 = ProcessMemory.footprintBytes
    ) {
        self.config = config
        self.redrawEveryPieces = max(1, redrawEveryPieces)
        self.redrawEveryMs = redrawEveryMs
        self.clock = clock
        self.memoryBytes = memoryBytes
    }

    // MARK: - The model

    /// Starts captioning with `vlm` (closing a loop already open); in the background the loop
    /// opens with ``enterForeground()``. A model that cannot run the loop (closed, or without
    /// vision) becomes a ``Problem`` in ``state``, not an exception.
    public func open(_ vlm: SmolVLM) {
        closeSession()
        model = vlm
        resetAnswer()
        state = CameraState()
        if isInForeground { openSession(vlm, paused: false) }
    }

    /// Closes the loop (without waiting: it stops within one decode step and then lets go of
    /// the model, its thread and the frozen frame) and forgets the model, which stays open:
    /// ``ModelSetup`` owns it.
    public func close() {
        closeSession()
        model = nil
        update {
            $0.running = false
            $0.ask?.streaming = false
        }
    }

    /// Waits until every loop closed so far has stopped (for tests, and before closing the model
    /// for good).
    public func settle() async {
        await closing?.value
    }

    // MARK: - Frames

    /// Hands the live loop a camera frame. `frame` is called (to copy the camera's buffer) only
    /// while a loop is open and the app is in the foreground; nothing here blocks on the model.
    /// Call it from the camera's capture queue, any thread.
    ///
    /// - Parameters:
    ///   - timestampMs: the frame's time, e.g. its presentation timestamp in ms.
    ///   - frame: makes the frame, e.g. `try .frame(pixelBuffer: buffer, orientation: o)`. What
    ///     it throws becomes a ``Problem`` (``Problem/Kind/badFrame`` for the library's
    ///     `invalidImage`).
    /// - Returns: whether the frame was taken (made and pushed).
    @discardableResult
    public nonisolated func push(timestampMs: Int64, _ frame: () throws -> ImageInput) -> Bool {
        guard let camera = gate.camera else { return false }
        let input: ImageInput
        do {
            input = try frame()
        } catch {
            let problem = Problem(error)
            Task { @MainActor in self.report(problem) }
            return false
        }
        do {
            try camera.push(input, timestampMs: max(0, timestampMs))
            return true
        } catch {
            // Closed between the look at the gate and the push (Stop, background): not needed.
            return false
        }
    }

    // MARK: - Ask mode

    /// Freezes the frame last captioned (captioning pauses) and waits for a question.
    public func enterAskMode() {
        guard state.mode == .live else { return }
        update {
            $0.mode = .ask
            $0.ask = nil
        }
        do {
            try session?.camera.pause()
        } catch {
            report(Problem(error))
        }
    }

    /// Asks `question` about the frozen frame (entering ask mode first if needed). Ignored for a
    /// blank question, while an answer is streaming, and without an open loop.
    public func ask(_ question: String) {
        let text = question.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, state.ask?.streaming != true, let camera = session?.camera else { return }
        resetAnswer()
        update {
            $0.mode = .ask
            $0.ask = AskState(question: text)
            $0.problem = nil
        }
        do {
            try camera.pause()
            try camera.ask(text)
        } catch {
            update {
                $0.ask?.streaming = false
                $0.problem = Problem(error)
            }
        }
    }

    /// Asks a ready-made question.
    public func ask(_ preset: Preset) { ask(preset.question) }

    /// Cuts the answer being generated short. The loop cannot cancel one answer by itself, so it
    /// is closed (generation stops within one decode step) and a new one opens, paused; the
    /// frozen frame goes with the old one, so the next question looks at the newest frame. The
    /// answer so far stays on screen, marked ``AskState/stopped``.
    public func stop() {
        guard state.ask?.streaming == true, let vlm = model, session != nil else { return }
        closeSession()
        update {
            $0.running = false
            cutShort(&$0)
        }
        reopen(vlm)
    }

    /// Leaves ask mode: captioning goes on from the newest frame. Not while an answer streams
    /// (``stop()`` it first).
    public func backToLive() {
        guard state.ask?.streaming != true, state.mode == .ask else { return }
        update {
            $0.mode = .live
            $0.ask = nil
        }
        do {
            try session?.camera.resume()
        } catch {
            report(Problem(error))
        }
    }

    // MARK: - App lifecycle

    /// The app left the foreground: no frame is taken any more, and the loop is closed, which
    /// stops an answer being generated within one decode step (iOS allows no GPU work in the
    /// background, and the camera stops anyway). The answer so far stays, marked stopped.
    public func enterBackground() {
        guard isInForeground else { return }
        isInForeground = false
        gate.setTaking(false)
        closeSession()
        update {
            $0.running = false
            cutShort(&$0)
        }
    }

    /// The app is in the foreground again: the loop opens again (once the old one has stopped)
    /// and captions from the newest frame. The frozen frame did not survive the closed loop, so
    /// the screen goes back to live mode.
    public func enterForeground() {
        guard !isInForeground else { return }
        isInForeground = true
        gate.setTaking(true)
        update {
            $0.mode = .live
            $0.ask = nil
        }
        if let vlm = model, session == nil { reopen(vlm) }
    }

    // MARK: - The loop

    private func openSession(_ vlm: SmolVLM, paused: Bool) {
        let camera: LiveCamera
        do {
            camera = try vlm.live(config)
            if paused { try camera.pause() }
        } catch {
            update {
                $0.running = false
                $0.problem = Problem(error)
            }
            return
        }
        let session = Session(camera: camera)
        session.reader = Task { [weak self] in
            do {
                for try await event in camera.events {
                    guard let self, self.session === session else { return }
                    self.handle(event)
                }
            } catch {
                // The loop itself failed (a bug inside the library): say so, keep the app alive.
                guard let self, self.session === session else { return }
                self.closeSession()
                self.update {
                    $0.running = false
                    $0.problem = Problem(error)
                }
            }
        }
        self.session = session
        gate.setCamera(camera)
        update { $0.running = true }
    }

    /// Stops reading the open loop's events and closes it off the main thread.
    private func closeSession() {
        guard let old = session else { return }
        session = nil
        gate.setCamera(nil)
        old.reader?.cancel()
        let camera = old.camera
        let previous = closing
        // close() waits up to one decode step for the loop to stop: off the main thread.
        closing = Task.detached {
            await previous?.value
            camera.close()
        }
    }

    /// Opens a new loop on `vlm` once the closed ones have stopped, unless something else
    /// happened meanwhile (another model, the background, a loop opened).
    private func reopen(_ vlm: SmolVLM) {
        let closed = closing
        Task {
            await closed?.value
            guard session == nil, model === vlm, isInForeground else { return }
            openSession(vlm, paused: state.mode == .ask)
        }
    }

    private func handle(_ event: LiveEvent) {
        switch event {
        case .piece(let frame, let question, let text):
            if let question { onPiece(question, text, frameId: frame.id) }
        case .answer(let frame, let question, let text, _, let stats):
            if let question {
                onAnswer(question, text, frameId: frame.id, stats: stats)
            } else {
                let numbers = numbers(stats)
                update {
                    $0.caption = text.trimmingCharacters(in: .whitespacesAndNewlines)
                    $0.numbers = numbers
                    $0.problem = nil
                }
            }
        case .frameError(_, let error):
            onFrameError(Problem(error))
        }
    }

    private func onPiece(_ question: String, _ text: String, frameId: Int64) {
        guard var ask = state.ask, ask.streaming, ask.question == question else { return }
        answer += text
        answerPieces += 1
        piecesSinceDraw += 1
        let now = clock()
        guard piecesSinceDraw >= redrawEveryPieces || now - lastDrawMs >= redrawEveryMs else { return }
        piecesSinceDraw = 0
        lastDrawMs = now
        ask.answer = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        ask.pieces = answerPieces
        ask.frameId = frameId
        state.ask = ask
    }

    private func onAnswer(_ question: String, _ text: String, frameId: Int64, stats: LiveStats) {
        guard var ask = state.ask, ask.streaming, ask.question == question else { return }
        ask.answer = text.trimmingCharacters(in: .whitespacesAndNewlines)
        ask.pieces = answerPieces
        ask.frameId = frameId
        ask.streaming = false
        let numbers = numbers(stats)
        update {
            $0.ask = ask
            $0.numbers = numbers
        }
    }

    private func onFrameError(_ problem: Problem) {
        // A frame that could not be read is skipped (a question waits for the next one); any
        // other failure was the answer itself (say, a question too long for the model).
        update {
            if problem.kind != .badFrame { $0.ask?.streaming = false }
            $0.problem = problem
        }
    }

    private func report(_ problem: Problem) {
        update { $0.problem = problem }
    }

    /// Changes ``state`` in one go: observers see one new state (or none, if nothing changed).
    private func update(_ change: (inout CameraState) -> Void) {
        var next = state
        change(&next)
        if next != state { state = next }
    }

    /// Marks the answer streaming in `s` (if any) as cut short, with the pieces that came.
    private func cutShort(_ s: inout CameraState) {
        guard var ask = s.ask, ask.streaming else { return }
        ask.answer = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        ask.pieces = answerPieces
        ask.streaming = false
        ask.stopped = true
        s.ask = ask
    }

    private func resetAnswer() {
        answer = ""
        answerPieces = 0
        piecesSinceDraw = 0
        // The first piece is drawn at once, later ones every few.
        lastDrawMs = clock() - redrawEveryMs
    }

    private func numbers(_ stats: LiveStats) -> LiveNumbers {
        LiveNumbers(
            firstTokenMs: Int(stats.frameToFirstTokenMs.rounded()),
            tokensPerSecond: stats.decodeTokensPerS,
            memoryMB: Int(memoryBytes() >> 20))
    }
}

/// The open loop as the capture queue sees it: the camera to push to, or `nil` while none is
/// open or the app is in the background. A lock held for a pointer copy: never on the model.
private final class FrameGate: @unchecked Sendable {
    private let lock = NSLock()
    private var current: LiveCamera?
    private var taking = true

    var camera: LiveCamera? {
        lock.lock()
        defer { lock.unlock() }
        return taking ? current : nil
    }

    func setCamera(_ camera: LiveCamera?) {
        lock.lock()
        current = camera
        lock.unlock()
    }

    func setTaking(_ taking: Bool) {
        lock.lock()
        self.taking = taking
        lock.unlock()
    }
}

import Foundation
import XCTest
@testable import SmolVLM
// The generated layer, for what only tests reach: object counts, a deliberate panic, raw calls.
import class SmolVLMFFI.CancelSignal
import func SmolVLMFFI.debugPanic
import func SmolVLMFFI.liveObjects
import protocol SmolVLMFFI.LoadProgressListener
import class SmolVLMFFI.SmolVlm
import enum SmolVLMFFI.SmolVlmError

/// Events collected from a background task, with the time each came.
final class EventBox: @unchecked Sendable {
    private var items: [(Date, LiveEvent)] = []
    private let lock = NSLock()
    func append(_ e: LiveEvent) { lock.lock(); items.append((Date(), e)); lock.unlock() }
    var all: [(Date, LiveEvent)] { lock.lock(); defer { lock.unlock() }; return items }
    var answers: [(frame: FrameInfo, question: String?, text: String, stats: LiveStats)] {
        all.compactMap { if case .answer(let f, let q, let t, _, let s) = $0.1 { return (f, q, t, s) } else { return nil } }
    }
}

/// A flag shared with a pusher thread.
final class StopFlag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Tests of the camera loop (``LiveCamera``) and of cancellable loading, on the tiny model (same
/// coverage as the Kotlin suite's LiveCameraTest).
final class LiveCameraTests: XCTestCase {
    static let w = 160
    static let h = 120

    /// A 160×120 RGBA frame: a bright bar on a dark gradient, `step` pixels from the left edge.
    static func frameData(_ step: Int) -> Data {
        var d = Data(count: w * h * 4)
        d.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) in
            for y in 0..<h { for x in 0..<w {
                let lit = (x + w - step % w) % w < 40
                let v = lit ? 230 : 20 + y / 4
                let i = (y * w + x) * 4
                p[i] = UInt8(v); p[i + 1] = UInt8(v / 2); p[i + 2] = UInt8(255 - v); p[i + 3] = 255
            } }
        }
        return d
    }

    static func frame(_ step: Int) throws -> ImageInput {
        try .frame(frameData(step), format: .rgba8888, width: w, height: h)
    }

    /// Resident memory of this process (VmRSS of /proc/self/status), in kB.
    static func rssKb() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    /// Pushes a moving frame every `periodMs` on a thread of its own until `stop` or the camera
    /// closes; `done` is set when it has stopped.
    static func pusher(_ camera: LiveCamera, periodMs: Int, stop: StopFlag, done: StopFlag) {
        Thread.detachNewThread {
            defer { done.set() }
            let t0 = Date()
            var n = 0
            while !stop.isSet {
                n += 1
                do {
                    try camera.push(try frame(n * 5), timestampMs: Int64(n * periodMs))
                } catch {
                    return  // closed
                }
                let wait = t0.addingTimeInterval(Double(n * periodMs) / 1000).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
    }

    static func waitFor(_ what: String, seconds: Double = 10, _ cond: () -> Bool) async throws {
        let end = Date().addingTimeInterval(seconds)
        while !cond() {
            if Date() > end { throw SmolVLMError.internal(reason: "timed out waiting for \(what)", details: "") }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    /// Iterates `camera.events` into `box` on a task of its own (with `answersOnly`, keeps only
    /// the answers: the soak's tens of thousands of pieces would weigh in its memory check).
    static func collector(_ camera: LiveCamera, _ box: EventBox, answersOnly: Bool = false) -> Task<Error?, Never> {
        Task.detached {
            do {
                for try await e in camera.events {
                    if answersOnly, case .piece = e { continue }
                    box.append(e)
                }
                return nil
            } catch { return error }
        }
    }

    func vlm() async throws -> SmolVLM { try await SmolVLMTests.sharedModel() }

    func testConfigDefaultsAreTheCores() {
        // The same values as the Rust test config_defaults_are_the_cores checks against the core.
        XCTAssertEqual(LiveConfig(), LiveConfig(
            prompt: "Describe what you see in one sentence.", systemPrompt: nil, maxTokens: 48,
            minIntervalMs: 0, imageSplitting: false, changeThreshold: 2.0, onlyNewText: false))
    }

    /// 20 s of frames at 30 fps: memory stays flat, answers move forward, frames are dropped.
    func testSoakAt30FpsKeepsMemoryFlat() async throws {
        let camera = try await vlm().live(LiveConfig(maxTokens: 96))
        defer { camera.close() }
        let box = EventBox()
        let collecting = Self.collector(camera, box, answersOnly: true)
        let (stop, done) = (StopFlag(), StopFlag())
        Self.pusher(camera, periodMs: 33, stop: stop, done: done)
        try await Task.sleep(nanoseconds: 3_000_000_000)
        let warm = Self.rssKb()
        try await Task.sleep(nanoseconds: 17_000_000_000)
        let end = Self.rssKb()
        stop.set()
        try await Self.waitFor("the pusher") { done.isSet }
        let counters = camera.counters
        camera.close()
        let failure = await collecting.value
        XCTAssertNil(failure)
        let got = box.answers
        print("soak: \(counters.framesPushed) frames pushed, \(counters.framesDropped) dropped, \(got.count) answers, RSS \(warm) -> \(end) kB")
        XCTAssertTrue((540...620).contains(counters.framesPushed), "30 fps for 20 s: \(counters.framesPushed)")
        XCTAssertGreaterThanOrEqual(got.count, 20, "answers kept coming")
        let ids = got.map(\.frame.id)
        XCTAssertTrue(zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "answered frame ids strictly increase: \(ids)")
        XCTAssertTrue(got.allSatisfy { $0.question == nil && $0.stats.generatedTokens > 0 })
        XCTAssertGreaterThan(got.map(\.stats.framesDropped).reduce(0, +), 0, "frames were dropped")
        XCTAssertGreaterThan(counters.framesDropped, 0)
        XCTAssertGreaterThan(warm, 0)
        XCTAssertLessThan(end - warm, 5 * 1024, "RSS grew \(end - warm) kB after the warm-up (limit 5 MB)")
    }

    func testAnUnchangedFrameIsNotCaptionedAgain() async throws {
        let camera = try await vlm().live(LiveConfig(maxTokens: 4))
        defer { camera.close() }
        let box = EventBox()
        let collecting = Self.collector(camera, box)
        let still = Self.frameData(3)
        try camera.push(.frame(still, format: .rgba8888, width: Self.w, height: Self.h), timestampMs: 0)
        try await Self.waitFor("the first answer") { box.answers.count == 1 }
        let first = box.all.first { if case .answer = $0.1 { return true } else { return false } }!.0
        // The same picture at 30 fps for 2.2 s.
        for i in 1...66 {
            try camera.push(.frame(still, format: .rgba8888, width: Self.w, height: Self.h), timestampMs: Int64(33 * i))
            try await Task.sleep(nanoseconds: 33_000_000)
        }
        XCTAssertTrue(box.all.filter { $0.0 > first }.isEmpty, "no caption for 2 s of identical frames")
        let moved = try camera.push(try Self.frame(80), timestampMs: 9_999)
        try await Self.waitFor("the second answer") { box.answers.count == 2 }
        let answer = box.answers.last!
        XCTAssertEqual(answer.frame.id, moved)
        XCTAssertGreaterThan(answer.stats.framesSkipped, 0, "the identical frames were skipped")
        camera.close()
        _ = await collecting.value
    }

    func testAQuestionAboutTheLastSecondsIsAskedAsAVideo() async throws {
        let camera = try await vlm().live(LiveConfig(maxTokens: 4, historySeconds: 5))
        defer { camera.close() }
        try camera.pause()
        // Frames every 500 ms for 4 s: one per second is kept, the newest five.
        for i in 0...8 { _ = try camera.push(try Self.frame(i * 5), timestampMs: Int64(i * 500)) }
        let question = "What happened in the last seconds?"
        try camera.askRecent(question, seconds: 3)
        var answer: (frame: FrameInfo, text: String)?
        for try await e in camera.events {
            if case .answer(let frame, question?, let text, _, _) = e { answer = (frame, text); break }
        }
        XCTAssertEqual(answer?.frame.timestampMs, 4000, "named after the newest kept frame")
        XCTAssertFalse(answer?.text.isEmpty ?? true)
        let other = try await vlm().live(LiveConfig(historySeconds: 5))
        defer { other.close() }
        XCTAssertThrowsError(try other.askRecent("When?", seconds: 0)) {
            guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") }
        }
    }

    func testAQuestionMidStreamIsAnsweredWithIt() async throws {
        let camera = try await vlm().live(LiveConfig(maxTokens: 8))
        defer { camera.close() }
        let (stop, done) = (StopFlag(), StopFlag())
        Self.pusher(camera, periodMs: 33, stop: stop, done: done)
        let question = "What colour is the bar?"
        var asked = false
        var pieces = ""
        var answer: (text: String, question: String?)?
        for try await e in camera.events {
            switch e {
            case .answer(_, nil, _, _, _) where !asked:
                try camera.ask(question); asked = true
            case .piece(_, let q?, let text):
                XCTAssertEqual(q, question); pieces += text
            case .answer(_, let q?, let text, _, _):
                answer = (text, q)
            default: break
            }
            if answer != nil { break }
        }
        stop.set()
        try await Self.waitFor("the pusher") { done.isSet }
        XCTAssertEqual(answer?.question, question)
        XCTAssertFalse(answer?.text.isEmpty ?? true)
        XCTAssertEqual(answer?.text, pieces, "its pieces carry the question too")
        // Breaking out of the loop closed the camera (on a background thread).
        try await Self.waitFor("the camera to close") { camera.isClosed }
        XCTAssertThrowsError(try camera.ask("Again?")) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") } }
    }

    func testABadFrameIsAnEventAndLaterFramesAreAnswered() async throws {
        let camera = try await vlm().live()
        defer { camera.close() }
        // 400 bytes claimed to be a 160×120 RGBA frame: only noticed when the loop converts it.
        let badId = try camera.push(.frame(Data(count: 400), format: .rgba8888, width: Self.w, height: Self.h), timestampMs: 1)
        var goodId: Int64 = 0
        var sawError = false
        for try await e in camera.events {
            if case .frameError(let frame, let error) = e {
                XCTAssertEqual(frame.id, badId)
                guard case .invalidImage = error else { XCTFail("got \(error)"); break }
                sawError = true
                goodId = try camera.push(try Self.frame(0), timestampMs: 2)
            }
            if case .answer(let frame, _, _, _, _) = e {
                XCTAssertEqual(frame.id, goodId)
                break
            }
        }
        XCTAssertTrue(sawError)
        XCTAssertGreaterThan(goodId, badId)
    }

    func testCloseStopsTheLoopAtOnceAndTheStreamFinishes() async throws {
        let v = try await vlm()
        let before = try await settledLiveObjects()
        let camera = try v.live(LiveConfig(maxTokens: 100_000, changeThreshold: 0))
        let box = EventBox()
        let collecting = Self.collector(camera, box)
        XCTAssertThrowsError(try camera.push(try Self.frame(0), timestampMs: -1)) {
            guard case SmolVLMError.invalidArgument(let reason) = $0, reason.contains("timestamp") else { return XCTFail("\($0)") }
        }
        try camera.push(try Self.frame(0), timestampMs: 0)
        try await Self.waitFor("pieces") { box.all.count >= 3 }
        XCTAssertEqual(liveObjects().captioners, before.captioners + 1)
        let t = Date()
        camera.close()
        let closeS = Date().timeIntervalSince(t)
        let failure = await collecting.value
        XCTAssertLessThan(closeS, 1.0, "close() took \(closeS) s")
        XCTAssertLessThan(Date().timeIntervalSince(t), 1.0, "the stream finished at once")
        XCTAssertNil(failure, "after close() the stream finishes normally")
        XCTAssertTrue(camera.isClosed)
        XCTAssertEqual(liveObjects(), before, "the loop's thread and model share are gone")
        XCTAssertThrowsError(try camera.push(try Self.frame(1), timestampMs: 1)) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try camera.pause()) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") } }
        // The native call after close: Cancelled.
        XCTAssertThrowsError(try camera.raw.nextEvent(timeoutMs: 10)) { guard case SmolVlmError.Cancelled = $0 else { return XCTFail("\($0)") } }

        // Cancelling the iterating task closes the camera too, within a decode step.
        let other = try v.live(LiveConfig(maxTokens: 100_000, changeThreshold: 0))
        let box2 = EventBox()
        let task = Self.collector(other, box2)
        try other.push(try Self.frame(0), timestampMs: 0)
        try await Self.waitFor("pieces") { box2.all.count >= 3 }
        let t2 = Date()
        task.cancel()
        _ = await task.value
        try await Self.waitFor("the camera to close", seconds: 1) { other.isClosed && liveObjects() == before }
        XCTAssertLessThan(Date().timeIntervalSince(t2), 1.0)
    }

    func testACancelledLoadThrowsCancelled() async throws {
        _ = try await vlm()
        let before = try await settledLiveObjects()
        // The native call: a signal given before, or from the progress callback.
        let given = CancelSignal()
        given.cancel()
        XCTAssertThrowsError(try SmolVlm.load(modelPath: SmolVLMTests.modelDir, cancel: given)) { guard case SmolVlmError.Cancelled = $0 else { return XCTFail("\($0)") } }
        final class CancelAtVision: LoadProgressListener, @unchecked Sendable {
            let signal = CancelSignal()
            var stages: [NativeLoadStage] = []
            func onProgress(stage: NativeLoadStage, fraction: Float) {
                stages.append(stage)
                if stage == .vision { signal.cancel() }
            }
        }
        let listener = CancelAtVision()
        XCTAssertThrowsError(try SmolVlm.load(modelPath: SmolVLMTests.modelDir, listener: listener, cancel: listener.signal)) { guard case SmolVlmError.Cancelled = $0 else { return XCTFail("\($0)") } }
        XCTAssertFalse(listener.stages.contains(.ready), "stopped early: \(listener.stages)")
        // The wrapper: cancelling the loading task, right away or from the progress callback.
        let task = Task { try await SmolVLM.load(modelPath: SmolVLMTests.modelDir) }
        task.cancel()
        do { _ = try await task.value; XCTFail("loaded") } catch is CancellationError { }
        final class TaskBox: @unchecked Sendable { var task: Task<SmolVLM, Error>?; var stages: [LoadStage] = []; let lock = NSLock() }
        let tb = TaskBox()
        // The callback waits for the lock until the task is stored.
        let loading = tb.lock.withLock {
            let task = Task {
                try await SmolVLM.load(modelPath: SmolVLMTests.modelDir) { stage, _ in
                    tb.lock.withLock {
                        tb.stages.append(stage)
                        if stage == .vision { tb.task?.cancel() }
                    }
                }
            }
            tb.task = task
            return task
        }
        do { _ = try await loading.value; XCTFail("loaded") } catch is CancellationError { }
        XCTAssertFalse(tb.stages.contains(.ready), "stopped early: \(tb.stages)")
        XCTAssertEqual(liveObjects(), before, "nothing left behind")
    }

    func testReadmeLiveExampleRuns() async throws {
        let v = try await vlm()
        final class Box: @unchecked Sendable { var caption: String?; let lock = NSLock() }
        let box = Box()
        let (stop, done) = (StopFlag(), StopFlag())
        let task = Task {
            try await captionCamera(v, startCamera: { camera in LiveCameraTests.pusher(camera, periodMs: 33, stop: stop, done: done) }) { text in
                box.lock.lock(); if box.caption == nil { box.caption = text }; box.lock.unlock()
            }
        }
        try await Self.waitFor("a caption") { box.lock.lock(); defer { box.lock.unlock() }; return box.caption != nil }
        task.cancel()
        _ = await task.result
        stop.set()
        try await Self.waitFor("the pusher") { done.isSet }
        XCTAssertFalse(box.caption!.isEmpty)
    }
}

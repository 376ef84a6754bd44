import Foundation
import SampleState
import SmolVLM
import XCTest

/// ``LiveCaptioning`` on the tiny fixture model through the real library: whole captions with
/// their stats line, ask mode on a frozen frame with follow-ups, the streamed answer's redraws,
/// Stop, the background, and failures that become problems. A ``FakeCamera`` thread stands in
/// for AVFoundation's capture queue. The redraw clock stands still, so answers are redrawn by
/// pieces only: at the first, then every third.
// `@unchecked Sendable`: the test methods run on the main actor, and XCTest hands the test case
// to them; its stored properties are only touched there and in `tearDown`, after the test.
final class LiveCaptioningTests: XCTestCase, @unchecked Sendable {
    @MainActor static var shared: SmolVLM?

    @MainActor
    static func model() async throws -> SmolVLM {
        if let vlm = shared { return vlm }
        let vlm = try await SmolVLM.load(modelPath: tinyModel.path)
        shared = vlm
        return vlm
    }

    private var cameras: [FakeCamera] = []

    override func tearDown() {
        for camera in cameras { camera.stop() }
        cameras = []
        super.tearDown()
    }

    static let every = 3

    @MainActor
    private func captioning(maxTokens: Int32) -> LiveCaptioning {
        LiveCaptioning(
            config: LiveConfig(maxTokens: maxTokens, changeThreshold: 0),
            redrawEveryPieces: Self.every, clock: { 0 })
    }

    private func camera(_ captioning: LiveCaptioning) -> FakeCamera {
        let camera = FakeCamera(captioning)
        cameras.append(camera)
        return camera
    }

    /// Closes `c` and waits until its loops have stopped.
    @MainActor
    private func finish(_ c: LiveCaptioning) async {
        c.close()
        await c.settle()
        XCTAssertFalse(c.isOpen)
        XCTAssertFalse(c.state.running)
    }

    @MainActor
    func testCaptionsArriveWholeWithTheirStatsLine() async throws {
        let c = captioning(maxTokens: 6)
        let recorder = Recorder(c.states)
        c.open(try await Self.model())
        XCTAssertTrue(c.state.running)
        _ = camera(c)
        try await waitUntil("three captions") { recorder.values.compactMap(\.numbers).count >= 3 }
        let states = await recorder.stop()
        let s = c.state
        XCTAssertEqual(s.mode, .live)
        XCTAssertNil(s.ask)
        XCTAssertNil(s.problem)
        let n = try XCTUnwrap(s.numbers)
        XCTAssertTrue(n.firstTokenMs >= 0 && n.tokensPerSecond > 0 && n.memoryMB > 10, "\(n)")
        let line = try XCTUnwrap(s.statsLine)
        XCTAssertNotNil(
            line.range(of: #"^first token \d+ ms · \d+\.\d tok/s · \d+ MB$"#, options: .regularExpression), line)
        // Whole captions: the caption changes only together with the numbers of its answer,
        // never piece by piece.
        for (a, b) in zip(states, states.dropFirst()) where a.caption != b.caption {
            XCTAssertNotEqual(a.numbers, b.numbers, "a caption without its answer's numbers: \(b.caption)")
        }
        XCTAssertEqual(s.caption, s.caption.trimmingCharacters(in: .whitespacesAndNewlines))
        await finish(c)
    }

    @MainActor
    func testAskModeAnswersAPresetRedrawnEveryThreePieces() async throws {
        let c = captioning(maxTokens: 12)
        c.open(try await Self.model())
        _ = camera(c)
        try await waitUntil("a caption") { c.state.numbers != nil }
        let recorder = Recorder(c.states)
        c.ask(.describe)
        XCTAssertEqual(c.state.mode, .ask)
        XCTAssertEqual(c.state.ask?.question, "Describe the scene.")
        XCTAssertEqual(c.state.ask?.streaming, true)
        let answer = try await waitFor("the answer") { c.state.ask.flatMap { $0.streaming ? nil : $0 } }
        let states = await recorder.stop()
        XCTAssertTrue(answer.pieces > Self.every && !answer.stopped && !answer.answer.isEmpty, "\(answer)")
        let frame = try XCTUnwrap(answer.frameId)
        // Redrawn at the first piece, then every third (no piece is missed: the recorder sees
        // every state); whole at the end.
        let drawn = states.compactMap(\.ask).filter { $0.streaming && $0.pieces > 0 }
        XCTAssertEqual(drawn.map(\.pieces), Array(stride(from: 1, through: answer.pieces, by: Self.every)))
        XCTAssertTrue(drawn.allSatisfy { $0.frameId == frame })
        XCTAssertEqual(states.last?.numbers, c.state.numbers)
        XCTAssertNotEqual(states.first?.numbers, c.state.numbers, "the answer's numbers replace the caption's")
        await finish(c)
    }

    @MainActor
    func testFollowUpQuestionsStayOnTheFrozenFrameUntilBackToLive() async throws {
        let c = captioning(maxTokens: 8)
        c.open(try await Self.model())
        let cam = camera(c)
        try await waitUntil("a caption") { c.state.numbers != nil }
        c.enterAskMode()
        XCTAssertEqual(c.state.mode, .ask)
        XCTAssertNil(c.state.ask)
        c.ask(Preset.whatIsThis.question)
        let first = try await waitFor("the first answer") { c.state.ask.flatMap { $0.streaming ? nil : $0 } }
        let frame = try XCTUnwrap(first.frameId)

        // Frames keep coming, but the follow-up (free text, trimmed) is about the frozen frame.
        let before = cam.framesPushed
        try await waitUntil("more frames") { cam.framesPushed >= before + 3 }
        c.ask("  What colour is it?  ")
        let second = try await waitFor("the follow-up") {
            c.state.ask.flatMap { $0.question == "What colour is it?" && !$0.streaming ? $0 : nil }
        }
        XCTAssertEqual(second.frameId, frame, "the follow-up looked at the frozen frame")
        XCTAssertGreaterThan(try XCTUnwrap(second.frameId), 0)

        // A blank question is ignored.
        c.ask("   ")
        XCTAssertEqual(c.state.ask?.question, "What colour is it?")
        // Back to live: captions go on from newer frames.
        c.backToLive()
        XCTAssertEqual(c.state.mode, .live)
        XCTAssertNil(c.state.ask)
        let numbers = c.state.numbers
        try await waitUntil("a new caption") { c.state.numbers != numbers }
        await finish(c)
    }

    @MainActor
    func testStopCancelsTheRunningAnswerAndTheNextQuestionStillWorks() async throws {
        // Answers without end (the tiny model never says it is done): only Stop ends them. The
        // question is asked before any frame comes, so no endless caption runs first.
        let c = captioning(maxTokens: 100_000)
        c.open(try await Self.model())
        c.ask(.readText)
        _ = camera(c)
        try await waitUntil("pieces") { (c.state.ask?.pieces ?? 0) > Self.every }
        c.stop()
        let stopped = try XCTUnwrap(c.state.ask)
        XCTAssertTrue(stopped.stopped && !stopped.streaming && stopped.pieces > Self.every, "\(stopped)")
        XCTAssertEqual(c.state.mode, .ask)
        XCTAssertFalse(c.state.running)
        // The old loop is closed (within a decode step) and a new one opens, paused.
        try await waitUntil("the new loop", seconds: 5) { c.state.running }
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(c.state.ask, stopped, "nothing more came from the stopped answer")
        XCTAssertEqual(c.state.mode, .ask)

        c.ask(.whatIsThis)
        let next = try await waitFor("the next answer's pieces") {
            c.state.ask.flatMap { $0.question == Preset.whatIsThis.question && $0.pieces > 0 ? $0 : nil }
        }
        XCTAssertTrue(next.streaming && !next.stopped, "\(next)")
        c.stop()
        XCTAssertEqual(c.state.ask?.stopped, true)
        await finish(c)
    }

    @MainActor
    func testEnterBackgroundClosesTheLoopMidAnswerAndForegroundOpensItAgain() async throws {
        let c = captioning(maxTokens: 100_000)
        c.open(try await Self.model())
        c.ask(.person)
        let cam = camera(c)
        try await waitUntil("pieces") { (c.state.ask?.pieces ?? 0) > 0 }
        c.enterBackground()
        XCTAssertFalse(c.isInForeground)
        XCTAssertFalse(c.state.running)
        XCTAssertFalse(c.isOpen)
        let cut = try XCTUnwrap(c.state.ask)
        XCTAssertTrue(cut.stopped && !cut.streaming, "\(cut)")
        await c.settle()
        // No frame is even made while in the background.
        let made = cam.framesMade
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(cam.framesMade, made)
        XCTAssertEqual(c.state.ask, cut, "the closed loop sent nothing more")

        c.enterForeground()
        XCTAssertEqual(c.state.mode, .live, "the frozen frame went with the loop: live again")
        XCTAssertNil(c.state.ask)
        try await waitUntil("the loop to open again", seconds: 5) { c.state.running }
        try await waitUntil("frames again", seconds: 5) { cam.framesMade > made }
        await finish(c)
    }

    @MainActor
    func testNoFrameIsTakenInTheBackgroundAndCaptionsStartInTheForeground() async throws {
        let c = captioning(maxTokens: 4)
        c.enterBackground()
        c.open(try await Self.model())
        XCTAssertFalse(c.state.running, "a loop opens only in the foreground")
        let cam = camera(c)
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(cam.framesMade, 0, "no frame is even copied while the app is hidden")
        XCTAssertNil(c.state.numbers)
        c.enterForeground()
        try await waitUntil("a caption") { c.state.numbers != nil }
        XCTAssertGreaterThan(cam.framesMade, 0)
        await finish(c)
    }

    @MainActor
    func testBadFramesAndAClosedModelAreProblemsNotCrashes() async throws {
        let c = captioning(maxTokens: 4)
        c.open(try await Self.model())
        // Bytes that do not match the frame's size: the loop reports the frame and goes on.
        XCTAssertTrue(c.push(timestampMs: 1) { try .frame(Data(count: 16), format: .rgba8888, width: 160, height: 120) })
        let bad = try await waitFor("a bad frame") { c.state.problem }
        XCTAssertEqual(bad.kind, .badFrame)
        XCTAssertEqual(bad.message, "A camera frame could not be read.")
        // A converter that throws (say, a pixel format the library does not take).
        struct Unsupported: Error {}
        XCTAssertFalse(c.push(timestampMs: 2) { throw Unsupported() })
        let thrown = try await waitFor("the converter's error") { c.state.problem.flatMap { $0.kind == .unexpected ? $0 : nil } }
        XCTAssertTrue(thrown.detail.contains("Unsupported"), thrown.detail)
        // Good frames: captions come, and a caption clears the problem.
        _ = camera(c)
        try await waitUntil("a caption") { c.state.numbers != nil }
        try await waitUntil("the problem cleared") { c.state.problem == nil }
        await finish(c)
        XCTAssertFalse(c.push(timestampMs: 3) { try Frames.frame(0) }, "no loop, no frame")

        // A closed model: the loop cannot open; the state says why, and asking does nothing.
        let closed = try await SmolVLM.load(modelPath: tinyModel.path)
        closed.close()
        c.open(closed)
        XCTAssertFalse(c.state.running)
        XCTAssertEqual(c.state.problem?.kind, .unexpected)
        c.ask(.describe)
        XCTAssertNil(c.state.ask)
    }

    func testStatsLineProblemsAndMemory() throws {
        XCTAssertEqual(
            LiveNumbers(firstTokenMs: 812, tokensPerSecond: 14.24, memoryMB: 380).line,
            "first token 812 ms · 14.2 tok/s · 380 MB")
        // Every library error has its kind; the detail is the library's sentence.
        let cases: [(SmolVLMError, Problem.Kind)] = [
            (.modelMissing(reason: "r"), .modelMissing), (.modelInvalid(reason: "r"), .modelInvalid),
            (.invalidImage(reason: "r"), .badFrame), (.invalidArgument(reason: "r"), .unexpected),
            (.contextOverflow(tokens: 3000, limit: 2048, reason: "r"), .tooLong), (.notFound(reason: "r"), .notFound),
            (.unauthorized(reason: "r"), .needsToken), (.forbidden(reason: "r"), .noAccess),
            (.integrityFailed(reason: "r"), .corruptDownload), (.networkFailed(reason: "r"), .network),
            (.storageFailed(reason: "r"), .storage), (.internal(reason: "r", details: "d"), .unexpected),
        ]
        for (error, kind) in cases {
            XCTAssertEqual(Problem(error).kind, kind, "\(error)")
            XCTAssertTrue(Problem(error).detail.hasPrefix("r"), "\(error)")
        }
        XCTAssertEqual(Set(cases.map(\.1)).union([.noSpace, .noMemory, .badFrame]), Set(Problem.Kind.allCases))
        let memory = Problem(SmolVLMError.insufficientMemory(needed: 2_100_000_000, available: 900_000_000, reason: "r"))
        XCTAssertEqual(memory.kind, .noMemory)
        XCTAssertEqual(memory.availableBytes, 900_000_000)
        XCTAssertEqual(
            memory.message,
            "Not enough memory: the model needs 2.1 GB and 900 MB is available. Pick a smaller precision or model.")
        let space = Problem(SmolVLMError.insufficientSpace(needed: 2_520_000_000, available: 1_200_000_000, reason: "r"))
        XCTAssertEqual(space.kind, .noSpace)
        XCTAssertEqual(space.neededBytes, 2_520_000_000)
        XCTAssertEqual(
            space.message,
            "Not enough free storage: the model needs 2.5 GB and 1.2 GB is free. Free some space or pick a smaller model.")
        XCTAssertEqual(Problem.size(512), "512 bytes")
        XCTAssertEqual(Problem.size(487_000_000), "487 MB")
        // The memory footprint: this process's resident set, as /proc/self/status says it.
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let rssKb = Int64(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        let bytes = ProcessMemory.footprintBytes()
        XCTAssertGreaterThan(bytes, 10 << 20)
        XCTAssertLessThan(abs(bytes - rssKb * 1024), 64 << 20, "statm \(bytes) vs VmRSS \(rssKb) kB")
        XCTAssertEqual(ProcessMemory.footprintMB(), Int(ProcessMemory.footprintBytes() >> 20))
    }
}

import Foundation
import XCTest
@testable import SmolVLM
// The generated layer, for what only tests reach: object counts, a deliberate panic, raw calls.
import class SmolVLMFFI.CancelSignal
import func SmolVLMFFI.debugPanic
import func SmolVLMFFI.liveObjects
import struct SmolVLMFFI.LiveObjects
import protocol SmolVLMFFI.LoadProgressListener
import class SmolVLMFFI.SmolVlm
import enum SmolVLMFFI.SmolVlmError

/// All pieces of an answer, in order.
func collect(_ s: AsyncThrowingStream<String, Error>) async throws -> [String] {
    var out: [String] = []
    for try await p in s { out.append(p) }
    return out
}

/// The native objects alive once what earlier tests closed has finished closing (cameras and
/// answers end on background threads): the baseline of a leak check. Only models may remain.
func settledLiveObjects() async throws -> LiveObjects {
    let end = Date().addingTimeInterval(10)
    while true {
        let o = liveObjects()
        if o.sessions == 0 && o.streams == 0 && o.captioners == 0 { return o }
        if Date() > end { throw SmolVLMError.internal(reason: "earlier tests left \(o) open", details: "") }
        try await Task.sleep(nanoseconds: 5_000_000)
    }
}

/// Tests of the Swift API against the host build of the native library and the tiny fixture
/// model (same coverage as the Kotlin suite).
final class SmolVLMTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SMOLVLM_FIXTURES"] ?? "../tests/fixtures")
    static let modelDir = fixtures.appendingPathComponent("models/tiny-smolvlm2").path
    static func image(_ name: String) -> String { fixtures.appendingPathComponent("images/\(name)").path }
    nonisolated(unsafe) static var shared: SmolVLM?

    /// The model the tests share (also LiveCameraTests'). No image cache: each test sees its
    /// images encoded, whatever ran before (testImageCacheIsSharedByChats tests the cache).
    static func sharedModel() async throws -> SmolVLM {
        if let v = shared { return v }
        let v = try await SmolVLM.load(modelPath: modelDir, options: LoadOptions(imageCacheMb: 0))
        shared = v
        return v
    }

    func vlm() async throws -> SmolVLM {
        try await Self.sharedModel()
    }

    func greedy(_ n: Int32) -> GenerationConfig { GenerationConfig(maxTokens: n) }

    func answer(_ img: ImageInput, _ q: String = "What is in the picture?", n: Int32 = 8) async throws -> String {
        let chat = try await vlm().newChat(defaults: greedy(n))
        defer { chat.close() }
        return try await collect(chat.ask(q, images: [img])).joined()
    }

    func greedyText(_ name: String) throws -> String {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("cases/\(name)/case.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return json["greedy_text"] as! String
    }

    func testMemoryEstimateBeforeLoading() throws {
        let f32 = try SmolVLM.estimateMemory(modelPath: Self.modelDir, options: LoadOptions(contextLength: 1024))
        let q8 = try SmolVLM.estimateMemory(modelPath: Self.modelDir, options: LoadOptions(precision: .q8, contextLength: 1024))
        XCTAssertEqual(f32.weights + f32.kvCache + f32.activations + f32.runtime, f32.total)
        XCTAssertEqual(f32.contextLength, 1024)
        XCTAssertLessThan(q8.weights, f32.weights)
        XCTAssertEqual(q8.kvCache * 2, f32.kvCache)
        XCTAssertThrowsError(try SmolVLM.estimateMemory(modelPath: "/no/such/model")) {
            guard case SmolVLMError.modelMissing = $0 else { return XCTFail("\($0)") }
        }
    }

    func testSameGreedyTextAsRustAndTransformers() async throws {
        let chat = try await vlm().newChat()
        let pieces = try await collect(chat.ask("Can you describe this image?", images: [try .file(Self.image("wide.png"))], options: greedy(16)))
        XCTAssertEqual(pieces.joined(), try greedyText("split_wide"))
        XCTAssertEqual(chat.stats?.visionTiles, 13)
        XCTAssertEqual(chat.stats?.generatedTokens, 16)
    }

    func testStreamingDeliversPiecesInOrder() async throws {
        let chat = try await vlm().newChat(defaults: greedy(12))
        let pieces = try await collect(chat.ask("Tell me a story."))
        XCTAssertGreaterThan(pieces.count, 1)
        XCTAssertTrue(pieces.allSatisfy { !$0.isEmpty })
        let last = chat.transcript.last!
        XCTAssertEqual(last.role, .assistant)
        var joined = pieces.joined()
        while joined.first == " " { joined.removeFirst() }
        XCTAssertEqual(last.text, joined)
    }

    func testEncodedBytesAndFileGiveTheSameAnswer() async throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.image("small.png")))
        let a = try await answer(try .encoded(bytes))
        let b = try await answer(try .file(Self.image("small.png")))
        XCTAssertEqual(a, b)
    }

    /// Rotates packed RGB counter-clockwise by 90° (a sensor mounted sideways).
    func rotateCcw(_ rgb: [UInt8], _ w: Int, _ h: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rgb.count)
        for y in 0..<h { for x in 0..<w {
            let (nx, ny) = (y, w - 1 - x)
            for c in 0..<3 { out[(ny * h + nx) * 3 + c] = rgb[(y * w + x) * 3 + c] }
        } }
        return out
    }

    func testRawRgbaFrameWithStrideAndRotation() async throws {
        let png = try ImageInput.file(Self.image("small.png"))
        let (w, h) = (Int(png.width), Int(png.height))
        let sideways = rotateCcw([UInt8](png.rgbBytes), w, h)
        let (fw, fh) = (h, w)
        let stride = fw * 4 + 12
        var frame = [UInt8](repeating: 0, count: stride * fh)
        for y in 0..<fh { for x in 0..<fw {
            let s = (y * fw + x) * 3
            frame[y * stride + x * 4] = sideways[s]; frame[y * stride + x * 4 + 1] = sideways[s + 1]
            frame[y * stride + x * 4 + 2] = sideways[s + 2]; frame[y * stride + x * 4 + 3] = 255
        } }
        let img = try ImageInput.pixels(Data(frame), format: .rgba8888, width: fw, height: fh, rowStride: stride, rotationDegrees: 90)
        XCTAssertEqual(Int(img.width), w); XCTAssertEqual(Int(img.height), h)
        XCTAssertEqual(img.rgbBytes, png.rgbBytes)
        let a = try await answer(img)
        let b = try await answer(png)
        XCTAssertEqual(a, b)
        let bgra = try ImageInput.pixels(Data(frame), format: .bgra8888, width: fw, height: fh, rowStride: stride, rotationDegrees: 90)
        XCTAssertNotEqual(bgra.rgbBytes, png.rgbBytes)
    }

    func ycbcr(_ r: Double, _ g: Double, _ b: Double) -> (UInt8, UInt8, UInt8) {
        func q(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
        return (q(0.299 * r + 0.587 * g + 0.114 * b), q(128 - 0.168736 * r - 0.331264 * g + 0.5 * b), q(128 + 0.5 * r - 0.418688 * g - 0.081312 * b))
    }

    func testNv21FrameWithStrideAndRotation() async throws {
        let (w, h, stride) = (40, 24, 48)
        var upright = [UInt8](repeating: 0, count: w * h * 3) // h x w upright (x < h, y < w)
        for p in 0..<(w * h) {
            let x = (p % h) / 2, y = (p / h) / 2
            upright[p * 3] = UInt8((x * 37 + y * 11) % 256); upright[p * 3 + 1] = UInt8((255 - x * 23) & 255); upright[p * 3 + 2] = UInt8((y * 53 + 40) % 256)
        }
        let stored = rotateCcw(upright, h, w)
        var nv21 = [UInt8](repeating: 0, count: stride * h * 3 / 2)
        for y in 0..<h { for x in 0..<w {
            let s = (y * w + x) * 3
            let (l, cb, cr) = ycbcr(Double(stored[s]), Double(stored[s + 1]), Double(stored[s + 2]))
            nv21[y * stride + x] = l
            let c = stride * h + (y / 2) * stride + (x / 2) * 2
            nv21[c] = cr; nv21[c + 1] = cb
        } }
        let img = try ImageInput.pixels(Data(nv21), format: .nv21, width: w, height: h, rowStride: stride, rotationDegrees: 90)
        XCTAssertEqual(Int(img.width), h); XCTAssertEqual(Int(img.height), w)
        let got = [UInt8](img.rgbBytes)
        let worst = zip(got, upright).map { abs(Int($0) - Int($1)) }.max()!
        XCTAssertLessThanOrEqual(worst, 2)
        let swapped = try ImageInput.pixels(Data(nv21), format: .nv12, width: w, height: h, rowStride: stride, rotationDegrees: 90)
        XCTAssertNotEqual(swapped.rgbBytes, img.rgbBytes)
        let text = try await answer(img)
        XCTAssertFalse(text.isEmpty)
    }

    func testYuv420ThreePlanes() throws {
        let y = Data(repeating: 200, count: 8 * 4)
        let uv = Data(repeating: 128, count: 8 * 2)
        let img = try ImageInput.yuv420(y: y, u: uv.dropFirst(), v: uv, width: 6, height: 4, yRowStride: 8, uvRowStride: 8, uvPixelStride: 2, rotationDegrees: 270)
        XCTAssertEqual(img.width, 4); XCTAssertEqual(img.height, 6)
        XCTAssertTrue(img.rgbBytes.allSatisfy { $0 == 200 })
        let video = try ImageInput.yuv420(y: y, u: uv.dropFirst(), v: uv, width: 6, height: 4, yRowStride: 8, uvRowStride: 8, uvPixelStride: 2, range: .limited)
        XCTAssertTrue(video.rgbBytes.allSatisfy { $0 == 214 })
    }

    func testFollowUpDoesNotReencodeTheImage() async throws {
        let chat = try await vlm().newChat(systemPrompt: "You are a concise assistant.", defaults: greedy(4))
        _ = try await collect(chat.ask("What do you see?", images: [try .file(Self.image("tall.png"))]))
        let first = chat.stats!
        XCTAssertGreaterThan(first.visionTiles, 0); XCTAssertGreaterThan(first.visionEncodeMs, 0)
        _ = try await collect(chat.ask("And how many shapes are there?"))
        let second = chat.stats!
        XCTAssertEqual(second.visionTiles, 0)
        XCTAssertEqual(second.visionEncodeMs, 0)
        XCTAssertLessThan(second.prefillTokens * 4, second.promptTokens)
        XCTAssertEqual(chat.transcript.count, 5)
        chat.reset()
        XCTAssertTrue(chat.transcript.isEmpty)
    }

    func testCancelFromAnotherThread() async throws {
        let chat = try await vlm().newChat(defaults: greedy(100_000))
        var pieces = 0
        var caught: Error?
        do {
            for try await _ in chat.ask("Describe it at length.", images: [try .file(Self.image("wide.png"))]) {
                pieces += 1
                if pieces == 3 { Thread.detachNewThread { chat.cancel() } }
                XCTAssertLessThan(pieces, 1000, "cancel took effect")
            }
        } catch { caught = error }
        guard case .cancelled? = caught as? SmolVLMError else { return XCTFail("expected cancelled, got \(String(describing: caught))") }
        XCTAssertTrue(chat.transcript.isEmpty, "the cancelled question is undone")
    }

    func testTerminatingTheStreamCancelsGeneration() async throws {
        let chat = try await vlm().newChat(defaults: greedy(100_000))
        var n = 0
        for try await _ in chat.ask("Count to a million.") { n += 1; if n == 2 { break } }
        // The background thread releases the session within one decode step.
        let deadline = Date().addingTimeInterval(5)
        while chat.raw.isBusy() && Date() < deadline { try await Task.sleep(nanoseconds: 5_000_000) }
        XCTAssertFalse(chat.raw.isBusy())
        XCTAssertTrue(chat.transcript.isEmpty)
        let task = Task { try await collect(chat.ask("Again, please.")) }
        try await Task.sleep(nanoseconds: 50_000_000)
        task.cancel()
        _ = await task.result
        let deadline2 = Date().addingTimeInterval(5)
        while chat.raw.isBusy() && Date() < deadline2 { try await Task.sleep(nanoseconds: 5_000_000) }
        let again = try await collect(chat.ask("Hi", options: greedy(1)))
        XCTAssertEqual(again.count, 1)
    }

    /// Stress, bounded in time: storms of answers whose tasks are cancelled at random points,
    /// and chats closed while they generate. Only typed errors; afterwards no native chat or
    /// answer is left.
    func testTaskCancellationStormsLeakNothing() async throws {
        let vlm = try await vlm()
        let before = try await settledLiveObjects()
        var rng = SystemRandomNumberGenerator()
        let end = Date().addingTimeInterval(8)
        var answered = 0
        while Date() < end {
            let chat = try vlm.newChat(defaults: greedy(Int32.random(in: 1...24, using: &rng)))
            let tasks = (0..<3).map { i in
                Task { () -> Bool in
                    do {
                        _ = try await collect(chat.ask("Question \(i)?"))
                        return true
                    } catch is CancellationError {
                    } catch SmolVLMError.invalidArgument, SmolVLMError.cancelled {
                    } catch {
                        XCTFail("unexpected error: \(error)")
                    }
                    return false
                }
            }
            try await Task.sleep(nanoseconds: UInt64.random(in: 0...40_000_000, using: &rng))
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: tasks.randomElement(using: &rng)?.cancel()
            case 1: chat.close()
            default: break
            }
            for t in tasks where await t.value { answered += 1 }
            chat.close()
        }
        let deadline = Date().addingTimeInterval(5)
        while liveObjects() != before && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(liveObjects(), before, "no chat or answer left behind")
        XCTAssertGreaterThan(answered, 10)
    }

    func testEveryErrorVariant() async throws {
        do { _ = try await SmolVLM.load(modelPath: "/nonexistent/model"); XCTFail() } catch SmolVLMError.modelMissing { }
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("smolvlm-bad-\(getpid())")
        try? FileManager.default.removeItem(at: broken)
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: Self.modelDir) {
            try FileManager.default.copyItem(atPath: Self.modelDir + "/" + f, toPath: broken.appendingPathComponent(f).path)
        }
        try Data("{ not json".utf8).write(to: broken.appendingPathComponent("config.json"))
        do { _ = try await SmolVLM.load(modelPath: broken.path); XCTFail() } catch SmolVLMError.modelInvalid(let reason) {
            XCTAssertTrue(reason.contains("config.json"), reason)
        }
        try FileManager.default.removeItem(at: broken)
        XCTAssertThrowsError(try ImageInput.encoded(Data("not an image".utf8))) { guard case SmolVLMError.invalidImage = $0 else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try ImageInput.file(Self.image("missing.png"))) { guard case SmolVLMError.invalidImage = $0 else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try ImageInput.pixels(Data(count: 10), format: .rgba8888, width: 4, height: 4)) { guard case SmolVLMError.invalidImage = $0 else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try ImageInput.pixels(Data(count: 64), format: .rgba8888, width: 4, height: 4, rotationDegrees: 45)) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") } }
        // Negative or too large sizes are refused by name (the native API is signed Int32).
        XCTAssertThrowsError(try ImageInput.frame(Data(count: 64), format: .rgba8888, width: -4, height: 4)) {
            guard case SmolVLMError.invalidArgument(let reason) = $0, reason.contains("width") else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try ImageInput.pixels(Data(count: 64), format: .rgba8888, width: 4, height: Int(Int32.max) + 1)) {
            guard case SmolVLMError.invalidArgument(let reason) = $0, reason.contains("height") else { return XCTFail("\($0)") }
        }
        let v = try await vlm()
        let chat = try v.newChat()
        do { _ = try await collect(chat.ask("hi", options: GenerationConfig(maxTokens: 0))); XCTFail() } catch SmolVLMError.invalidArgument { }
        let limit = v.info.contextLength
        do { _ = try await collect(chat.ask(String(repeating: "word ", count: Int(limit) + 10))); XCTFail() } catch SmolVLMError.contextOverflow(let tokens, let l, _) {
            XCTAssertEqual(l, limit); XCTAssertGreaterThan(tokens, limit)
        }
        do {
            for try await _ in chat.ask("hi", options: greedy(1000)) { chat.cancel() }
            XCTFail()
        } catch SmolVLMError.cancelled { }
        let closed = try await SmolVLM.load(modelPath: Self.modelDir)
        closed.close()
        XCTAssertThrowsError(try closed.newChat()) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") } }
        // A Rust panic becomes a thrown error, not a crash.
        XCTAssertThrowsError(try debugPanic(message: "boom")) { XCTAssertTrue("\($0)".contains("boom"), "\($0)") }
    }

    func testCloseFreesNativeMemory() async throws {
        _ = try await vlm()
        let before = try await settledLiveObjects()
        let other = try await SmolVLM.load(modelPath: Self.modelDir)
        let a = try other.newChat(), b = try other.newChat()
        XCTAssertEqual(liveObjects().engines, before.engines + 1)
        XCTAssertEqual(liveObjects().sessions, before.sessions + 2)
        _ = try await collect(a.ask("Hello", options: greedy(2)))
        other.close()
        XCTAssertEqual(liveObjects().engines, before.engines + 1, "open chats keep the weights")
        a.close(); b.close()
        XCTAssertEqual(liveObjects(), before)
    }

    func testConcurrentSessionsShareOneEngine() async throws {
        let v = try await vlm()
        let want = try await answer(try .file(Self.image("small.png")), "Tell me a story.", n: 6)
        let got = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let chat = try v.newChat(defaults: GenerationConfig(maxTokens: 6))
                    var s = ""
                    for try await p in chat.ask("Tell me a story.", images: [try .file(Self.image("small.png"))]) { s += p }
                    return s
                }
            }
            var all: [String] = []
            for try await s in group { all.append(s) }
            return all
        }
        XCTAssertEqual(got, [want, want, want])
    }

    func testLoadOptionsAndProgress() async throws {
        final class Box: @unchecked Sendable { var stages: [(LoadStage, Float)] = []; let lock = NSLock() }
        let box = Box()
        let small = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(imageSplitting: false, longestEdge: 64, threads: 1)) { s, f in
            box.lock.lock(); box.stages.append((s, f)); box.lock.unlock()
        }
        let stages = box.stages
        XCTAssertEqual(stages.first?.0, .reading); XCTAssertEqual(stages.first?.1, 0.0)
        XCTAssertEqual(stages.last?.0, .ready); XCTAssertEqual(stages.last?.1, 1.0)
        XCTAssertTrue(zip(stages, stages.dropFirst()).allSatisfy { $0.1 < $1.1 }, "fractions grow: \(stages)")
        XCTAssertEqual(stages.map(\.0), [.reading, .vision, .vision, .vision, .text, .text, .text, .ready])
        XCTAssertFalse(small.info.imageSplitting)
        let chat = try small.newChat(defaults: greedy(2))
        _ = try await collect(chat.ask("What?", images: [try .file(Self.image("wide.png"))]))
        XCTAssertEqual(chat.stats?.visionTiles, 1)
    }

    func testImageCacheIsSharedByChats() async throws {
        func askWide(_ model: SmolVLM) async throws -> GenerationStats {
            let chat = try model.newChat(defaults: greedy(2))
            _ = try await collect(chat.ask("What?", images: [try .file(Self.image("wide.png"))]))
            return try XCTUnwrap(chat.stats)
        }
        let cached = try await SmolVLM.load(modelPath: Self.modelDir)
        let first = try await askWide(cached)
        XCTAssertEqual(first.visionTiles, 13); XCTAssertEqual(first.cachedImages, 0)
        let second = try await askWide(cached)
        XCTAssertEqual(second.visionTiles, 0, "a new chat reuses the encoding"); XCTAssertEqual(second.cachedImages, 1)
        for _ in 0..<2 {
            let off = try await askWide(try await vlm())
            XCTAssertEqual(off.visionTiles, 13, "imageCacheMb: 0: no cache"); XCTAssertEqual(off.cachedImages, 0)
        }
    }

    func testQuantizedPrecisionsLoadAndAnswer() async throws {
        let f16 = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(precision: .f16))
        XCTAssertEqual(f16.info.precision, .f16)
        let chat16 = try f16.newChat()
        let text = try await collect(chat16.ask("Can you describe this image?", images: [try .file(Self.image("wide.png"))], options: greedy(16))).joined()
        XCTAssertEqual(text, try greedyText("split_wide"), "f16 keeps the reference's greedy answer here")
        let q8 = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(precision: .q8))
        XCTAssertEqual(q8.info.precision, .q8)
        let chat8 = try q8.newChat(defaults: greedy(8))
        let pieces = try await collect(chat8.ask("What is in the picture?", images: [try .file(Self.image("wide.png"))]))
        XCTAssertFalse(pieces.isEmpty)
        XCTAssertEqual(chat8.stats?.generatedTokens, 8)
        XCTAssertEqual(chat8.stats?.visionTiles, 13)
        let v = try await vlm()
        XCTAssertEqual(v.info.precision, .f32, "the default")
    }

    func testContextLengthCapsTheChat() async throws {
        let small = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(contextLength: 64))
        XCTAssertEqual(small.info.contextLength, 64)
        let chat = try small.newChat()
        do { _ = try await collect(chat.ask(String(repeating: "word ", count: 80))); XCTFail() } catch SmolVLMError.contextOverflow(let tokens, let limit, _) {
            XCTAssertEqual(limit, 64); XCTAssertGreaterThan(tokens, 64)
        }
        _ = try await collect(chat.ask("Hi", options: greedy(1000)))
        let stats = try XCTUnwrap(chat.stats)
        XCTAssertEqual(stats.finishReason, .length)
        XCTAssertEqual(stats.promptTokens + stats.generatedTokens, 64, "the answer stops where the context is full")
        let max = try await vlm().info.contextLength
        for bad in [Int32(0), Int32(max + 1)] {
            do { _ = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(contextLength: bad)); XCTFail("\(bad)") } catch SmolVLMError.invalidArgument { }
        }
    }

    func testMetalIsATypedErrorWhereItIsMissing() async throws {
        let v = try await vlm()
        XCTAssertEqual(v.info.backend, .cpu, "the default")
        #if !canImport(Metal)
        // Linux: the library has no Metal backend.
        do { _ = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(backend: .metal)); XCTFail() } catch SmolVLMError.invalidArgument(let reason) {
            XCTAssertTrue(reason.contains("Metal"), reason)
        }
        let auto = try await SmolVLM.load(modelPath: Self.modelDir, options: LoadOptions(backend: .auto))
        XCTAssertEqual(auto.info.backend, .cpu)
        #endif
    }

    func testGgufPairTakesImages() async throws {
        let gguf = Self.fixtures.appendingPathComponent("gguf")
        let pair = try await SmolVLM.load(
            modelPath: gguf.appendingPathComponent("tiny-smolvlm2-f16.gguf").path,
            options: LoadOptions(mmproj: gguf.appendingPathComponent("mmproj-tiny-smolvlm2-f16.gguf").path))
        XCTAssertTrue(pair.info.hasVision)
        let chat = try pair.newChat(defaults: greedy(4))
        let pieces = try await collect(chat.ask("What is in the picture?", images: [try .file(Self.image("wide.png"))]))
        XCTAssertFalse(pieces.isEmpty)
        XCTAssertGreaterThan(chat.stats?.visionTiles ?? 0, 0)
    }

    func testReadmeExampleRuns() async throws {
        let text = try await describe(modelDir: Self.modelDir, photo: Self.image("wide.png"))
        XCTAssertFalse(text.isEmpty)
    }
}

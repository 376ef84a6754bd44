import Foundation
import XCTest
@testable import SmolVLM

/// Videos through the Swift API: the reference conversations of tests/fixtures/cases/video_*
/// give the same greedy text as Rust and transformers (and the Kotlin suite).
final class VideoTests: XCTestCase {
    static let fixtures = SmolVLMTests.fixtures
    /// A model without an image cache (each question encodes its frames, so the tile counts are
    /// the prompt's), shared by the tests.
    nonisolated(unsafe) static var shared: SmolVLM?

    func vlm() async throws -> SmolVLM {
        if let v = Self.shared { return v }
        let v = try await SmolVLM.load(modelPath: SmolVLMTests.modelDir, options: LoadOptions(imageCacheMb: 0))
        Self.shared = v
        return v
    }

    /// The user turn of a case's messages.json: its video (frame paths resolved), images, text.
    struct Turn {
        var frames: [String], timestamps: [Double], duration: Double, images: [String], text: String
    }

    func turn(_ name: String) throws -> Turn {
        let dir = Self.fixtures.appendingPathComponent("cases/\(name)")
        let data = try Data(contentsOf: dir.appendingPathComponent("messages.json"))
        let messages = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        XCTAssertEqual(messages.count, 1)
        let content = messages[0]["content"] as! [[String: Any]]
        func path(_ p: String) -> String { dir.appendingPathComponent(p).standardizedFileURL.path }
        let video = content.first { $0["type"] as? String == "video" }!
        return Turn(
            frames: (video["frames"] as! [String]).map(path),
            timestamps: (video["timestamps"] as! [NSNumber]).map(\.doubleValue),
            duration: (video["duration"] as! NSNumber).doubleValue,
            images: content.filter { $0["type"] as? String == "image" }.map { path($0["path"] as! String) },
            text: content.first { $0["type"] as? String == "text" }!["text"] as! String)
    }

    func caseJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("cases/\(name)/case.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func greedyText(_ name: String) throws -> String { try caseJSON(name)["greedy_text"] as! String }

    /// Asks `text` about `video` and `images` in a new chat (greedy, 16 tokens): the text and the
    /// tiles encoded.
    func answer(_ video: VideoInput, images: [String] = [], _ text: String, model: SmolVLM? = nil) async throws -> (String, Int64) {
        let model = if let model { model } else { try await vlm() }
        let chat = try model.newChat()
        defer { chat.close() }
        let options = GenerationConfig(maxTokens: 16, temperature: 0)
        let pieces = try await collect(chat.ask(text, images: try images.map { try .file($0) }, options: options, videos: [video]))
        XCTAssertEqual(chat.stats?.generatedTokens, 16)
        return (pieces.joined(), chat.stats?.visionTiles ?? -1)
    }

    func testVideoAndImageGiveTheSameGreedyTextAsRustAndTransformers() async throws {
        let t = try turn("video_and_image")
        XCTAssertEqual(t.frames.count, 6)
        XCTAssertEqual(t.images.map { URL(fileURLWithPath: $0).lastPathComponent }, ["small.png"])
        let video = try VideoInput(frames: try t.frames.map { try .file($0) }, timestamps: t.timestamps, duration: t.duration)
        XCTAssertEqual(video.frameCount, 6)
        XCTAssertEqual(video.duration, 3)
        let (text, tiles) = try await answer(video, images: t.images, t.text)
        XCTAssertEqual(text, try greedyText("video_and_image"))
        XCTAssertEqual(tiles, 3 + 13, "3 chosen frames, then small.png's 12 tiles and its overview")
    }

    func testReadmeVideoExampleRuns() async throws {
        let t = try turn("video_and_image")
        let text = try await describeClip(try await vlm(), framePaths: t.frames, fps: 2)
        XCTAssertFalse(text.isEmpty)
        // The README's timestamps and duration (index / fps, count / fps) are the fixture's.
        let clip = try VideoInput(frames: try t.frames.map { try .file($0) }, timestamps: t.timestamps, duration: t.duration)
        let chat = try await vlm().newChat()
        defer { chat.close() }
        let direct = try await collect(chat.ask("What happens in this video?", videos: [clip])).joined()
        XCTAssertEqual(direct, text)
    }

    func testFrameIndicesOfALongVideo() async throws {
        let vlm = try await vlm()
        XCTAssertEqual(vlm.info.videoFrameLimit, 64)
        let indices = try vlm.videoFrameIndices(frameCount: 130, duration: 65)
        XCTAssertEqual(indices.count, 64)
        XCTAssertEqual(indices.first, 0)
        XCTAssertEqual(indices.last, 129)
        let videos = try caseJSON("video_max_frames")["videos"] as! [[String: Any]]
        XCTAssertEqual(indices, (videos[0]["sampled_indices"] as! [NSNumber]).map(\.intValue))
        for (count, duration) in [(0, 1.0), (3, 0.0), (-1, 1.0)] {
            XCTAssertThrowsError(try vlm.videoFrameIndices(frameCount: count, duration: duration)) {
                guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") }
            }
        }
    }

    func testChosenFramesGiveTheSameTextAsTheWholeVideo() async throws {
        let t = try turn("video_max_frames")
        XCTAssertEqual(t.frames.count, 130)
        let frames = try t.frames.map { try ImageInput.file($0) }
        let want = try greedyText("video_max_frames")
        let (whole, wholeTiles) = try await answer(try VideoInput(frames: frames, timestamps: t.timestamps, duration: t.duration), t.text)
        XCTAssertEqual(whole, want)
        XCTAssertEqual(wholeTiles, 64)
        // What a decoder does: decode only the frames the question reads.
        let indices = try await vlm().videoFrameIndices(frameCount: frames.count, duration: t.duration)
        let chosen = try VideoInput.chosen(frames: indices.map { frames[$0] }, timestamps: indices.map { t.timestamps[$0] }, duration: t.duration)
        XCTAssertEqual(chosen.frameCount, 64)
        let (text, tiles) = try await answer(chosen, t.text)
        XCTAssertEqual(text, want)
        XCTAssertEqual(tiles, 64)
        // More chosen frames than the model reads is refused.
        let tooMany = try VideoInput.chosen(frames: frames, timestamps: t.timestamps, duration: t.duration)
        do { _ = try await answer(tooMany, t.text); XCTFail() } catch SmolVLMError.invalidArgument { }
    }

    func testBadVideosAreInvalidArguments() throws {
        let frame = try ImageInput.file(SmolVLMTests.image("small.png"))
        let bad: [(String, () throws -> VideoInput)] = [
            ("no frames", { try VideoInput(frames: [], timestamps: [], duration: 1) }),
            ("fewer timestamps", { try VideoInput(frames: [frame, frame], timestamps: [0], duration: 2) }),
            ("backwards", { try VideoInput(frames: [frame, frame], timestamps: [1, 0], duration: 2) }),
            ("NaN duration", { try VideoInput.chosen(frames: [frame], timestamps: [0], duration: .nan) }),
            ("negative time", { try VideoInput.chosen(frames: [frame], timestamps: [-1], duration: 2) }),
        ]
        for (what, make) in bad {
            XCTAssertThrowsError(try make(), what) { guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\(what): \($0)") } }
        }
    }

    func testAnImageOnlyModelRefusesVideos() async throws {
        let idefics = try await SmolVLM.load(modelPath: Self.fixtures.appendingPathComponent("models/tiny-idefics3").path)
        defer { idefics.close() }
        XCTAssertEqual(idefics.info.videoFrameLimit, 0)
        XCTAssertThrowsError(try idefics.videoFrameIndices(frameCount: 6, duration: 3)) {
            guard case SmolVLMError.invalidArgument = $0 else { return XCTFail("\($0)") }
        }
        let frame = try ImageInput.file(SmolVLMTests.image("small.png"))
        let video = try VideoInput(frames: [frame, frame], timestamps: [0, 0.5], duration: 1)
        let chat = try idefics.newChat()
        defer { chat.close() }
        do { _ = try await collect(chat.ask("What happens?", videos: [video])); XCTFail() } catch SmolVLMError.invalidArgument { }
        XCTAssertTrue(chat.transcript.isEmpty, "the refused question is not in the transcript")
        // The chat still answers questions without videos.
        let pieces = try await collect(chat.ask("Hi", options: GenerationConfig(maxTokens: 2)))
        XCTAssertFalse(pieces.isEmpty)
    }

    func testMaxVideoFramesCapsTheFramesRead() async throws {
        let capped = try await SmolVLM.load(modelPath: SmolVLMTests.modelDir, options: LoadOptions(maxVideoFrames: 8))
        defer { capped.close() }
        XCTAssertEqual(capped.info.videoFrameLimit, 8)
        let indices = try capped.videoFrameIndices(frameCount: 130, duration: 65)
        XCTAssertEqual(indices.count, 8)
        // 65 s is longer than 8 frames at 1 fps + 2 s: 1 s is trimmed at both ends (frames 2 to 130 - 2).
        XCTAssertEqual(indices.first, 2)
        XCTAssertEqual(indices.last, 128)
        do { _ = try await SmolVLM.load(modelPath: SmolVLMTests.modelDir, options: LoadOptions(maxVideoFrames: -1)); XCTFail() } catch SmolVLMError.invalidArgument { }
    }
}

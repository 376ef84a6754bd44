import Foundation
internal import SmolVLMFFI

/// A video ready to be asked about (``Chat/ask(_:images:options:videos:)``): its frames (any
/// ``ImageInput``), each frame's time in seconds from the start, and the whole video's duration
/// in seconds. Immutable and thread-safe; one video can be used in several questions and chats.
///
/// The library decodes no video files: the app decodes the frames, or, on Apple platforms,
/// ``SmolVLM/readVideo(_:)`` reads an `AVAsset` with `AVAssetImageGenerator`. Two ways to give a
/// video:
/// - ``init(frames:timestamps:duration:)``: every frame of a clip (or frames taken at a steady
///   rate). When the question is answered, the frames the model reads are chosen from them
///   exactly as transformers' SmolVLM2 video processor chooses them from a decoded video.
/// - ``chosen(frames:timestamps:duration:)``: only the frames that
///   ``SmolVLM/videoFrameIndices(frameCount:duration:)`` names, decoded by the app; all of them
///   are read. For a long video this decodes at most `info.videoFrameLimit` frames instead of all
///   of them, and gives the same answer.
///
/// Each frame the model reads costs the vision tokens of one image tile.
public struct VideoInput: Sendable {
    let raw: SmolVLMFFI.VideoInput

    init(raw: SmolVLMFFI.VideoInput) { self.raw = raw }

    /// A video from all of its frames (or frames at a steady rate): the frames the model reads
    /// are chosen from them when it is asked about.
    ///
    /// ```swift
    /// let frames = try (0..<6).map { try ImageInput.file("clip/f00\($0).png") }
    /// let clip = try VideoInput(frames: frames, timestamps: frames.indices.map { Double($0) / 2 }, duration: 3)
    /// ```
    ///
    /// - Parameters:
    ///   - frames: the frames, in order.
    ///   - timestamps: each frame's time in seconds from the start (frame index / frames per
    ///     second), as many as `frames`, never decreasing.
    ///   - duration: the video's length in seconds.
    /// - Throws: `.invalidArgument` when there are no frames, the counts differ, the timestamps
    ///   go backwards, or a time or the duration is negative or not finite.
    public init(frames: [ImageInput], timestamps: [Double], duration: Double) throws {
        raw = try native { try SmolVLMFFI.VideoInput(frames: frames.map(\.raw), timestamps: timestamps, duration: duration) }
    }

    /// A video from the frames that ``SmolVLM/videoFrameIndices(frameCount:duration:)`` chose
    /// out of a longer one (decode only those): every frame given is read.
    ///
    /// ```swift
    /// let indices = try vlm.videoFrameIndices(frameCount: count, duration: seconds)
    /// let video = try VideoInput.chosen(frames: try indices.map(decode),
    ///                                   timestamps: indices.map { Double($0) / fps }, duration: seconds)
    /// ```
    ///
    /// - Parameters:
    ///   - frames: the chosen frames, in the order of the indices.
    ///   - timestamps: each chosen frame's time in seconds (its index / frames per second).
    ///   - duration: the whole video's length in seconds (not the span of the frames).
    /// - Throws: as ``init(frames:timestamps:duration:)``; asking about more frames than
    ///   `info.videoFrameLimit` throws `.invalidArgument` from the answer's stream.
    public static func chosen(frames: [ImageInput], timestamps: [Double], duration: Double) throws -> VideoInput {
        VideoInput(raw: try native { try SmolVLMFFI.VideoInput.chosen(frames: frames.map(\.raw), timestamps: timestamps, duration: duration) })
    }

    /// The number of frames given.
    public var frameCount: Int { Int(raw.frameCount()) }

    /// The video's length in seconds.
    public var duration: Double { raw.duration() }
}

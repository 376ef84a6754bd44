// Videos from AVFoundation assets. This exists only where AVFoundation does (Apple platforms);
// the rest of the package builds on Linux without it. CI type-checks this file on Linux against
// stand-in modules of exactly the API it uses (tools/apple-stubs).

#if canImport(AVFoundation)
import AVFoundation
import CoreGraphics
import CoreMedia
import Foundation

extension SmolVLM {
    /// Reads a video (a file, a photo-library item, any `AVAsset` with a video track) for
    /// ``Chat/ask(_:images:options:videos:)``, decoding only the frames the model reads.
    ///
    /// ```swift
    /// let video = try await vlm.readVideo(url: clipURL)
    /// for try await piece in chat.ask("What happens in this video?", videos: [video]) { print(piece) }
    /// ```
    ///
    /// The asset's duration and its first video track's `nominalFrameRate` give the frame count
    /// (duration × frame rate, rounded); ``videoFrameIndices(frameCount:duration:)`` names the
    /// frames a question reads (at most `info.videoFrameLimit`, chosen as transformers' SmolVLM2
    /// video processor does). `AVAssetImageGenerator`, with zero time tolerance and the track's
    /// preferred transform applied (frames come upright), extracts each at the middle of its
    /// display time, and ``ImageInput/cgImage(_:orientation:)`` converts it. The frames'
    /// timestamps are their index divided by the frame rate, and the result is a
    /// ``VideoInput/chosen(frames:timestamps:duration:)`` video. Cancelling the calling task
    /// stops it before the next frame.
    ///
    /// - Throws: `CancellationError` when the task is cancelled; ``SmolVLMError``
    ///   `.invalidImage` if the asset has no video track, no positive duration or frame rate, or
    ///   a frame cannot be extracted (AVFoundation's error in the reason); `.invalidArgument` if
    ///   the model takes no videos.
    public func readVideo(_ asset: AVAsset) async throws -> VideoInput {
        do {
            let duration = try await asset.load(.duration).seconds
            guard duration.isFinite, duration > 0 else {
                throw SmolVLMError.invalidImage(reason: "the video has no positive duration (\(duration) s)")
            }
            guard let track = try await asset.loadTracks(withMediaType: .video).first else {
                throw SmolVLMError.invalidImage(reason: "the asset has no video track")
            }
            let fps = Double(try await track.load(.nominalFrameRate))
            guard fps.isFinite, fps > 0 else {
                throw SmolVLMError.invalidImage(reason: "the video track has no frame rate (\(fps))")
            }
            let count = max(1, Int((duration * fps).rounded()))
            let indices = try videoFrameIndices(frameCount: count, duration: duration)
            let generator = AVAssetImageGenerator(asset: asset)
            generator.appliesPreferredTrackTransform = true
            generator.requestedTimeToleranceBefore = .zero
            generator.requestedTimeToleranceAfter = .zero
            var frames: [ImageInput] = []
            frames.reserveCapacity(indices.count)
            for index in indices {
                try Task.checkCancellation()
                // Frame i is shown from i / fps to (i + 1) / fps: ask for the middle, so that
                // rounding to the time scale cannot land on the frame before.
                let middle = (Double(index) + 0.5) / fps
                let time = CMTime(seconds: middle < duration ? middle : Double(index) / fps, preferredTimescale: 600_000)
                let image: CGImage
                if #available(iOS 16, macOS 13, *) {
                    image = try await generator.image(at: time).image
                } else {
                    image = try generator.copyCGImage(at: time, actualTime: nil)
                }
                frames.append(try ImageInput.cgImage(image))
            }
            return try VideoInput.chosen(frames: frames, timestamps: indices.map { Double($0) / fps }, duration: duration)
        } catch let error as SmolVLMError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw SmolVLMError.invalidImage(reason: "cannot read the video: \(error.localizedDescription)")
        }
    }

    /// Reads the video file at `url` (``readVideo(_:)`` on an `AVURLAsset`).
    public func readVideo(url: URL) async throws -> VideoInput {
        try await readVideo(AVURLAsset(url: url))
    }
}
#endif

/// How stored pixels are turned to show the scene upright, as EXIF, `CGImagePropertyOrientation`
/// and `UIImage.Orientation` say it (same case names; raw values are EXIF's): mirrored left to
/// right first if ``isMirrored``, then rotated clockwise by ``clockwiseDegrees``.
public enum ImageOrientation: UInt32, Sendable, CaseIterable {
    /// Upright already (EXIF 1).
    case up = 1
    /// Mirrored left to right (EXIF 2).
    case upMirrored = 2
    /// Upside down: rotate 180° (EXIF 3).
    case down = 3
    /// Mirrored, then rotated 180°: flipped top to bottom (EXIF 4).
    case downMirrored = 4
    /// Mirrored, then rotated 270° clockwise: transposed (EXIF 5).
    case leftMirrored = 5
    /// Rotate 90° clockwise (EXIF 6): a phone photo taken in portrait.
    case right = 6
    /// Mirrored, then rotated 90° clockwise (EXIF 7).
    case rightMirrored = 7
    /// Rotate 270° clockwise, 90° counter-clockwise (EXIF 8).
    case left = 8

    /// Whether the pixels are a mirror image of the scene.
    public var isMirrored: Bool {
        switch self {
        case .upMirrored, .downMirrored, .leftMirrored, .rightMirrored: true
        case .up, .down, .left, .right: false
        }
    }

    /// The clockwise rotation, in degrees, after the mirror.
    public var clockwiseDegrees: Int {
        switch self {
        case .up, .upMirrored: 0
        case .right, .rightMirrored: 90
        case .down, .downMirrored: 180
        case .left, .leftMirrored: 270
        }
    }

    /// The orientation that a mirror (if `mirrored`) and then a clockwise rotation by
    /// `clockwiseDegrees` (a multiple of 90, negative or above 360 reduced) make.
    public init(clockwiseDegrees: Int, mirrored: Bool) {
        switch (((clockwiseDegrees % 360) + 360) % 360 / 90, mirrored) {
        case (0, false): self = .up
        case (1, false): self = .right
        case (2, false): self = .down
        case (3, false): self = .left
        case (0, true): self = .upMirrored
        case (1, true): self = .rightMirrored
        case (2, true): self = .downMirrored
        default: self = .leftMirrored
        }
    }

    /// The orientation of camera buffers from `AVCaptureVideoDataOutput`, so that the model sees
    /// the scene as it is, with text reading the right way round (also from the front camera).
    ///
    /// - Parameters:
    ///   - rotationAngle: the clockwise angle in degrees that turns the camera's unmirrored
    ///     buffers upright: on iOS 17+
    ///     `AVCaptureDevice.RotationCoordinator.videoRotationAngleForHorizonLevelCapture`, before
    ///     that the angle for the device orientation (the sample app's `CameraController` shows
    ///     both); rounded to a multiple of 90. Leave the connection's own rotation at 0: the
    ///     rotation is applied when a frame is taken, not to every frame.
    ///   - mirrored: whether the buffers are mirrored about their vertical axis: the
    ///     connection's `isVideoMirrored`. A data output's front-camera buffers are not mirrored
    ///     unless the app mirrors them (only the preview layer mirrors by itself); with `true`
    ///     the orientation undoes the mirror.
    public static func camera(rotationAngle: Double, mirrored: Bool) -> ImageOrientation {
        ImageOrientation(clockwiseDegrees: Int((rotationAngle / 90).rounded()) * 90, mirrored: mirrored)
    }
}

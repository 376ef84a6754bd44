import AVFoundation
import SampleState
import SmolVLM
import UIKit
import os

/// The camera: an `AVCaptureSession` configured and run on its own serial queue, whose video
/// frames go to ``LiveCaptioning/push(timestampMs:_:)`` on a second queue.
///
/// - Frames are bi-planar 4:2:0 full range ("420f", the camera's own format: no conversion by
///   AVFoundation), 1280×720 (the model sees at most 2×2 tiles of 512 px with the `.fast`
///   preset: more pixels would only cost copies), with `alwaysDiscardsLateVideoFrames`.
/// - Buffers stay in the sensor's orientation; instead of letting AVFoundation rotate every
///   buffer (costly), each frame carries its orientation: on iOS 17+ from
///   `AVCaptureDevice.RotationCoordinator` (`videoRotationAngleForHorizonLevelCapture`, which
///   follows the device even when the interface does not rotate), before that from
///   `UIDevice.orientation`. The library rotates only the frames the live loop takes.
/// - `ImageInput.frame(pixelBuffer:orientation:)` copies the planes only when the captioning
///   takes the frame (a loop is open and the app is in the foreground), so the buffer goes back
///   to AVFoundation's pool at once; the loop drops frames it is too busy for, unconverted.
///
/// `@unchecked Sendable`: the session and its inputs are touched only on `sessionQueue`, the
/// rotation angle is behind a lock, and the preview and rotation coordinator on the main actor.
final class CameraController: NSObject, @unchecked Sendable {
    /// The session, for the preview layer.
    let session = AVCaptureSession()

    private let captioning: LiveCaptioning
    private let sessionQueue = DispatchQueue(label: "dev.smolvlm.sample.camera.session")
    private let frameQueue = DispatchQueue(label: "dev.smolvlm.sample.camera.frames", qos: .userInitiated)
    private let output = AVCaptureVideoDataOutput()
    /// The clockwise angle that turns a buffer upright; written on the main thread, read on
    /// `frameQueue` for every frame.
    private let rotationAngle = OSAllocatedUnfairLock(initialState: 90.0)

    // sessionQueue only.
    private var input: AVCaptureDeviceInput?
    private var configured = false
    private var position: AVCaptureDevice.Position = .back

    // Main actor only.
    @MainActor private weak var previewLayer: AVCaptureVideoPreviewLayer?
    @MainActor private var rotationCoordinator: AnyObject?
    @MainActor private var rotationObservations: [NSKeyValueObservation] = []
    @MainActor private var orientationObserver: NSObjectProtocol?
    @MainActor private var sessionObservers: [NSObjectProtocol] = []
    /// Tells the screen why the camera is not running (`nil`: it is).
    @MainActor var onNote: ((String?) -> Void)?

    init(captioning: LiveCaptioning) {
        self.captioning = captioning
        super.init()
    }

    // MARK: - Permission

    /// Whether the app may use the camera; `nil` until the user has been asked.
    static var authorization: Bool? {
        switch AVCaptureDevice.authorizationStatus(for: .video) {
        case .authorized: return true
        case .notDetermined: return nil
        default: return false  // denied, or restricted by parental controls / MDM
        }
    }

    /// Asks for the camera (the system shows `NSCameraUsageDescription` once).
    static func requestAccess() async -> Bool {
        await AVCaptureDevice.requestAccess(for: .video)
    }

    // MARK: - Running

    /// Configures the session on first use and starts it (off the main thread: it blocks).
    @MainActor
    func start() {
        observeSession()
        sessionQueue.async { [self] in
            if !configured {
                configure(position: position)
                configured = true
                let device = input?.device.uniqueID
                Task { @MainActor in self.deviceChanged(device) }
            }
            if !session.isRunning { session.startRunning() }
        }
    }

    /// Stops the session; frames stop coming.
    @MainActor
    func stop() {
        sessionQueue.async { [self] in
            if session.isRunning { session.stopRunning() }
        }
    }

    /// Switches between the back and the front camera.
    @MainActor
    func switchCamera() {
        sessionQueue.async { [self] in
            position = position == .back ? .front : .back
            configure(position: position)
            let device = input?.device.uniqueID
            Task { @MainActor in self.deviceChanged(device) }
        }
    }

    /// The preview shows the session through `layer`; its rotation follows the coordinator.
    @MainActor
    func attach(_ layer: AVCaptureVideoPreviewLayer) {
        previewLayer = layer
        layer.session = session
        layer.videoGravity = .resizeAspectFill
        sessionQueue.async { [self] in
            let device = input?.device.uniqueID
            Task { @MainActor in self.deviceChanged(device) }
        }
    }

    /// Freezes the preview on its last image (ask mode: the answer is about a still frame).
    @MainActor
    func setPreviewFrozen(_ frozen: Bool) {
        previewLayer?.connection?.isEnabled = !frozen
    }

    // MARK: - Configuration (sessionQueue)

    private func configure(position: AVCaptureDevice.Position) {
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        if session.canSetSessionPreset(.hd1280x720) { session.sessionPreset = .hd1280x720 }

        if let old = input {
            session.removeInput(old)
            input = nil
        }
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: position),
            let newInput = try? AVCaptureDeviceInput(device: device), session.canAddInput(newInput)
        else {
            note("This camera is not available.")
            return
        }
        session.addInput(newInput)
        input = newInput

        if !session.outputs.contains(output) {
            output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_420YpCbCr8BiPlanarFullRange]
            output.alwaysDiscardsLateVideoFrames = true
            output.setSampleBufferDelegate(self, queue: frameQueue)
            guard session.canAddOutput(output) else {
                note("The camera's frames cannot be read.")
                return
            }
            session.addOutput(output)
        }
        // Stabilization would delay frames and crop them: the model wants them now and whole.
        if let connection = output.connection(with: .video), connection.isVideoStabilizationSupported {
            connection.preferredVideoStabilizationMode = .off
        }
        note(nil)
    }

    private func note(_ text: String?) {
        Task { @MainActor in self.onNote?(text) }
    }

    // MARK: - Rotation (main actor)

    /// Follows the rotation of the camera now in use (`uniqueID`; the device object itself is
    /// not handed across threads).
    @MainActor
    private func deviceChanged(_ uniqueID: String?) {
        rotationObservations = []
        rotationCoordinator = nil
        if let observer = orientationObserver {
            NotificationCenter.default.removeObserver(observer)
            orientationObserver = nil
        }
        guard let uniqueID, let device = AVCaptureDevice(uniqueID: uniqueID) else { return }
        if #available(iOS 17.0, *) {
            let coordinator = AVCaptureDevice.RotationCoordinator(device: device, previewLayer: previewLayer)
            rotationCoordinator = coordinator
            // The KVO handlers may run on any thread: they only store the angle, or hop to the
            // main actor for the layer.
            rotationObservations = [
                coordinator.observe(\.videoRotationAngleForHorizonLevelCapture, options: [.initial, .new]) {
                    @Sendable [weak self] _, change in
                    guard let self, let angle = change.newValue else { return }
                    self.rotationAngle.withLock { $0 = Double(angle) }
                },
                coordinator.observe(\.videoRotationAngleForHorizonLevelPreview, options: [.initial, .new]) {
                    @Sendable [weak self] _, change in
                    guard let angle = change.newValue else { return }
                    Task { @MainActor [weak self] in self?.rotatePreview(to: angle) }
                },
            ]
        } else {
            // iOS 16: the device's orientation (face up or down, and unknown, keep the last one).
            let front = device.position == .front
            UIDevice.current.beginGeneratingDeviceOrientationNotifications()
            let update: @MainActor @Sendable () -> Void = { [weak self] in
                guard let self, let angle = Self.angle(for: UIDevice.current.orientation, front: front) else { return }
                self.rotationAngle.withLock { $0 = angle }
                self.previewLayer?.connection?.videoOrientation = self.interfaceVideoOrientation
            }
            update()
            orientationObserver = NotificationCenter.default.addObserver(
                forName: UIDevice.orientationDidChangeNotification, object: nil, queue: .main
            ) { _ in
                MainActor.assumeIsolated { update() }
            }
        }
    }

    @available(iOS 17.0, *)
    @MainActor
    private func rotatePreview(to angle: CGFloat) {
        guard let connection = previewLayer?.connection, connection.isVideoRotationAngleSupported(angle) else { return }
        connection.videoRotationAngle = angle
    }

    /// The clockwise angle that turns a buffer upright for a device orientation, as
    /// AVFoundation's `videoOrientation` would apply it (the front camera's sensor faces the
    /// other way, so the two landscapes swap); `nil` for face up, face down and unknown.
    static func angle(for orientation: UIDeviceOrientation, front: Bool) -> Double? {
        switch orientation {
        case .portrait: return 90
        case .portraitUpsideDown: return 270
        case .landscapeLeft: return front ? 180 : 0
        case .landscapeRight: return front ? 0 : 180
        default: return nil
        }
    }

    /// The interface's orientation as a capture orientation, for the iOS 16 preview.
    @MainActor
    private var interfaceVideoOrientation: AVCaptureVideoOrientation {
        let scene = UIApplication.shared.connectedScenes.compactMap { $0 as? UIWindowScene }.first
        switch scene?.interfaceOrientation {
        case .landscapeLeft: return .landscapeLeft
        case .landscapeRight: return .landscapeRight
        case .portraitUpsideDown: return .portraitUpsideDown
        default: return .portrait
        }
    }

    // MARK: - Interruptions (main actor)

    @MainActor
    private func observeSession() {
        guard sessionObservers.isEmpty else { return }
        let center = NotificationCenter.default
        sessionObservers = [
            center.addObserver(forName: AVCaptureSession.wasInterruptedNotification, object: session, queue: .main) {
                [weak self] notification in
                let reason = (notification.userInfo?[AVCaptureSessionInterruptionReasonKey] as? Int)
                    .flatMap(AVCaptureSession.InterruptionReason.init(rawValue:))
                let text: String
                switch reason {
                case .videoDeviceNotAvailableWithMultipleForegroundApps:
                    text = "The camera is not available while other apps share the screen."
                case .videoDeviceInUseByAnotherClient:
                    text = "Another app is using the camera."
                case .videoDeviceNotAvailableDueToSystemPressure:
                    text = "The camera stopped: the device is too hot."
                default:
                    text = "The camera is paused."
                }
                MainActor.assumeIsolated { self?.onNote?(text) }
            },
            center.addObserver(forName: AVCaptureSession.interruptionEndedNotification, object: session, queue: .main) {
                [weak self] _ in
                MainActor.assumeIsolated { self?.onNote?(nil) }
            },
            center.addObserver(forName: AVCaptureSession.runtimeErrorNotification, object: session, queue: .main) {
                [weak self] _ in
                // Media services were reset, say: start again.
                guard let self else { return }
                self.sessionQueue.async {
                    if !self.session.isRunning { self.session.startRunning() }
                }
            },
        ]
    }
}

// MARK: - Frames (frameQueue)

extension CameraController: AVCaptureVideoDataOutputSampleBufferDelegate {
    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let pixelBuffer = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        let time = CMSampleBufferGetPresentationTimeStamp(sampleBuffer)
        let timestampMs = time.isNumeric ? Int64(time.seconds * 1000) : LiveCamera.nowMs()
        let orientation = ImageOrientation.camera(
            rotationAngle: rotationAngle.withLock { $0 }, mirrored: connection.isVideoMirrored)
        // The planes are copied only if the captioning takes the frame; the buffer goes back to
        // the pool when this returns.
        captioning.push(timestampMs: timestampMs) {
            try ImageInput.frame(pixelBuffer: pixelBuffer, orientation: orientation)
        }
    }
}

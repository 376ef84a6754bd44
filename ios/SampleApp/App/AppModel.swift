import SampleState
import SmolVLM
import SwiftUI
import UIKit

/// The app's one view model: it owns the model setup, the live captioning and the camera, and
/// republishes their states for SwiftUI. An `ObservableObject` (not `@Observable`) because the app
/// runs on iOS 16; the state classes themselves know nothing of SwiftUI or Combine, so that their
/// tests run on Linux.
@MainActor
final class AppModel: ObservableObject {
    /// Where getting the model stands.
    @Published private(set) var setup: ModelSetup.State
    /// What the camera screen shows.
    @Published private(set) var camera: CameraState
    /// The model picked on the model screen.
    @Published private(set) var pick: CatalogModel
    /// Whether the app may use the camera (`nil`: not asked yet).
    @Published private(set) var cameraAllowed: Bool?
    /// Why the camera is not running (interrupted, failed), for the camera screen.
    @Published private(set) var cameraNote: String?

    let modelSetup: ModelSetup
    let captioning: LiveCaptioning
    let cameraController: CameraController

    private var observers: [Task<Void, Never>] = []
    private var backgroundTask: UIBackgroundTaskIdentifier = .invalid
    private var resumeDownloadInForeground = false
    private var cameraScreenVisible = false
    /// The model the captioning runs on.
    private var captionedModel: SmolVLM?
    private static let savedModelKey = "model"

    init() {
        let support = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        let saved = UserDefaults.standard.string(forKey: Self.savedModelKey)
        let catalog = SmolVLM.catalog
        let setup = ModelSetup(
            modelsFolder: support.appendingPathComponent("Models", isDirectory: true),
            catalog: catalog,
            model: catalog.first { $0.repoId == saved })
        let captioning = LiveCaptioning()
        modelSetup = setup
        self.captioning = captioning
        cameraController = CameraController(captioning: captioning)
        self.setup = setup.state
        camera = captioning.state
        pick = setup.model
        cameraAllowed = CameraController.authorization

        // The streams say that something changed; what is shown is the state now (a change the
        // stream has not delivered yet may already be on screen: see `cameraAction`).
        observers = [
            Task { [weak self] in
                for await _ in setup.states { self?.setupChanged() }
            },
            Task { [weak self] in
                for await _ in captioning.states { self?.camera = captioning.state }
            },
        ]
        cameraController.onNote = { [weak self] note in self?.cameraNote = note }
        // A model that was ready before is on the device: it loads without the network (the
        // download call only checks the hub's listing, and uses the local copy when offline).
        if saved != nil { setup.start() }
    }

    // MARK: - The model screen

    func select(_ model: CatalogModel) {
        modelSetup.select(model)
        pick = modelSetup.model
        setupChanged()
    }

    func download() { setupAction { $0.start() } }
    func retry() { setupAction { $0.retry() } }
    func cancelDownload() { setupAction { $0.cancel() } }

    /// Back to the model screen: the live loop and the model are closed.
    func changeModel() {
        UserDefaults.standard.removeObject(forKey: Self.savedModelKey)
        setupAction { $0.cancel() }
    }

    private func setupChanged() {
        let state = modelSetup.state
        setup = state
        if let vlm = state.vlm {
            if captionedModel !== vlm {
                UserDefaults.standard.set(modelSetup.model.repoId, forKey: Self.savedModelKey)
                captionedModel = vlm
                captioning.open(vlm)
            }
        } else if captionedModel != nil {
            captionedModel = nil
            captioning.close()
        }
        if !state.isBusy { endBackgroundTask() }
    }

    // MARK: - The camera screen

    func cameraScreenAppeared() async {
        cameraScreenVisible = true
        UIApplication.shared.isIdleTimerDisabled = true
        if cameraAllowed == nil {
            cameraAllowed = await CameraController.requestAccess()
        }
        if cameraAllowed == true, cameraScreenVisible { cameraController.start() }
    }

    func cameraScreenDisappeared() {
        cameraScreenVisible = false
        UIApplication.shared.isIdleTimerDisabled = false
        cameraController.stop()
    }

    /// Live captions or questions; setting it switches (not while an answer streams).
    var mode: CameraState.Mode {
        get { camera.mode }
        set {
            switch newValue {
            case .ask: cameraAction { $0.enterAskMode() }
            case .live: cameraAction { $0.backToLive() }
            }
        }
    }

    func ask(_ question: String) { cameraAction { $0.ask(question) } }
    func ask(_ preset: Preset) { cameraAction { $0.ask(preset) } }
    func stop() { cameraAction { $0.stop() } }
    func switchCamera() { cameraController.switchCamera() }

    // The streams deliver every change a moment later; an action's own change is shown at once
    // (a segmented control, say, would otherwise jump back for a frame).
    private func cameraAction(_ action: (LiveCaptioning) -> Void) {
        action(captioning)
        camera = captioning.state
    }

    private func setupAction(_ action: (ModelSetup) -> Void) {
        action(modelSetup)
        setupChanged()
    }

    // MARK: - Lifecycle

    func scenePhaseChanged(to phase: ScenePhase) {
        switch phase {
        case .active:
            endBackgroundTask()
            captioning.enterForeground()
            if cameraScreenVisible, cameraAllowed == true { cameraController.start() }
            if resumeDownloadInForeground {
                resumeDownloadInForeground = false
                setupAction { $0.start() }
            }
        case .background:
            captioning.enterBackground()
            cameraController.stop()
            // A download goes on for as long as iOS allows (about 30 s), then stops cleanly; it
            // continues where it stopped when the app comes back.
            if modelSetup.state.isBusy { beginBackgroundTask() }
        default:
            break
        }
    }

    private func beginBackgroundTask() {
        guard backgroundTask == .invalid else { return }
        backgroundTask = UIApplication.shared.beginBackgroundTask(withName: "Model download") { [weak self] in
            MainActor.assumeIsolated {
                guard let self else { return }
                self.resumeDownloadInForeground = self.modelSetup.state.isBusy
                self.setupAction { $0.cancel() }
                self.endBackgroundTask()
            }
        }
    }

    private func endBackgroundTask() {
        guard backgroundTask != .invalid else { return }
        UIApplication.shared.endBackgroundTask(backgroundTask)
        backgroundTask = .invalid
    }
}

import SwiftUI

/// A camera app that answers questions about what the camera sees, entirely on the device.
///
/// The first run downloads a model (``ModelScreen``); then the camera screen
/// (``CameraScreen``) captions what it sees and answers questions about a frozen frame. The
/// logic lives in the platform-neutral `SampleState` library (tested on Linux); this target is the
/// thin iOS layer: SwiftUI, AVFoundation and the app's lifecycle.
@main
struct SmolVLMSampleApp: App {
    @StateObject private var model = AppModel()
    @Environment(\.scenePhase) private var scenePhase

    var body: some Scene {
        WindowGroup {
            RootView()
                .environmentObject(model)
        }
        // The app's phase over all its scenes: background closes the live loop (no GPU work and
        // no camera in the background) and foreground opens it again.
        .onChange(of: scenePhase) { phase in
            model.scenePhaseChanged(to: phase)
        }
    }
}

/// The model screen until a model is loaded, then the camera.
struct RootView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        Group {
            if case .ready = model.setup {
                CameraScreen()
                    .transition(.opacity)
            } else {
                ModelScreen()
                    .transition(.opacity)
            }
        }
        .animation(.default, value: model.setup.vlm != nil)
    }
}

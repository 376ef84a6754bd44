import Accessibility
import AVFoundation
import SampleState
import SwiftUI
import UIKit

/// The camera: the preview full screen, the live caption over it, and ask mode (presets, free
/// text, the streamed answer with Stop), with the stats line under the caption or answer.
struct CameraScreen: View {
    @EnvironmentObject private var model: AppModel
    @State private var question = ""
    @FocusState private var typing: Bool

    private var state: CameraState { model.camera }
    private var streaming: Bool { state.ask?.streaming == true }

    var body: some View {
        ZStack {
            Color.black.ignoresSafeArea()
            if model.cameraAllowed == false {
                CameraDenied()
            } else {
                // In ask mode the preview stands still: the answer is about a frozen frame.
                CameraPreview(controller: model.cameraController, frozen: state.mode == .ask)
                    .ignoresSafeArea()
                    .accessibilityLabel("Camera preview")
            }
        }
        .safeAreaInset(edge: .top) { topBar }
        .safeAreaInset(edge: .bottom) { panel }
        .preferredColorScheme(.dark)
        .task { await model.cameraScreenAppeared() }
        .onDisappear { model.cameraScreenDisappeared() }
        .onChange(of: state.caption) { caption in announce(caption) }
    }

    // MARK: - Top bar: mode, camera, model

    private var topBar: some View {
        HStack(spacing: 12) {
            Picker("Mode", selection: $model.mode) {
                Text("Live").tag(CameraState.Mode.live)
                Text("Ask").tag(CameraState.Mode.ask)
            }
            .pickerStyle(.segmented)
            .frame(maxWidth: 220)
            .disabled(streaming)

            Spacer()

            Button {
                model.switchCamera()
            } label: {
                Image(systemName: "arrow.triangle.2.circlepath.camera")
            }
            .accessibilityLabel("Switch camera")

            Menu {
                Button {
                    model.changeModel()
                } label: {
                    Label("Change model", systemImage: "square.stack.3d.up")
                }
            } label: {
                Image(systemName: "ellipsis.circle")
            }
            .accessibilityLabel("More")
        }
        .font(.title3)
        .padding(.horizontal)
        .padding(.vertical, 8)
        .background(.ultraThinMaterial)
    }

    // MARK: - Bottom panel: caption or question and answer

    private var panel: some View {
        VStack(alignment: .leading, spacing: 10) {
            if let note = model.cameraNote {
                Label(note, systemImage: "video.slash").font(.footnote)
            }
            switch state.mode {
            case .live: live
            case .ask: ask
            }
            if let line = state.statsLine {
                Text(line)
                    .font(.caption.monospacedDigit())
                    .foregroundStyle(.secondary)
                    .accessibilityLabel(line.replacingOccurrences(of: " · ", with: ", "))
            }
            if let problem = state.problem {
                Label(problem.message, systemImage: "exclamationmark.triangle")
                    .font(.footnote)
                    .foregroundStyle(.orange)
            }
        }
        .frame(maxWidth: .infinity, alignment: .leading)
        .padding()
        .background(.ultraThinMaterial)
    }

    @ViewBuilder
    private var live: some View {
        if state.caption.isEmpty {
            HStack(spacing: 8) {
                ProgressView()
                Text(state.running ? "Looking…" : "Starting…").foregroundStyle(.secondary)
            }
        } else {
            // Whole captions only: each replaces the last when it is complete.
            Text(state.caption)
                .font(.title3.weight(.medium))
                .fixedSize(horizontal: false, vertical: true)
                .accessibilityAddTraits(.updatesFrequently)
        }
    }

    @ViewBuilder
    private var ask: some View {
        if let ask = state.ask {
            VStack(alignment: .leading, spacing: 6) {
                Text(ask.question).font(.headline)
                ScrollView {
                    Text(ask.answer.isEmpty ? "…" : ask.answer)
                        .frame(maxWidth: .infinity, alignment: .leading)
                        .textSelection(.enabled)
                }
                .frame(maxHeight: 160)
                HStack {
                    if ask.streaming {
                        ProgressView()
                        Spacer()
                        Button(role: .destructive) {
                            model.stop()
                        } label: {
                            Label("Stop", systemImage: "stop.fill")
                        }
                        .buttonStyle(.borderedProminent)
                    } else if ask.stopped {
                        Text("Stopped").font(.caption).foregroundStyle(.secondary)
                    }
                }
            }
        } else {
            Text("Ask about this frame.").foregroundStyle(.secondary)
        }

        ScrollView(.horizontal, showsIndicators: false) {
            HStack {
                ForEach(Preset.allCases) { preset in
                    Button {
                        model.ask(preset)
                    } label: {
                        Label(preset.title, systemImage: preset.symbol)
                    }
                    .buttonStyle(.bordered)
                }
            }
        }
        .disabled(streaming || !state.running)

        HStack {
            TextField("Ask a question", text: $question)
                .textFieldStyle(.roundedBorder)
                .submitLabel(.send)
                .focused($typing)
                .onSubmit(send)
            Button(action: send) {
                Image(systemName: "arrow.up.circle.fill").font(.title2)
            }
            .accessibilityLabel("Send")
            .disabled(question.trimmingCharacters(in: .whitespaces).isEmpty)
        }
        .disabled(streaming || !state.running)
    }

    private func send() {
        model.ask(question)
        question = ""
        typing = false
    }

    /// Reads new captions aloud with VoiceOver (politely: they do not interrupt speech).
    private func announce(_ caption: String) {
        guard state.mode == .live, !caption.isEmpty, UIAccessibility.isVoiceOverRunning else { return }
        if #available(iOS 17.0, *) {
            var text = AttributedString(caption)
            text.accessibilitySpeechAnnouncementPriority = .low
            AccessibilityNotification.Announcement(text).post()
        } else {
            UIAccessibility.post(notification: .announcement, argument: caption)
        }
    }
}

/// The camera's picture: an `AVCaptureVideoPreviewLayer` as a view's own layer.
struct CameraPreview: UIViewRepresentable {
    let controller: CameraController
    let frozen: Bool

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        controller.attach(view.previewLayer)
        return view
    }

    func updateUIView(_ view: PreviewView, context: Context) {
        controller.setPreviewFrozen(frozen)
    }

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }

        var previewLayer: AVCaptureVideoPreviewLayer {
            // The layer class above makes it one.
            layer as! AVCaptureVideoPreviewLayer  // swiftlint:disable:this force_cast
        }
    }
}

/// The camera permission was refused: say why the app needs it and where to turn it on.
private struct CameraDenied: View {
    @Environment(\.openURL) private var openURL

    var body: some View {
        VStack(spacing: 12) {
            Image(systemName: "camera.fill").font(.largeTitle)
            Text("SmolVLM needs the camera to describe what it sees. Everything stays on this device.")
                .multilineTextAlignment(.center)
            Button("Open Settings") {
                if let url = URL(string: UIApplication.openSettingsURLString) { openURL(url) }
            }
            .buttonStyle(.borderedProminent)
        }
        .foregroundStyle(.white)
        .padding()
    }
}

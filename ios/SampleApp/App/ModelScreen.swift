import SampleState
import SmolVLM
import SwiftUI
import os

/// The first-run screen: pick a model, download it with progress (bytes and the file being
/// fetched), cancel, and try again after a failure. A model downloaded before never shows this
/// screen for long: it is found on the device and loaded.
struct ModelScreen: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    ForEach(model.modelSetup.catalog, id: \.repoId) { entry in
                        let picked = entry.repoId == model.pick.repoId
                        Button {
                            model.select(entry)
                        } label: {
                            ModelRow(entry: entry, picked: picked)
                        }
                        .tint(.primary)
                        .disabled(model.setup.isBusy)
                        .accessibilityAddTraits(picked ? .isSelected : [])
                    }
                } header: {
                    Text("Model")
                } footer: {
                    Text("Downloaded once from Hugging Face, then everything runs on this device, offline. The smallest model is the fastest.")
                }

                Section {
                    SetupStatus(state: model.setup, pick: model.pick)
                }
            }
            .navigationTitle("SmolVLM")
        }
    }
}

/// One catalog entry: its name, download size and the memory it needs.
private struct ModelRow: View {
    let entry: CatalogModel
    let picked: Bool

    var body: some View {
        HStack {
            VStack(alignment: .leading, spacing: 2) {
                Text(entry.name)
                Text("\(bytes(entry.downloadBytes)) download · about \(bytes(entry.memoryBytes)) of memory")
                    .font(.caption)
                    .foregroundStyle(.secondary)
                if entry.memoryBytes > availableMemory {
                    Label("May not fit in this device's memory", systemImage: "exclamationmark.triangle")
                        .font(.caption)
                        .foregroundStyle(.orange)
                }
            }
            Spacer()
            if picked {
                Image(systemName: "checkmark")
                    .foregroundStyle(Color.accentColor)
                    .accessibilityHidden(true)
            }
        }
    }

    /// What iOS lets this app use now (raised by the increased-memory-limit entitlement).
    private var availableMemory: Int64 {
        let available = Int64(os_proc_available_memory())
        // 0 in the simulator and on macOS: then every model is offered without a warning.
        return available > 0 ? available + ProcessMemory.footprintBytes() : .max
    }
}

/// The download or load under way, or the button that starts it.
private struct SetupStatus: View {
    @EnvironmentObject private var model: AppModel
    let state: ModelSetup.State
    let pick: CatalogModel

    var body: some View {
        switch state {
        case .idle:
            Button {
                model.download()
            } label: {
                Label("Download \(bytes(pick.downloadBytes))", systemImage: "arrow.down.circle")
            }

        case .downloading(let done, let total, let fraction, let file):
            VStack(alignment: .leading, spacing: 8) {
                if total == 0 {
                    // Asking the hub what to fetch (or finding everything in place).
                    ProgressView {
                        Text("Checking the model's files…")
                    }
                } else {
                    ProgressView(value: fraction) {
                        Text("Downloading \(file)")
                            .lineLimit(1)
                            .truncationMode(.middle)
                    } currentValueLabel: {
                        Text("\(bytes(done)) of \(bytes(total))")
                            .monospacedDigit()
                    }
                }
                Button("Cancel", role: .cancel) { model.cancelDownload() }
            }
            .padding(.vertical, 4)

        case .loading(let stage, let fraction):
            VStack(alignment: .leading, spacing: 8) {
                ProgressView(value: fraction) {
                    Text("Loading the model")
                } currentValueLabel: {
                    Text(stageText(stage))
                }
                Button("Cancel", role: .cancel) { model.cancelDownload() }
            }
            .padding(.vertical, 4)

        case .failed(let problem):
            VStack(alignment: .leading, spacing: 8) {
                Label(problem.message, systemImage: "exclamationmark.triangle.fill")
                    .foregroundStyle(.red)
                Text(problem.detail)
                    .font(.footnote)
                    .foregroundStyle(.secondary)
                    .textSelection(.enabled)
                Button {
                    model.retry()
                } label: {
                    Label("Try again", systemImage: "arrow.clockwise")
                }
            }
            .padding(.vertical, 4)

        case .ready:
            Label("Ready", systemImage: "checkmark.circle.fill")
        }
    }

    private func stageText(_ stage: LoadStage) -> String {
        switch stage {
        case .reading: return "Reading the files"
        case .vision: return "Building the vision encoder"
        case .text: return "Building the language model"
        case .ready: return "Ready"
        }
    }
}

/// Bytes as the Files app shows them: "487 MB".
private func bytes(_ count: Int64) -> String {
    ByteCountFormatter.string(fromByteCount: count, countStyle: .file)
}

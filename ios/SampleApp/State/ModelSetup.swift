import Foundation
import SmolVLM

/// Gets a model from the catalog onto the device and loads it: the first-run model screen's
/// logic. The pick (``model``, SmolVLM-256M-Instruct unless told otherwise), the download with
/// progress (`SmolVLM.download`, which resumes partial files), the load with progress
/// (`SmolVLM.load`), retry after a failure, and cancel. Every failure ends in
/// ``State-swift.enum/failed(_:)`` with a ``Problem``: nothing here throws at the caller.
///
/// A model downloaded before is loaded without downloading anything: the download call, with
/// every file in place, only checks the hub's listing, and when the hub cannot be reached (no
/// network) it uses the copy on the device at once. The app works fully offline after the first
/// download.
///
/// Main-actor state with no UI types, so that its tests run on Linux against the real library.
/// Read ``state`` at any time; iterate ``states`` for the changes (a SwiftUI view model copies
/// them into a published property).
@MainActor
public final class ModelSetup {
    /// Where getting the model stands.
    public enum State: Sendable, Equatable {
        /// Nothing under way: the model screen offers the pick and a Download button (also after
        /// ``cancel()``).
        case idle
        /// Fetching the model, or (while `bytesTotal` is still 0) asking the hub what to fetch.
        /// `bytesDone` counts files already in place and partial files continued.
        case downloading(bytesDone: Int64, bytesTotal: Int64, fraction: Double, file: String)
        /// Loading the downloaded model: the stage, and the fraction of the load done (0–1,
        /// never going down).
        case loading(stage: LoadStage, fraction: Double)
        /// The model is loaded. ``ModelSetup`` owns it and closes it on ``cancel()``,
        /// ``select(_:)`` and ``close()``: do not close it yourself.
        case ready(SmolVLM)
        /// Getting the model failed; ``retry()`` tries again (a download continues where it
        /// stopped).
        case failed(Problem)

        public static func == (a: State, b: State) -> Bool {
            switch (a, b) {
            case (.idle, .idle): return true
            case let (.downloading(d1, t1, f1, n1), .downloading(d2, t2, f2, n2)):
                return d1 == d2 && t1 == t2 && f1 == f2 && n1 == n2
            case let (.loading(s1, f1), .loading(s2, f2)): return s1 == s2 && f1 == f2
            case let (.ready(m1), .ready(m2)): return m1 === m2
            case let (.failed(p1), .failed(p2)): return p1 == p2
            default: return false
            }
        }

        /// The loaded model, when ``ready(_:)``.
        public var vlm: SmolVLM? {
            if case .ready(let vlm) = self { return vlm }
            return nil
        }

        /// The problem, when ``failed(_:)``.
        public var problem: Problem? {
            if case .failed(let problem) = self { return problem }
            return nil
        }

        /// Whether a download or a load is under way.
        public var isBusy: Bool {
            switch self {
            case .downloading, .loading: return true
            default: return false
            }
        }
    }

    /// The catalog entry picked by default: the smallest SmolVLM, which runs on every iPhone the
    /// app supports.
    public static let defaultRepoId = "HuggingFaceTB/SmolVLM-256M-Instruct"

    /// The models the screen offers, smallest first.
    public let catalog: [CatalogModel]
    /// The folder that holds one sub-folder per model (under Application Support in the app).
    public let modelsFolder: URL
    /// The model picked; ``select(_:)`` changes it.
    public private(set) var model: CatalogModel
    /// Where getting ``model`` stands.
    public private(set) var state: State = .idle {
        didSet { broadcast.send(state) }
    }

    private let endpoint: String?
    private let token: String?
    private let keepFreeBytes: Int64
    private let broadcast = Broadcast<State>()
    private var job: Task<Void, Never>?

    /// - Parameters:
    ///   - modelsFolder: the folder for the models (created when needed), e.g.
    ///     `Application Support/Models`: not Caches (the system may purge it) and not Documents
    ///     (it would show in the Files app). The app excludes it from iCloud backup.
    ///   - catalog: the models to offer (`SmolVLM.catalog`).
    ///   - model: the pick; `nil`: the ``defaultRepoId`` entry of `catalog` (else its first).
    ///   - endpoint: the hub to download from (`nil`: huggingface.co).
    ///   - token: a Hugging Face token, for gated models (`nil`: none).
    ///   - keepFreeBytes: storage that must stay free after the download; the library refuses
    ///     to start a download that would leave less (``Problem/Kind/noSpace``).
    public init(
        modelsFolder: URL,
        catalog: [CatalogModel] = SmolVLM.catalog,
        model: CatalogModel? = nil,
        endpoint: String? = nil,
        token: String? = nil,
        keepFreeBytes: Int64 = 512 << 20
    ) {
        precondition(model != nil || !catalog.isEmpty, "an empty catalog and no model")
        self.modelsFolder = modelsFolder
        self.catalog = catalog
        self.model = model ?? catalog.first { $0.repoId == Self.defaultRepoId } ?? catalog[0]
        self.endpoint = endpoint
        self.token = token
        self.keepFreeBytes = keepFreeBytes
    }

    /// ``state`` now, then every change, in order.
    public var states: AsyncStream<State> { broadcast.stream(startingWith: state) }

    /// The folder `model` is downloaded into: one per repo, named after it.
    public func folder(for model: CatalogModel) -> URL {
        modelsFolder.appendingPathComponent(model.repoId.replacingOccurrences(of: "/", with: "--"), isDirectory: true)
    }

    /// Picks another model: stops what is under way (partial files stay), closes the model
    /// loaded and goes back to ``State-swift.enum/idle``. Picking the current model does nothing.
    public func select(_ model: CatalogModel) {
        guard model != self.model else { return }
        stopJob()
        self.model = model
        state = .idle
    }

    /// Downloads (or finds on the device) and loads ``model``, replacing whatever was loaded or
    /// under way.
    public func start() {
        let previous = job
        stopJob()
        let model = self.model
        state = .downloading(bytesDone: 0, bytesTotal: 0, fraction: 0, file: "")
        job = Task {
            // Wait until the previous run has stopped: it then writes no late state, and two
            // downloads never share the folder.
            await previous?.value
            await fetchAndLoad(model)
        }
    }

    /// Tries again after a failure (the download continues where it stopped). Does nothing in
    /// any other state.
    public func retry() {
        guard case .failed = state else { return }
        start()
    }

    /// Stops the download or load under way (partial files stay, for the next ``start()``), or
    /// closes the model loaded, and goes back to ``State-swift.enum/idle``. The download stops
    /// within a second, a load after the layer being built; ``state`` is `idle` at once.
    public func cancel() {
        stopJob()
        state = .idle
    }

    /// Stops what is under way and closes the model; ``state`` becomes `idle`.
    public func close() {
        cancel()
        broadcast.finish()
    }

    /// Waits until the work under way has ended (for tests and for an orderly shutdown).
    public func settle() async {
        await job?.value
    }

    private func stopJob() {
        job?.cancel()
        if case .ready(let vlm) = state {
            // Closed now: a live camera on it keeps its share until it is closed too.
            state = .idle
            vlm.close()
        }
    }

    private func fetchAndLoad(_ model: CatalogModel) async {
        guard !Task.isCancelled else { return }
        let folder = self.folder(for: model)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            Self.excludeFromBackup(modelsFolder)
            let request = DownloadRequest(
                repoId: model.repoId, folder: folder.path, files: model.files, token: token,
                endpoint: endpoint, keepFreeBytes: keepFreeBytes)
            let (reports, sink) = AsyncStream.makeStream(of: DownloadProgress.self)
            async let fetched = Self.download(request, progress: sink)
            // The reports come in order from the downloading thread; a cancelled task stops
            // reading them, and `fetched` then throws CancellationError.
            for await p in reports where !Task.isCancelled {
                let fraction = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 0
                state = .downloading(bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, fraction: fraction, file: p.file)
            }
            let path = try await fetched
            try Task.checkCancellation()

            // A GGUF pair loads its text file with the vision file beside it as `mmproj`.
            let pair = model.format == .ggufPair && model.files.count == 2
            let target = pair ? URL(fileURLWithPath: path).appendingPathComponent(model.files[0]).path : path
            let mmproj = pair ? URL(fileURLWithPath: path).appendingPathComponent(model.files[1]).path : nil
            // Camera frames: at most 2×2 tiles plus the global view, and a context that holds one
            // frame's answer with room to spare (the live loop starts every answer afresh).
            let options = LoadOptions(precision: .auto, mmproj: mmproj, contextLength: 2048, backend: .auto, preset: .fast)
            state = .loading(stage: .reading, fraction: 0)
            let (stages, stageSink) = AsyncStream.makeStream(of: (LoadStage, Float).self)
            async let loaded = Self.load(target, options: options, progress: stageSink)
            for await (stage, fraction) in stages where !Task.isCancelled {
                state = .loading(stage: stage, fraction: Double(fraction))
            }
            let vlm = try await loaded
            guard !Task.isCancelled else {
                vlm.close()
                return
            }
            state = .ready(vlm)
        } catch {
            // A cancel has already set the state; a failure is shown.
            guard !Task.isCancelled, !(error is CancellationError) else { return }
            state = .failed(Problem(error))
        }
    }

    /// `SmolVLM.download` with its reports forwarded into `progress`, which ends with it.
    private nonisolated static func download(
        _ request: DownloadRequest, progress: AsyncStream<DownloadProgress>.Continuation
    ) async throws -> String {
        defer { progress.finish() }
        return try await SmolVLM.download(request) { progress.yield($0) }
    }

    /// `SmolVLM.load` with its reports forwarded into `progress`, which ends with it.
    private nonisolated static func load(
        _ path: String, options: LoadOptions, progress: AsyncStream<(LoadStage, Float)>.Continuation
    ) async throws -> SmolVLM {
        defer { progress.finish() }
        return try await SmolVLM.load(modelPath: path, options: options) { stage, fraction in
            progress.yield((stage, fraction))
        }
    }

    /// Keeps the models out of iCloud and iTunes backups: they are large and can be downloaded
    /// again.
    private static func excludeFromBackup(_ folder: URL) {
        #if canImport(Darwin)
        var url = folder
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try? url.setResourceValues(values)
        #endif
    }
}

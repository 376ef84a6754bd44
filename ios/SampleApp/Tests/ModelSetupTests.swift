import Foundation
import SampleState
import SmolVLM
import XCTest

/// ``ModelSetup`` against the real library and the local stand-in for the hub, which serves the
/// tiny fixture model under `smolvlm-test/<fault>` with the faults its name asks for.
// `@unchecked Sendable`: the test methods run on the main actor, and XCTest hands the test case
// to them; its stored properties are only touched there and in `tearDown`, after the test.
final class ModelSetupTests: XCTestCase, @unchecked Sendable {
    nonisolated(unsafe) static var shared: LocalHub?

    /// The hub, started on first use and stopped after the last test.
    static func hub() throws -> LocalHub {
        if let hub = shared { return hub }
        let hub = try LocalHub()
        shared = hub
        return hub
    }

    override class func tearDown() {
        shared?.stop()
        shared = nil
        super.tearDown()
    }

    private var folders: [URL] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(at: folder) }
        super.tearDown()
    }

    /// A setup for `entries` in a fresh folder, downloading from the local hub.
    @MainActor
    private func setup(
        _ entries: [CatalogModel], folder: URL? = nil, endpoint: String? = nil, keepFreeBytes: Int64 = 0
    ) throws -> ModelSetup {
        let dir = try folder ?? temporaryFolder("models")
        folders.append(dir)
        let hub = try endpoint ?? Self.hub().url
        return ModelSetup(modelsFolder: dir, catalog: entries, model: entries[0], endpoint: hub, keepFreeBytes: keepFreeBytes)
    }

    /// The model, once the setup is ready; throws if it fails instead.
    @MainActor
    private func ready(_ setup: ModelSetup, seconds: Double = 30) async throws -> SmolVLM {
        try await waitUntil("ready or failed", seconds: seconds) { setup.state.vlm != nil || setup.state.problem != nil }
        guard let vlm = setup.state.vlm else { throw Timeout(description: "failed instead of ready: \(setup.state)") }
        return vlm
    }

    /// The problem, once the setup has failed; throws if it is ready instead.
    @MainActor
    private func failure(_ setup: ModelSetup) async throws -> Problem {
        try await waitUntil("a failure", seconds: 30) { setup.state.vlm != nil || setup.state.problem != nil }
        guard let problem = setup.state.problem else { throw Timeout(description: "ready instead of failed") }
        return problem
    }

    @MainActor
    func testTheDefaultPickIsSmolVLM256MFromTheLibrarysCatalog() async throws {
        let dir = try temporaryFolder("default")
        folders.append(dir)
        let setup = ModelSetup(modelsFolder: dir)
        XCTAssertEqual(setup.model.repoId, "HuggingFaceTB/SmolVLM-256M-Instruct")
        XCTAssertEqual(setup.model.name, "SmolVLM-256M-Instruct")
        XCTAssertEqual(setup.catalog, SmolVLM.catalog)
        XCTAssertEqual(setup.state, .idle)
        XCTAssertEqual(
            setup.folder(for: setup.model).path,
            dir.appendingPathComponent("HuggingFaceTB--SmolVLM-256M-Instruct").path)
        // Picking another entry changes the pick and stays idle; nothing is downloaded until start().
        let other = try XCTUnwrap(setup.catalog.first { $0.repoId.hasSuffix("500M-Instruct") })
        setup.select(other)
        XCTAssertEqual(setup.model, other)
        XCTAssertEqual(setup.state, .idle)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    @MainActor
    func testDownloadsWithProgressThenLoadsAndSelectingAnotherModelClosesIt() async throws {
        let tiny = LocalHub.entry("tiny")
        let setup = try setup([tiny, LocalHub.entry("tiny-drop")])
        let recorder = Recorder(setup.states)
        setup.start()
        let vlm = try await ready(setup)
        let states = await recorder.stop()

        let downloads = states.compactMap { s -> (Int64, Int64, Double, String)? in
            if case .downloading(let done, let total, let fraction, let file) = s { return (done, total, fraction, file) }
            return nil
        }
        XCTAssertTrue(downloads.contains { $0.1 > 0 }, "progress was reported: \(states)")
        XCTAssertTrue(zip(downloads, downloads.dropFirst()).allSatisfy { $0.0 <= $1.0 }, "bytes never go down: \(downloads)")
        let last = try XCTUnwrap(downloads.last)
        XCTAssertEqual(last.0, last.1, "the last report is the whole download")
        XCTAssertEqual(last.2, 1, accuracy: 1e-9)
        XCTAssertTrue(downloads.allSatisfy { (0...1).contains($0.2) })
        XCTAssertTrue(downloads.contains { $0.3 == "model.safetensors" }, "the file being fetched is named")

        let loads = states.compactMap { s -> (LoadStage, Double)? in
            if case .loading(let stage, let fraction) = s { return (stage, fraction) }
            return nil
        }
        XCTAssertEqual(loads.first?.0, .reading)
        XCTAssertTrue(zip(loads, loads.dropFirst()).allSatisfy { $0.1 <= $1.1 }, "the load only goes forward: \(loads)")
        XCTAssertTrue(loads.contains { $0.0 == .vision } && loads.contains { $0.0 == .text }, "\(loads)")
        // Idle → downloading → loading → ready, in that order.
        let order = states.map { s -> Int in
            switch s {
            case .idle: return 0
            case .downloading: return 1
            case .loading: return 2
            case .ready: return 3
            case .failed: return 9
            }
        }
        XCTAssertEqual(order, order.sorted(), "\(order)")
        XCTAssertEqual(order.last, 3)

        XCTAssertTrue(vlm.info.hasVision)
        let file = setup.folder(for: tiny).appendingPathComponent("model.safetensors")
        XCTAssertEqual(try Data(contentsOf: file), try Data(contentsOf: tinyModel.appendingPathComponent("model.safetensors")))

        // Another pick: the loaded model is closed and the setup is idle again.
        setup.select(setup.catalog[1])
        XCTAssertEqual(setup.state, .idle)
        XCTAssertThrowsError(try vlm.newChat()) { error in
            guard case .invalidArgument = error as? SmolVLMError else { return XCTFail("\(error)") }
        }
    }

    @MainActor
    func testAModelAlreadyOnDiskLoadsWithoutDownloadingAlsoOffline() async throws {
        let tiny = LocalHub.entry("tiny")
        let first = try setup([tiny])
        first.start()
        _ = try await ready(first)
        first.close()
        let hub = try Self.hub()
        let cdnGets = hub.gets("tiny", cdn: true).count
        XCTAssertGreaterThan(cdnGets, 0)

        // Online: the download call only checks the hub's listing; not one byte is fetched again.
        let again = try setup([tiny], folder: first.modelsFolder)
        let recorder = Recorder(again.states)
        again.start()
        _ = try await ready(again)
        let states = await recorder.stop()
        XCTAssertEqual(hub.gets("tiny", cdn: true).count, cdnGets, "no weights fetched again")
        XCTAssertFalse(states.contains { if case .downloading(let done, let total, _, _) = $0 { return done < total } else { return false } }, "\(states)")
        again.close()

        // Offline (nothing listens on the endpoint): the copy on the device is loaded at once.
        let offline = try setup([tiny], folder: first.modelsFolder, endpoint: "http://127.0.0.1:9")
        let t0 = Date()
        offline.start()
        let vlm = try await ready(offline)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "no retries against an unreachable hub")
        XCTAssertTrue(vlm.info.hasVision)
        offline.close()
    }

    @MainActor
    func testCancelStopsAStalledDownloadAtOnceAndKeepsThePartialFile() async throws {
        let stall = LocalHub.entry("tiny-stall")
        let setup = try setup([stall])
        setup.start()
        // Into the stalled weights: the small files come at once, then the CDN sends 64 KiB of
        // the weights and nothing more (progress may not be reported before the stall).
        let meta = setup.folder(for: stall).appendingPathComponent(".cache/huggingface/download")
        func partials() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: meta.path)) ?? []).filter { $0.hasSuffix(".incomplete") }
        }
        try await waitUntil("the weights to start", seconds: 10) { !partials().isEmpty }
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertTrue(setup.state.isBusy, "still downloading: \(setup.state)")
        let t0 = Date()
        setup.cancel()
        XCTAssertEqual(setup.state, .idle, "idle at once")
        await setup.settle()
        let elapsed = Date().timeIntervalSince(t0)
        XCTAssertLessThan(elapsed, 3, "the download stopped \(elapsed) s after the cancel")
        XCTAssertEqual(setup.state, .idle, "no late progress overwrote the state")
        // The bytes received stay, for the next start() to continue from.
        let partial = partials()
        XCTAssertEqual(partial.count, 1, "\(partial)")
        let size = try partial.first.map {
            try FileManager.default.attributesOfItem(atPath: meta.appendingPathComponent($0).path)[.size] as? Int ?? 0
        }
        XCTAssertTrue((1...64 * 1024).contains(size ?? 0), "\(String(describing: size)) bytes kept")
    }

    @MainActor
    func testHubFailuresBecomeTypedProblemsAndRetryDownloadsAgain() async throws {
        func problem(_ repo: String, keepFreeBytes: Int64 = 0) async throws -> Problem {
            let setup = try self.setup([LocalHub.entry(repo)], keepFreeBytes: keepFreeBytes)
            setup.start()
            return try await failure(setup)
        }
        let gated = try await problem("gated")
        XCTAssertEqual(gated.kind, .needsToken)
        XCTAssertEqual(gated.message, "This model needs a Hugging Face access token.")
        let forbidden = try await problem("forbidden")
        XCTAssertEqual(forbidden.kind, .noAccess)
        let missing = try await problem("no-such-repo")
        XCTAssertEqual(missing.kind, .notFound)
        XCTAssertTrue(missing.detail.contains("smolvlm-test/no-such-repo"), missing.detail)
        // A disk too small: refused before anything is fetched, with the numbers.
        let full = try await problem("tiny", keepFreeBytes: 1 << 62)
        XCTAssertEqual(full.kind, .noSpace)
        XCTAssertGreaterThan(full.neededBytes, full.availableBytes)
        XCTAssertTrue(full.message.hasPrefix("Not enough free storage: the model needs "), full.message)

        // Corrupt bytes: refused; retry() goes through the download again (corrupted again).
        let setup = try setup([LocalHub.entry("tiny-corrupt")])
        setup.start()
        let corrupt = try await failure(setup)
        XCTAssertEqual(corrupt.kind, .corruptDownload)
        XCTAssertTrue(corrupt.detail.contains("model.safetensors"), corrupt.detail)
        let gets = try Self.hub().gets("tiny-corrupt", cdn: true).count
        let recorder = Recorder(setup.states)
        setup.retry()
        XCTAssertTrue(setup.state.isBusy)
        let again = try await failure(setup)
        let states = await recorder.stop()
        XCTAssertEqual(again.kind, .corruptDownload)
        XCTAssertTrue(states.contains { if case .downloading = $0 { return true } else { return false } }, "\(states)")
        XCTAssertGreaterThan(try Self.hub().gets("tiny-corrupt", cdn: true).count, gets, "the weights were fetched again")
    }

    @MainActor
    func testAMissingModelFileIsAProblemAndTheNextStartFetchesOnlyTheRest() async throws {
        // Only config.json is fetched: loading the folder finds no tokenizer or weights.
        let partial = LocalHub.entry("tiny", files: ["config.json"])
        let setup = try setup([partial])
        setup.start()
        let problem = try await failure(setup)
        XCTAssertEqual(problem.kind, .modelMissing, "\(problem)")
        XCTAssertEqual(problem.message, "Some of the model's files are missing. Download it again.")
        let configGets = try Self.hub().gets("tiny", cdn: false).filter { $0.hasSuffix("/config.json") }.count

        // The whole model into the same folder: what is there already is not fetched again.
        let whole = try self.setup([LocalHub.entry("tiny")], folder: setup.modelsFolder)
        whole.start()
        _ = try await ready(whole)
        XCTAssertEqual(try Self.hub().gets("tiny", cdn: false).filter { $0.hasSuffix("/config.json") }.count, configGets)
        whole.close()
    }
}

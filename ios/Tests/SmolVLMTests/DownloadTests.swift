import Foundation
import XCTest
@testable import SmolVLM
// The generated layer, for what only tests reach: object counts, a deliberate panic, raw calls.
import class SmolVLMFFI.CancelSignal
import func SmolVLMFFI.debugPanic
import func SmolVLMFFI.liveObjects
import protocol SmolVLMFFI.LoadProgressListener
import class SmolVLMFFI.SmolVlm
import enum SmolVLMFFI.SmolVlmError

/// Progress reports collected from the downloading thread.
final class ProgressBox: @unchecked Sendable {
    private var items: [DownloadProgress] = []
    private let lock = NSLock()
    func append(_ p: DownloadProgress) { lock.lock(); items.append(p); lock.unlock() }
    var all: [DownloadProgress] { lock.lock(); defer { lock.unlock() }; return items }
    /// Whether a report shows bytes of the weights file.
    var weightsStarted: Bool { all.contains { $0.file == "model.safetensors" && $0.fileBytesDone > 0 } }
}

/// The local hub (tests/hub/server.py: 127.0.0.1, its CDN on 127.0.0.2); it runs until its
/// stdin, a pipe kept open here, reaches end of file.
final class LocalHub: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    let url: String
    let tmp: URL
    var log: URL { tmp.appendingPathComponent("hub.log") }

    init(server: URL) throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("smolvlm-download-\(getpid())")
        try? FileManager.default.removeItem(at: tmp)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let errors = tmp.appendingPathComponent("hub.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        let stdout = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", server.path, "--log", tmp.appendingPathComponent("hub.log").path]
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle(forWritingAtPath: errors.path)
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        url = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard url.hasPrefix("http://") else {
            let why = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            throw SmolVLMError.internal(reason: "the local hub did not start", details: why)
        }
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: tmp)
    }

    /// Finished GETs of the CDN (the weights) for a repo.
    func cdnGets(_ repo: String) -> [[String: Any]] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }.filter {
            $0["host"] as? String == "cdn" && $0["method"] as? String == "GET"
                && ($0["path"] as? String ?? "").contains("/smolvlm-test/\(repo)/")
        }
    }

    /// ``cdnGets(_:)`` once `ok` holds for them (the hub logs a request just after it ends), or
    /// after 3 s.
    func awaitCdnGets(_ repo: String, until ok: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
        let t0 = Date()
        while !ok(cdnGets(repo)) && Date().timeIntervalSince(t0) < 3 { try await Task.sleep(nanoseconds: 20_000_000) }
        return cdnGets(repo)
    }
}

/// ``SmolVLM/download(_:progress:)`` against the local hub, with the faults it injects per repo:
/// dropped connections, corrupt bytes, 401/403/404, a stalled CDN (same coverage as the Kotlin
/// suite).
final class DownloadTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SMOLVLM_FIXTURES"] ?? "../tests/fixtures")
    static let model = fixtures.appendingPathComponent("models/tiny-smolvlm2")
    nonisolated(unsafe) static var shared: LocalHub?

    /// The hub, started on first use and stopped after the last test.
    static func hub() throws -> LocalHub {
        if let h = shared { return h }
        let h = try LocalHub(server: fixtures.appendingPathComponent("../hub/server.py").standardized)
        shared = h
        return h
    }

    override class func tearDown() {
        shared?.stop()
        shared = nil
        super.tearDown()
    }

    /// A folder for one test's download.
    static func folder(_ name: String) throws -> String { try hub().tmp.appendingPathComponent(name).path }

    static func request(
        _ repo: String, folder: String? = nil, cacheDir: String? = nil, token: String? = nil, keepFreeBytes: Int64 = 0
    ) throws -> DownloadRequest {
        DownloadRequest(
            repoId: "smolvlm-test/\(repo)", folder: folder, cacheDir: cacheDir, token: token,
            endpoint: try hub().url, keepFreeBytes: keepFreeBytes)
    }

    func sameAsFixture(_ dir: String, _ name: String) throws -> Bool {
        try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent(name)) == Data(contentsOf: DownloadTests.model.appendingPathComponent(name))
    }

    func testTinyIntoAFolderWithProgressThenLoads() async throws {
        let dir = try DownloadTests.folder("tiny")
        let box = ProgressBox()
        let path = try await SmolVLM.download(try DownloadTests.request("tiny", folder: dir)) { box.append($0) }
        XCTAssertEqual(path, dir)
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "model.safetensors"] {
            XCTAssertTrue(try sameAsFixture(path, f), f)
        }
        let seen = box.all
        XCTAssertFalse(seen.isEmpty)
        XCTAssertTrue(zip(seen, seen.dropFirst()).allSatisfy { $0.bytesDone <= $1.bytesDone }, "bytes never decrease: \(seen)")
        let last = try XCTUnwrap(seen.last)
        XCTAssertGreaterThan(last.bytesTotal, 0)
        XCTAssertEqual(last.bytesDone, last.bytesTotal)
        XCTAssertEqual(last.filesDone, last.filesTotal)
        // The downloaded model works.
        let vlm = try await SmolVLM.load(modelPath: path)
        defer { vlm.close() }
        XCTAssertTrue(vlm.info.hasVision)
        let chat = try vlm.newChat(defaults: GenerationConfig(maxTokens: 2))
        defer { chat.close() }
        let answer = try await collect(chat.ask("Hi"))
        XCTAssertFalse(answer.isEmpty)
        // Everything in place: a second call fetches nothing.
        let gets = try await DownloadTests.hub().awaitCdnGets("tiny") { !$0.isEmpty }.count
        let again = try await SmolVLM.download(try DownloadTests.request("tiny", folder: dir))
        XCTAssertEqual(again, path)
        XCTAssertEqual(try DownloadTests.hub().cdnGets("tiny").count, gets)
    }

    func testADroppedConnectionIsContinuedWithARange() async throws {
        let path = try await SmolVLM.download(try DownloadTests.request("tiny-drop", folder: try DownloadTests.folder("drop")))
        XCTAssertTrue(try sameAsFixture(path, "model.safetensors"))
        func resumed(_ gets: [[String: Any]]) -> [Int] {
            gets.compactMap { $0["range"] as? String }.compactMap { r -> Int? in
                guard r.hasPrefix("bytes="), r.hasSuffix("-") else { return nil }
                return Int(r.dropFirst("bytes=".count).dropLast())
            }.filter { $0 > 0 }
        }
        let gets = try await DownloadTests.hub().awaitCdnGets("tiny-drop") { !resumed($0).isEmpty }
        XCTAssertFalse(resumed(gets).isEmpty, "a CDN GET with range bytes=N- (N > 0): \(gets)")
    }

    func testCorruptBytesAreRefused() async throws {
        let dir = try DownloadTests.folder("corrupt")
        do {
            _ = try await SmolVLM.download(try DownloadTests.request("tiny-corrupt", folder: dir))
            XCTFail("downloaded corrupt bytes")
        } catch SmolVLMError.integrityFailed(let reason) {
            XCTAssertTrue(reason.contains("model.safetensors"), reason)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model.safetensors"), "nothing under the final name")
    }

    func testAnUnknownRepoIsNotFound() async throws {
        do {
            _ = try await SmolVLM.download(try DownloadTests.request("no-such-repo", folder: try DownloadTests.folder("unknown")))
            XCTFail("found")
        } catch SmolVLMError.notFound(let reason) {
            XCTAssertTrue(reason.contains("smolvlm-test/no-such-repo"), reason)
        }
    }

    func testAGatedRepoNeedsTheToken() async throws {
        let dir = try DownloadTests.folder("gated")
        do { _ = try await SmolVLM.download(try DownloadTests.request("gated", folder: dir)); XCTFail() } catch SmolVLMError.unauthorized { }
        do { _ = try await SmolVLM.download(try DownloadTests.request("gated", folder: dir, token: "hf_wrong")); XCTFail() } catch SmolVLMError.forbidden { }
        let path = try await SmolVLM.download(try DownloadTests.request("gated", folder: dir, token: "hf_test_token"))
        XCTAssertTrue(try sameAsFixture(path, "model.safetensors"))
        let gets = try await DownloadTests.hub().awaitCdnGets("gated") { !$0.isEmpty }
        XCTAssertFalse(gets.isEmpty)
        XCTAssertTrue(gets.allSatisfy { $0["authorization"] is NSNull }, "the token never goes to the CDN: \(gets)")
    }

    func testCancellingTheTaskStopsAStalledDownload() async throws {
        let dir = try DownloadTests.folder("stall")
        let box = ProgressBox()
        let task = Task { try await SmolVLM.download(try DownloadTests.request("tiny-stall", folder: dir)) { box.append($0) } }
        let t0 = Date()
        while !box.weightsStarted && Date().timeIntervalSince(t0) < 1.5 { try await Task.sleep(nanoseconds: 10_000_000) }
        let t = Date()
        task.cancel()
        let result = await task.result
        let elapsed = Date().timeIntervalSince(t)
        XCTAssertLessThan(elapsed, 1.0, "the task ended \(elapsed) s after the cancel")
        switch result {
        case .success(let p): XCTFail("the stalled download finished: \(p)")
        case .failure(let e): XCTAssertTrue(e is CancellationError, "got \(e)")
        }
        // The bytes received (the CDN sent 64 KiB before it stalled) stay for the next call.
        let meta = dir + "/.cache/huggingface/download"
        let partial = try FileManager.default.contentsOfDirectory(atPath: meta).filter {
            $0.hasPrefix("model.safetensors.") && $0.hasSuffix(".incomplete")
        }
        XCTAssertEqual(partial.count, 1, "\(partial)")
        let size = try partial.first.map { try FileManager.default.attributesOfItem(atPath: meta + "/" + $0)[.size] as? Int ?? 0 }
        XCTAssertTrue((1...64 * 1024).contains(size ?? 0), "\(String(describing: size)) bytes kept")
    }

    func testKeepFreeBytesRefusesToFillTheDisk() async throws {
        let dir = try DownloadTests.folder("full")
        do {
            _ = try await SmolVLM.download(try DownloadTests.request("tiny", folder: dir, keepFreeBytes: 1 << 62))
            XCTFail("downloaded")
        } catch SmolVLMError.insufficientSpace(let needed, let available, _) {
            XCTAssertGreaterThan(needed, available)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model.safetensors"), "checked before anything is fetched")
    }

    func testTwoDownloadsIntoOneCacheAtOnce() async throws {
        let cache = try DownloadTests.folder("cache")
        let paths = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<2 { group.addTask { try await SmolVLM.download(try DownloadTests.request("tiny", cacheDir: cache)) } }
            var all: [String] = []
            for try await p in group { all.append(p) }
            return all
        }
        XCTAssertEqual(paths.count, 2)
        XCTAssertEqual(paths[0], paths[1])
        XCTAssertTrue(paths[0].hasPrefix(cache + "/models--smolvlm-test--tiny/snapshots/"), paths[0])
        XCTAssertTrue(try sameAsFixture(paths[0], "model.safetensors"))
    }

    func testRequestsAreCheckedAndTheCatalogIsListed() async throws {
        do {
            _ = try await SmolVLM.download(try DownloadTests.request("tiny", folder: try DownloadTests.folder("a"), cacheDir: try DownloadTests.folder("b")))
            XCTFail()
        } catch SmolVLMError.invalidArgument { }
        let catalog = SmolVLM.catalog
        let small = try XCTUnwrap(catalog.first { $0.repoId == "HuggingFaceTB/SmolVLM-256M-Instruct" })
        XCTAssertEqual(small.format, .safetensors)
        XCTAssertEqual(small.precision, .q8)
        XCTAssertGreaterThan(small.downloadBytes, 400_000_000)
        XCTAssertTrue(catalog.filter { $0.format == .ggufPair }.allSatisfy { $0.files.count == 2 })
        XCTAssertTrue(catalog.contains { $0.video })
    }
}

import Foundation
import SampleState
import SmolVLM
import XCTest

/// The repository's test fixtures (`SMOLVLM_FIXTURES`, else found from this package's folder).
let fixtures: URL = {
    if let dir = ProcessInfo.processInfo.environment["SMOLVLM_FIXTURES"] { return URL(fileURLWithPath: dir) }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../tests/fixtures").standardized
}()

/// The tiny random-weight SmolVLM2 the tests run on (8 MB; it answers nonsense, quickly).
let tinyModel = fixtures.appendingPathComponent("models/tiny-smolvlm2")

/// A fresh folder under the temporary directory, removed by `tearDown` of the test that asks.
func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("smolvlm-sample-\(getpid())-\(name)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

struct Timeout: Error, CustomStringConvertible {
    let description: String
}

/// Polls `probe` on the main actor (other main-actor work runs between polls) until it returns
/// a value, or throws after `seconds`.
@MainActor
func waitFor<T>(_ what: String, seconds: Double = 20, _ probe: () -> T?) async throws -> T {
    let end = Date().addingTimeInterval(seconds)
    while true {
        if let value = probe() { return value }
        if Date() > end { throw Timeout(description: "timed out after \(seconds) s waiting for \(what)") }
        try await Task.sleep(nanoseconds: 5_000_000)
    }
}

/// Polls `condition` like ``waitFor(_:seconds:_:)``.
@MainActor
func waitUntil(_ what: String, seconds: Double = 20, _ condition: () -> Bool) async throws {
    _ = try await waitFor(what, seconds: seconds) { condition() ? true : nil }
}

/// Every value a state stream yields, collected on the main actor until ``stop()``.
@MainActor
final class Recorder<Value: Sendable> {
    private(set) var values: [Value] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<Value>) {
        task = Task { [weak self] in
            for await value in stream { self?.values.append(value) }
        }
    }

    /// Stops recording (after letting the values already sent arrive) and returns them.
    func stop() async -> [Value] {
        await Task.yield()
        try? await Task.sleep(nanoseconds: 20_000_000)
        task?.cancel()
        task = nil
        return values
    }
}

// MARK: - Frames

enum Frames {
    static let width = 160
    static let height = 120

    /// A 160×120 RGBA frame: a bright bar on a dark gradient, `step` pixels from the left edge
    /// (so that frames differ and none is skipped as unchanged).
    static func data(_ step: Int) -> Data {
        let (w, h) = (width, height)
        var d = Data(count: w * h * 4)
        d.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) in
            for y in 0..<h {
                for x in 0..<w {
                    let lit = (x + w - step % w) % w < 40
                    let v = lit ? 230 : 20 + y / 4
                    let i = (y * w + x) * 4
                    p[i] = UInt8(v); p[i + 1] = UInt8(v / 2); p[i + 2] = UInt8(255 - v); p[i + 3] = 255
                }
            }
        }
        return d
    }

    static func frame(_ step: Int) throws -> ImageInput {
        try .frame(data(step), format: .rgba8888, width: width, height: height)
    }
}

/// The camera: a thread that calls ``LiveCaptioning/push(timestampMs:_:)`` every `periodMs`,
/// as AVFoundation's capture queue would, until ``stop()``. Counts the frames the captioning
/// asked it to make (only those it takes are made).
final class FakeCamera: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var made = 0
    private var pushed = 0
    private let finished = DispatchSemaphore(value: 0)

    init(_ captioning: LiveCaptioning, periodMs: Int = 33) {
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            var n = 0
            while !isStopped {
                n += 1
                let step = n
                let taken = captioning.push(timestampMs: Int64(n * periodMs)) {
                    self.count { $0.made += 1 }
                    return try Frames.frame(step * 7)
                }
                if taken { count { $0.pushed += 1 } }
                Thread.sleep(forTimeInterval: Double(periodMs) / 1000)
            }
        }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
    private func count(_ change: (FakeCamera) -> Void) { lock.lock(); change(self); lock.unlock() }

    /// Frames the captioning had made (the copy a real camera would pay for).
    var framesMade: Int { lock.lock(); defer { lock.unlock() }; return made }
    /// Frames pushed into an open loop.
    var framesPushed: Int { lock.lock(); defer { lock.unlock() }; return pushed }

    /// Stops the thread and waits for it.
    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        finished.wait()
    }
}

// MARK: - The local hub

/// The local stand-in for the Hugging Face hub (tests/hub/server.py: 127.0.0.1, its CDN on
/// 127.0.0.2), serving the tiny model as `smolvlm-test/<fault>` with the fault its name asks
/// for. It runs until its stdin, a pipe kept open here, reaches end of file.
final class LocalHub: @unchecked Sendable {
    let url: String
    private let process = Process()
    private let stdin = Pipe()
    private let log: URL
    private let folder: URL

    init() throws {
        folder = try temporaryFolder("hub")
        log = folder.appendingPathComponent("hub.log")
        let errors = folder.appendingPathComponent("hub.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        let stdout = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent("../hub/server.py").standardized.path, "--log", log.path]
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
            throw Timeout(description: "the local hub did not start: \((try? String(contentsOf: errors, encoding: .utf8)) ?? "")")
        }
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: folder)
    }

    /// Finished GET requests for `repo`'s files (`cdn`: the weights' host, else the main host),
    /// from the hub's log.
    func gets(_ repo: String, cdn: Bool) -> [String] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line -> String? in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                entry["method"] as? String == "GET", (entry["host"] as? String == "cdn") == cdn,
                let path = entry["path"] as? String, path.contains("/smolvlm-test/\(repo)/")
            else { return nil }
            return path
        }
    }

    /// A catalog entry for the hub's `smolvlm-test/<repo>`: the tiny model as a safetensors
    /// checkpoint (only `files`, if given).
    static func entry(_ repo: String, files: [String] = []) -> CatalogModel {
        let size = (try? FileManager.default.contentsOfDirectory(at: tinyModel, includingPropertiesForKeys: [.fileSizeKey]))?
            .compactMap { try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize }.reduce(0, +) ?? 0
        return CatalogModel(
            name: "test \(repo)", repoId: "smolvlm-test/\(repo)", format: .safetensors, files: files,
            parameters: 1_000_000, downloadBytes: Int64(size), sizeConfirmed: true, precision: .f32,
            memoryBytes: 64 << 20, video: false)
    }
}

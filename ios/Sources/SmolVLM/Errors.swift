import Foundation
internal import SmolVLMFFI

/// Why a call failed. Every case carries a readable `reason`; ``description`` and
/// `localizedDescription` give it.
///
/// Cancelling the Swift task that awaits a call throws Swift's `CancellationError` instead of
/// ``cancelled``, which is for answers stopped by ``Chat/cancel()``, a closed chat or camera.
public enum SmolVLMError: Error, Equatable, Hashable, Sendable, CustomStringConvertible, LocalizedError {
    /// The model folder or one of its files does not exist (wrong path, files not downloaded).
    case modelMissing(reason: String)
    /// A model file exists but is unreadable or malformed (truncated download, wrong checkpoint).
    case modelInvalid(reason: String)
    /// An image could not be decoded or its pixels do not match its size and strides.
    case invalidImage(reason: String)
    /// An argument is out of range or inconsistent, or the object is in the wrong state for the
    /// call (closed, or still streaming an answer).
    case invalidArgument(reason: String)
    /// The conversation (plus one generated token) does not fit the model's context: `tokens`
    /// needed, `limit` available. Open a new chat, `reset()` this one, or send smaller images.
    case contextOverflow(tokens: Int64, limit: Int64, reason: String)
    /// The model would not fit the memory the OS says is available (`needed` and `available`
    /// bytes), checked before loading: use a smaller precision or a shorter context length. See
    /// ``SmolVLM/estimateMemory(modelPath:options:)``.
    case insufficientMemory(needed: Int64, available: Int64, reason: String)
    /// The answer or download was stopped (`cancel()`, the chat or camera closed) before it
    /// finished.
    case cancelled
    /// Download: the repo, revision or a file does not exist on the hub (HTTP 404), or the repo
    /// lacks a file the engine needs.
    case notFound(reason: String)
    /// Download: the hub asks for a token (HTTP 401): a gated or private repo and no valid
    /// token.
    case unauthorized(reason: String)
    /// Download: the token has no access (HTTP 403): accept the repo's terms on the hub, or use
    /// a token with read access.
    case forbidden(reason: String)
    /// Download: a file's size or SHA-256 differs from the hub's. Nothing is kept under its
    /// name; downloading again starts that file over.
    case integrityFailed(reason: String)
    /// Download: not enough free space (`needed` bytes, `available` free), checked before
    /// anything is fetched; or the disk filled up.
    case insufficientSpace(needed: Int64, available: Int64, reason: String)
    /// Download: the hub could not be reached or kept failing after retries. Partial files stay:
    /// download again later to continue.
    case networkFailed(reason: String)
    /// Download: writing the destination failed (permissions, a read-only file system).
    case storageFailed(reason: String)
    /// A bug or an unexpected failure inside the library (a caught Rust panic included), with
    /// technical `details` for a bug report.
    case `internal`(reason: String, details: String)

    /// The readable sentence of every case.
    public var reason: String {
        switch self {
        case .modelMissing(let r), .modelInvalid(let r), .invalidImage(let r), .invalidArgument(let r),
            .notFound(let r), .unauthorized(let r), .forbidden(let r), .integrityFailed(let r),
            .networkFailed(let r), .storageFailed(let r):
            return r
        case .contextOverflow(_, _, let r), .insufficientSpace(_, _, let r), .insufficientMemory(_, _, let r),
            .internal(let r, _):
            return r
        case .cancelled:
            return "cancelled"
        }
    }

    /// ``reason``.
    public var description: String { reason }

    /// ``reason``, for `localizedDescription`.
    public var errorDescription: String? { reason }
}

extension SmolVLMError {
    init(_ ffi: SmolVlmError) {
        switch ffi {
        case .ModelMissing(let reason): self = .modelMissing(reason: reason)
        case .ModelInvalid(let reason): self = .modelInvalid(reason: reason)
        case .InvalidImage(let reason): self = .invalidImage(reason: reason)
        case .InvalidArgument(let reason): self = .invalidArgument(reason: reason)
        case .ContextOverflow(let tokens, let limit, let reason):
            self = .contextOverflow(tokens: tokens, limit: limit, reason: reason)
        case .InsufficientMemory(let needed, let available, let reason):
            self = .insufficientMemory(needed: needed, available: available, reason: reason)
        case .Cancelled: self = .cancelled
        case .NotFound(let reason): self = .notFound(reason: reason)
        case .Unauthorized(let reason): self = .unauthorized(reason: reason)
        case .Forbidden(let reason): self = .forbidden(reason: reason)
        case .IntegrityFailed(let reason): self = .integrityFailed(reason: reason)
        case .InsufficientSpace(let needed, let available, let reason):
            self = .insufficientSpace(needed: needed, available: available, reason: reason)
        case .NetworkFailed(let reason): self = .networkFailed(reason: reason)
        case .StorageFailed(let reason): self = .storageFailed(reason: reason)
        case .Internal(let reason, let details): self = .internal(reason: reason, details: details)
        }
    }

    /// Any error a generated call throws: the library's own, or uniffi's (a caught Rust panic,
    /// a value it could not read) as ``internal(reason:details:)``.
    init(any error: Error) {
        if let e = error as? SmolVLMError {
            self = e
        } else if let e = error as? SmolVlmError {
            self.init(e)
        } else {
            self = .internal(reason: "the native library failed: \(error)", details: String(reflecting: error))
        }
    }
}

/// Runs a call into the generated bindings, throwing what it throws as a ``SmolVLMError``.
func native<T>(_ call: () throws -> T) throws(SmolVLMError) -> T {
    do {
        return try call()
    } catch {
        throw SmolVLMError(any: error)
    }
}

import Foundation
import SmolVLM

/// What went wrong, in terms a screen can explain: a ``Kind`` that picks the advice, the
/// library's own sentence for a second line or a bug report, and the byte counts of a full disk.
///
/// Made from any error with ``init(_:)``: the library's typed `SmolVLMError` cases map to their
/// kinds, anything else is ``Kind/unexpected``.
public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kinds of problem the sample tells apart, each with its own advice to the user.
    public enum Kind: String, Sendable, CaseIterable {
        /// Not enough free storage for the download: free some space, or pick a smaller model.
        case noSpace
        /// The model would not fit the memory the app may use: pick a smaller precision or model.
        case noMemory
        /// The hub could not be reached (offline, timeouts, server errors): try again later.
        case network
        /// The hub has no such model or file.
        case notFound
        /// The model is gated or private: it needs a Hugging Face token.
        case needsToken
        /// The token has no access to the model.
        case noAccess
        /// A downloaded file failed its size or SHA-256 check (it was deleted; retrying starts
        /// it over).
        case corruptDownload
        /// Writing to the app's storage failed.
        case storage
        /// A model file is missing: the download did not finish, or files were deleted.
        case modelMissing
        /// A model file is unreadable or not a SmolVLM checkpoint.
        case modelInvalid
        /// A camera frame could not be read (a pixel format or size the library does not take).
        case badFrame
        /// The question does not fit the model's context.
        case tooLong
        /// Anything else: a bug, or the model closed under the screen.
        case unexpected
    }

    /// What the screen says (see ``message``).
    public let kind: Kind
    /// The library's sentence (it names the file, the repo, the HTTP status).
    public let detail: String
    /// The space a download needs (``Kind/noSpace``) or the memory a model needs
    /// (``Kind/noMemory``); 0 otherwise.
    public let neededBytes: Int64
    /// The space free, or the memory available; 0 otherwise.
    public let availableBytes: Int64

    public init(kind: Kind, detail: String, neededBytes: Int64 = 0, availableBytes: Int64 = 0) {
        self.kind = kind
        self.detail = detail
        self.neededBytes = neededBytes
        self.availableBytes = availableBytes
    }

    /// This failure as a problem: the library's typed errors by kind, anything else
    /// ``Kind/unexpected`` with its description.
    public init(_ error: any Error) {
        if let problem = error as? Problem {
            self = problem
            return
        }
        guard let e = error as? SmolVLMError else {
            self.init(kind: .unexpected, detail: String(describing: error))
            return
        }
        switch e {
        case .insufficientSpace(let needed, let available, let reason):
            self.init(kind: .noSpace, detail: reason, neededBytes: needed, availableBytes: available)
        case .insufficientMemory(let needed, let available, let reason):
            self.init(kind: .noMemory, detail: reason, neededBytes: needed, availableBytes: available)
        case .networkFailed(let reason): self.init(kind: .network, detail: reason)
        case .notFound(let reason): self.init(kind: .notFound, detail: reason)
        case .unauthorized(let reason): self.init(kind: .needsToken, detail: reason)
        case .forbidden(let reason): self.init(kind: .noAccess, detail: reason)
        case .integrityFailed(let reason): self.init(kind: .corruptDownload, detail: reason)
        case .storageFailed(let reason): self.init(kind: .storage, detail: reason)
        case .modelMissing(let reason): self.init(kind: .modelMissing, detail: reason)
        case .modelInvalid(let reason): self.init(kind: .modelInvalid, detail: reason)
        case .invalidImage(let reason): self.init(kind: .badFrame, detail: reason)
        case .contextOverflow(_, _, let reason): self.init(kind: .tooLong, detail: reason)
        case .invalidArgument(let reason): self.init(kind: .unexpected, detail: reason)
        case .cancelled: self.init(kind: .unexpected, detail: "cancelled")
        case .internal(let reason, let details): self.init(kind: .unexpected, detail: "\(reason) (\(details))")
        }
    }

    /// One sentence for the user: what happened and what to do about it. (The app would look
    /// these up in its string catalog by ``Kind``; the sample keeps them in English here so that
    /// they are tested.)
    public var message: String {
        switch kind {
        case .noSpace:
            let needed = Self.size(neededBytes), free = Self.size(availableBytes)
            return "Not enough free storage: the model needs \(needed) and \(free) is free. Free some space or pick a smaller model."
        case .noMemory:
            let needed = Self.size(neededBytes), free = Self.size(availableBytes)
            return "Not enough memory: the model needs \(needed) and \(free) is available. Pick a smaller precision or model."
        case .network:
            return "The model server could not be reached. Check the connection and try again; the download continues where it stopped."
        case .notFound:
            return "The model server has no such model."
        case .needsToken:
            return "This model needs a Hugging Face access token."
        case .noAccess:
            return "Your Hugging Face token has no access to this model. Accept its terms on the hub first."
        case .corruptDownload:
            return "A downloaded file was damaged and has been deleted. Try again to download it anew."
        case .storage:
            return "The model could not be saved on this device."
        case .modelMissing:
            return "Some of the model's files are missing. Download it again."
        case .modelInvalid:
            return "The model's files are damaged or not a SmolVLM model. Download it again."
        case .badFrame:
            return "A camera frame could not be read."
        case .tooLong:
            return "The question is too long for the model. Ask a shorter one."
        case .unexpected:
            return "Something went wrong inside the app."
        }
    }

    public var description: String { "\(kind): \(detail)" }

    /// Bytes as a short size for people: "512 KB", "1.2 GB" (decimal units, as the Files app
    /// shows them).
    public static func size(_ bytes: Int64) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(max(bytes, 0))
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(Int(value)) bytes" }
        let rounded = value < 10 ? (value * 10).rounded() / 10 : value.rounded()
        let text = rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
        return "\(text) \(units[unit])"
    }
}

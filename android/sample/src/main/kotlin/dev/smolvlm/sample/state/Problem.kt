package dev.smolvlm.sample.state

import dev.smolvlm.ffi.SmolVlmException

/**
 * What went wrong, in terms a screen can explain.
 *
 * @property kind what the screen says: it picks its own (translatable) sentence per kind.
 * @property detail the library's sentence (names the file, the repo, the HTTP status), for a
 *   second line or a bug report.
 * @property neededBytes the space a download needs ([ProblemKind.NO_SPACE]) or the memory a
 *   model needs ([ProblemKind.NO_MEMORY]); 0 otherwise.
 * @property availableBytes the space free, or the memory available; 0 otherwise.
 */
data class Problem(
    val kind: ProblemKind,
    val detail: String,
    val neededBytes: Long = 0,
    val availableBytes: Long = 0,
)

/** The kinds of [Problem] the sample tells apart, each with its own advice to the user. */
enum class ProblemKind {
    /** Not enough free storage for the download: free some space, or pick a smaller model. */
    NO_SPACE,

    /** The model would not fit the memory the app may use: pick a smaller precision or model. */
    NO_MEMORY,

    /** The hub could not be reached (offline, timeouts, server errors): try again later. */
    NETWORK,

    /** The hub has no such model or file. */
    NOT_FOUND,

    /** The model is gated or private: it needs a Hugging Face token. */
    NEEDS_TOKEN,

    /** The token has no access to the model. */
    NO_ACCESS,

    /** A downloaded file failed its size or SHA-256 check (deleted; retrying starts it over). */
    CORRUPT_DOWNLOAD,

    /** Writing to the app's storage failed. */
    STORAGE,

    /** A model file is missing: the download did not finish, or files were deleted. */
    MODEL_MISSING,

    /** A model file is unreadable or not a SmolVLM checkpoint. */
    MODEL_INVALID,

    /** A camera frame could not be read (a format or size the library does not take). */
    BAD_FRAME,

    /** The question does not fit the model's context. */
    TOO_LONG,

    /** Anything else: a bug, or the model closed under the screen. */
    UNEXPECTED,
}

/** This failure as a [Problem]: the library's typed errors by kind, anything else [ProblemKind.UNEXPECTED]. */
fun Throwable.toProblem(): Problem = when (this) {
    is SmolVlmException.InsufficientSpace -> Problem(ProblemKind.NO_SPACE, reason, needed, available)
    is SmolVlmException.InsufficientMemory -> Problem(ProblemKind.NO_MEMORY, reason, needed, available)
    is SmolVlmException.NetworkFailed -> Problem(ProblemKind.NETWORK, reason)
    is SmolVlmException.NotFound -> Problem(ProblemKind.NOT_FOUND, reason)
    is SmolVlmException.Unauthorized -> Problem(ProblemKind.NEEDS_TOKEN, reason)
    is SmolVlmException.Forbidden -> Problem(ProblemKind.NO_ACCESS, reason)
    is SmolVlmException.IntegrityFailed -> Problem(ProblemKind.CORRUPT_DOWNLOAD, reason)
    is SmolVlmException.StorageFailed -> Problem(ProblemKind.STORAGE, reason)
    is SmolVlmException.ModelMissing -> Problem(ProblemKind.MODEL_MISSING, reason)
    is SmolVlmException.ModelInvalid -> Problem(ProblemKind.MODEL_INVALID, reason)
    is SmolVlmException.InvalidImage -> Problem(ProblemKind.BAD_FRAME, reason)
    is SmolVlmException.ContextOverflow -> Problem(ProblemKind.TOO_LONG, reason)
    is SmolVlmException.InvalidArgument -> Problem(ProblemKind.UNEXPECTED, reason)
    is SmolVlmException.Internal -> Problem(ProblemKind.UNEXPECTED, "$reason ($details)")
    else -> Problem(ProblemKind.UNEXPECTED, message ?: javaClass.simpleName)
}

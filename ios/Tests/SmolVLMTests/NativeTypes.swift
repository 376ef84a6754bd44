// Generated-layer types whose names the public API reuses, under names of their own (the other
// test files import only single declarations of SmolVLMFFI, which cannot qualify these).
import SmolVLMFFI

/// The generated `LoadStage`, which the raw `SmolVlm.load` listener receives.
typealias NativeLoadStage = SmolVLMFFI.LoadStage

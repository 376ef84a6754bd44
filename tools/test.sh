#!/usr/bin/env bash
# The project's test command (README, .ci/run): every suite, with a summary line per suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# House rules: formatting, clippy without warnings, and the module graph (no import cycle; the
# compute layer, core/src/kernels, uses nothing of the model, engine, processor, prompt or chat).
cargo fmt --all --check
CARGO_INCREMENTAL=0 cargo clippy --workspace --all-targets --locked -- -D warnings
python3 tools/module_deps.py
# The real-weight test (core/tests/real_weights.rs) needs the SmolLM2 GGUF in .cache/.
bash tools/fetch_smollm2.sh
# No incremental state: CI builds once, and it would double the size of target/.
CARGO_INCREMENTAL=0 cargo test --workspace --locked
# Kotlin (JVM) and Swift (XCTest, Swift 6 chroot) suites of the bindings; each prints N passed, N failed.
# On a fresh machine the Swift chroot (.cache/swift-root) is made first: about 2 minutes.
bash tools/test_bindings.sh
# aarch64: the core's unit and quantized tests under qemu as cortex-a53 (no dotprod), cortex-a76
# and max, plus type-checks for Android and iOS (tools/test_aarch64.sh).
bash tools/test_aarch64.sh

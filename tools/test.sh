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
# `smolvlm ask --video` decodes with the ffmpeg programs: its CLI test compares a decoded clip
# with the same frames as PNGs (installed with apt-get when missing, as root; without ffmpeg the
# test checks the missing-program error instead).
if ! command -v ffmpeg >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; } \
        || echo "ffmpeg: apt-get install failed" >&2
fi
# No incremental state: CI builds once, and it would double the size of target/.
CARGO_INCREMENTAL=0 cargo test --workspace --locked
# One Hugging Face cache for Python and the SDK: huggingface_hub (pinned, in .cache/venv-hub)
# and `smolvlm download` find each other's downloads (tests/hub/interop.py, local hub server).
[ -x .cache/venv-hub/bin/python ] || python3 -m venv .cache/venv-hub
.cache/venv-hub/bin/pip install -q --disable-pip-version-check -r tests/hub/requirements.txt
python3 tests/hub/interop.py .cache/venv-hub/bin/python target/debug/smolvlm
# Kotlin (JVM) and Swift (XCTest, Swift 6 chroot) suites of the bindings; each prints N passed, N failed.
# On a fresh machine the Swift chroot (.cache/swift-root) is made first: about 2 minutes.
bash tools/test_bindings.sh
# aarch64: the core's unit and quantized tests under qemu as cortex-a53 (no dotprod) and max; the
# Android FFI library linked against stub bionic and inspected (tools/test_android_native.sh); the
# iOS static libraries and XCFramework built and inspected (tools/test_ios_native.sh).
bash tools/test_aarch64.sh

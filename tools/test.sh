#!/usr/bin/env bash
# The project's test command (README, .ci/run): every suite, with a summary line per suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# The real-weight test (core/tests/real_weights.rs) needs the SmolLM2 GGUF in .cache/.
bash tools/fetch_smollm2.sh
cargo test --workspace --locked

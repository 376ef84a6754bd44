#!/usr/bin/env bash
# The project's test command (README, .ci/run): every suite, with a summary line per suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked

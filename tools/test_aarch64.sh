#!/usr/bin/env bash
# aarch64 checks (issues 3 and 5), part of the test command (tools/test.sh):
# - the core's unit tests and quantized-model tests (core/tests/quant.rs) built for aarch64 Linux
#   and run under qemu user-mode emulation with two CPU models: cortex-a53 (ARMv8.0, no dotprod:
#   the plain-NEON kernels must be chosen) and max (every extension: dotprod, FP16, i8mm, SVE; the
#   kernels a phone's cortex-a76-class core gets, which is why a separate cortex-a76 run, the
#   same code path at ~5 minutes of CI, was dropped). Each
#   run asserts which kernel set was chosen (SMOLVLM_EXPECT_KERNELS) and the same tolerances as on
#   x86_64;
# - the FFI library for Android (aarch64-linux-android), built and linked against stub bionic
#   libraries and inspected (tools/test_android_native.sh: 16 KB pages, SONAME, exports, the
#   Kotlin bindings generated from it);
# - the FFI static libraries for iOS (aarch64-apple-ios with candle's Metal backend, and the
#   simulators) and the XCFramework made of them (tools/test_ios_native.sh).
# Tools come from Debian (cross gcc, qemu-user) and rustup; a target rustup cannot add is skipped
# with a message. Prints one `aarch64 <cpu>: N passed, N failed` line per CPU model, one
# `Android native: N passed, N failed` line and one `iOS native: N passed, N failed` line.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null; } ||
            echo "aarch64: apt-get install failed"
    fi
fi
add_target() {
    command -v rustup >/dev/null && rustup target add "$1" >/dev/null 2>&1 && return 0
    echo "SKIPPED: rustup target add $1 failed"
    return 1
}
status=0
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "SKIPPED: aarch64 tests (no aarch64-linux-gnu-gcc / qemu-aarch64)"
elif add_target aarch64-unknown-linux-gnu; then
    # Release profile: emulated code runs ~10x slower than native (~15x more in debug).
    run=(cargo test -p smolvlm --release --locked --target aarch64-unknown-linux-gnu --lib --test quant)
    "${run[@]}" --no-run 2>&1 | grep -vE "^\s+(Compiling|Executable)" || true
    for spec in cortex-a53:neon max:neon-dotprod; do
        cpu=${spec%%:*}
        log=$(mktemp)
        QEMU_CPU=$cpu SMOLVLM_EXPECT_KERNELS=${spec#*:} "${run[@]}" --no-fail-fast >"$log" 2>&1 || status=1
        grep -E "^test .*FAILED|panicked|^failures:" "$log" | head -20 || true
        passed=$(grep -oE "test result: .* ([0-9]+) passed" "$log" | grep -oE "[0-9]+ passed" | awk '{s+=$1} END {print s+0}')
        failed=$(grep -oE "[0-9]+ failed" "$log" | awk '{s+=$1} END {print s+0}')
        [ "$passed" -gt 0 ] || { failed=$((failed + 1)); tail -20 "$log"; status=1; }
        echo "aarch64 $cpu: $passed passed, $failed failed"
        rm -f "$log"
    done
fi
# Android: the FFI library built and linked for arm64 Android against stub bionic libraries, its
# 16 KB pages, SONAME and exports, and the Kotlin bindings generated from it (the build subsumes a
# type-check of the core; tools/test_android_native.sh adds the target and prints its own line).
bash tools/test_android_native.sh || status=1
# iOS: the FFI static library for aarch64-apple-ios with `--features metal` (a build of
# smolvlm-ffi and the core with candle's Metal backend: it subsumes `cargo check -p smolvlm(-ffi)
# --target aarch64-apple-ios --features metal`) and for the two simulator targets, joined into
# the XCFramework by tools/build_xcframework.sh's Linux mode and inspected: Mach-O CPUs and
# platforms, exports, frameworks, Info.plist, bindings, zip and checksum (prints its own line).
bash tools/test_ios_native.sh || status=1
echo "aarch64 steps: $((SECONDS - t0)) s"
exit $status

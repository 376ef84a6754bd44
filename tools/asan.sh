#!/usr/bin/env bash
# AddressSanitizer run (nightly, -Zsanitizer=address) of the tests that exercise this crate's
# unsafe code and its parsers of untrusted input: the quantized kernels and tiles, the weight
# memory, the decode pool and decode attention, the model loaders (safetensors and GGUF,
# including the crafted tensor tables), and the JPEG decoder. Run by hand (see SECURITY.md);
# prints `asan: N passed, N failed`.
#
# The instrumented build lives in target/asan (std itself is not instrumented: no -Zbuild-std).
# allocator_may_return_null: the tests ask for impossible sizes and expect an error, which ASan's
# allocator would otherwise report as a fatal "allocation-size-too-big".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup run nightly rustc -V >/dev/null 2>&1; then
    echo "SKIPPED: asan (no nightly toolchain)"
    exit 0
fi
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0"
export CARGO_INCREMENTAL=0
run=(cargo +nightly test --locked -p smolvlm --target "$host" --target-dir target/asan)
log=$(mktemp)
status=0
{
    "${run[@]}" --lib -- kernels:: model:: processor::jpeg gguf
    "${run[@]}" --test gguf --test quant --test model
} >"$log" 2>&1 || status=1
grep -E "ERROR: AddressSanitizer|^SUMMARY|^test .*FAILED|panicked" "$log" | head -40 || true
passed=$(grep -oE "test result: .* ([0-9]+) passed" "$log" | grep -oE "[0-9]+ passed" | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE "[0-9]+ failed" "$log" | awk '{s+=$1} END {print s+0}')
if grep -q "ERROR: AddressSanitizer" "$log"; then
    status=1
fi
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then
    tail -30 "$log"
    failed=1
fi
echo "asan: $passed passed, $failed failed"
rm -f "$log"
exit $status

#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/, FUZZING.md) for SECONDS each (default 60) and prints a
# table: target, executions, seconds, exec/s, coverage (libFuzzer's final cov/ft), crashes
# (with timeouts and out-of-memory runs), crash files written.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_RUNS=1000000 tools/fuzz.sh 1800   # each target until 1M executions or 30 minutes
#
# Installs cargo-fuzz (from crates.io) and the nightly toolchain when missing, seeds the corpora
# (fuzz/seeds.py: tests/fixtures plus the committed regression inputs of tests/fixtures/fuzz/),
# builds the targets once (AddressSanitizer, debug assertions and overflow checks on), then runs
# each with -max_total_time=SECONDS -rss_limit_mb=2048 -timeout=10 in libFuzzer's fork mode (a
# crash is saved and fuzzing goes on). Corpora grow in fuzz/corpus/, crash inputs land in
# fuzz/artifacts/<target>/, logs in fuzz/logs/ (all ignored by git). Exits 1 when any target
# crashed (a panic, a sanitizer report, a timeout over 10 s or more than 2 GB of memory).
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
# FUZZ_RUNS: stop a target once it has run this many inputs (libFuzzer's -runs), even before
# SECONDS; unset, each target runs for SECONDS.
RUNS=${FUZZ_RUNS:--1}
shift || true
ALL=(image_decode camera_frame gguf safetensors configs chat_template messages tokenizer)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

python3 fuzz/seeds.py fuzz/corpus

start=$(date +%s)
cargo +nightly fuzz build
echo "build: $(( $(date +%s) - start )) s"

# Scratch folders the targets leave behind (fuzz_targets.rs: smolvlm-fuzz-<pid>-<n>), of
# processes that are gone.
clean_scratch() {
    local d pid
    for d in /dev/shm/smolvlm-fuzz-* "${TMPDIR:-/tmp}"/smolvlm-fuzz-*; do
        [ -e "$d" ] || continue
        pid=${d##*/smolvlm-fuzz-}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || rm -rf "$d"
    done
}

mkdir -p fuzz/logs
rows=()
failed=0
for t in "${TARGETS[@]}"; do
    log=fuzz/logs/$t.log
    mkdir -p "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "== $t (${SECONDS_EACH} s)"
    # Fork mode: a crash (or timeout, or out-of-memory) is saved and counted, and fuzzing goes
    # on in a fresh process, so one known crash does not end a target's run.
    set +e
    cargo +nightly fuzz run "$t" -- -max_total_time="$SECONDS_EACH" -runs="$RUNS" -rss_limit_mb=2048 -timeout=10 \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 >"$log" 2>&1
    rc=$?
    set -e
    clean_scratch
    after=$(find "fuzz/artifacts/$t" -type f | wc -l)
    # The last status line: "#N: cov: C ft: F corp: K exec/s: R oom/timeout/crash: O/T/X time: Ss".
    stat=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -1 || true)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$stat")
    secs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$stat")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stat")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stat")
    oom_to_crash=$(sed -nE 's/.* oom\/timeout\/crash: ([0-9]+\/[0-9]+\/[0-9]+).*/\1/p' <<<"$stat")
    IFS=/ read -r ooms timeouts crashes <<<"${oom_to_crash:-0/0/0}"
    bad=$(( ooms + timeouts + crashes ))
    # A run that failed outright (it did not build, or libFuzzer stopped) counts as a crash.
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then crashes=1; bad=1; fi
    rate="?"
    if [ -n "$execs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ]; then rate=$(( execs / secs )); fi
    # The last status line can miss a crash of the last job: the files written count too.
    [ "$bad" -gt 0 ] || [ "$after" -gt "$before" ] && failed=1
    rows+=("$t|${execs:-?}|${secs:-?}|$rate|${cov:-?}/${ft:-?}|$crashes/$timeouts/$ooms|$(( after - before ))")
    if [ "$bad" -gt 0 ] || [ "$after" -gt "$before" ]; then
        echo "   FAILED (exit $rc): see $log and fuzz/artifacts/$t/"
        grep -m3 -E 'panicked at|precondition|ERROR: (libFuzzer|AddressSanitizer)' "$log" | sed 's/^/   /' || true
    fi
done

echo
printf '%-14s %11s %6s %7s %13s %22s %10s\n' target executions secs exec/s "cov/ft" "crash/timeout/oom" artifacts
for r in "${rows[@]}"; do
    IFS='|' read -r t e s r2 c k a <<<"$r"
    printf '%-14s %11s %6s %7s %13s %22s %10s\n' "$t" "$e" "$s" "$r2" "$c" "$k" "$a"
done
exit "$failed"

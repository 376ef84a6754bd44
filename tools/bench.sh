#!/usr/bin/env bash
# Runs `smolvlm bench` over the benchmark matrix and prints a table (Markdown).
#
#   tools/bench.sh [--models "256m 500m 2.2b"] [--quantize "none q8_0 q4k"] [--threads N] [--exact]
#                  [--out FILE.jsonl]
#
# Models: full-size random-weight checkpoints built by tools/make_bench_models.py into
# .cache/bench-models/ (built on first use with the reference venv, .venv-ref). Images: a 512x512
# and a 640x480 PNG drawn by the same script into .cache/bench-images/. Per model and quantization:
#   * 512x512 --no-split --preset fast   one frame, no resize (384 px frame on 2.2B): the
#                                        vision-encode-per-tile case;
#   * 640x480 --preset fast              2x2 tiles + global view: the camera case;
#   * with --exact, also transformers' sizing (slow): 512x512 (4x4 tiles + global view, the
#     peak-memory case of issue 3) and 640x480 (3x4 + global view).
# Each `smolvlm bench` run makes one warm-up answer, then measures (see cli/src/bench.rs).
# A quantization the build does not support yet is shown as "not supported".
# The CLI is built in release mode with RUSTFLAGS="-C target-cpu=native" (as llama.cpp builds
# with -march=native) into target/bench/; set BENCH_RUSTFLAGS to override, or SMOLVLM_BIN to use
# a prebuilt binary.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS="256m 500m 2.2b"
QUANTS="none q8_0 q4k"
THREADS=""
EXACT=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --models) MODELS="$2"; shift 2 ;;
        --quantize) QUANTS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --exact) EXACT=1; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-.venv-ref/bin/python}
MODEL_DIR=.cache/bench-models
IMG_DIR=.cache/bench-images

# shellcheck disable=SC2086
"$PY" tools/make_bench_models.py $MODELS >&2

if [ -n "${SMOLVLM_BIN:-}" ]; then
    BIN=$SMOLVLM_BIN  # a prebuilt CLI
else
    export RUSTFLAGS="${BENCH_RUSTFLAGS--C target-cpu=native}"
    export CARGO_TARGET_DIR=target/bench
    cargo build --release --locked -p smolvlm-cli >&2
    BIN=$CARGO_TARGET_DIR/release/smolvlm
fi

cases=("512x512.png|--no-split --preset fast" "640x480.png|--preset fast")
[ "$EXACT" = 1 ] && cases+=("512x512.png|" "640x480.png|")
THREAD_ARGS=()
[ -n "$THREADS" ] && THREAD_ARGS=(--threads "$THREADS")

echo "| model | weights | image | frames | vision ms/frame | prompt tok | prefill tok/s | TTFT ms | decode tok/s | load ms | RSS after load MB | peak RSS MB (load / inference) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for m in $MODELS; do
    for q in $QUANTS; do
        for c in "${cases[@]}"; do
            img=${c%%|*}
            # shellcheck disable=SC2206
            extra=(${c#*|})
            label="${img%.png} ${extra[*]:-exact}"
            if ! json=$("$BIN" bench --model "$MODEL_DIR/smolvlm-$m" --image "$IMG_DIR/$img" --quantize "$q" \
                    "${THREAD_ARGS[@]}" "${extra[@]}" --json 2>/tmp/smolvlm-bench.err); then
                reason=$(tail -1 /tmp/smolvlm-bench.err)
                case "$reason" in *"not supported"*) reason="not supported" ;; esac
                echo "| $m | $q | $label | $reason | | | | | | | | |"
                continue
            fi
            [ -n "$OUT" ] && echo "$json" >>"$OUT"
            echo "$json" | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
def f(k, d=1):
    return "" if j.get(k) is None else f"{j[k]:.{d}f}"
cols = sys.argv[1:4] + [str(j["vision_tiles"]), f("vision_encode_ms_per_tile", 0), str(j["prompt_tokens"]),
        f("prefill_tokens_per_s"), f("ttft_ms", 0), f("decode_tokens_per_s"), f("load_ms", 0),
        f("rss_after_load_mb", 0), f("peak_rss_load_mb", 0) + " / " + f("peak_rss_inference_mb", 0)]
print("| " + " | ".join(cols) + " |")
' "$m" "$q" "$label"
        done
    done
done

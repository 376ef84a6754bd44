#!/usr/bin/env bash
# Converts the tiny SmolVLM2 fixture checkpoint to the GGUF pair llama.cpp publishes (a Llama text
# GGUF with tokenizer + chat template in its metadata, and an mmproj GGUF with the SigLIP encoder
# and the idefics3 projector), using llama.cpp's own convert_hf_to_gguf.py. Output:
# tests/fixtures/gguf/{tiny-smolvlm2-f16.gguf,mmproj-tiny-smolvlm2-f16.gguf}.
#
# Usage: tools/make_gguf_fixtures.sh LLAMA_CPP_DIR [PYTHON]
#   LLAMA_CPP_DIR  a llama.cpp source tree kept OUTSIDE this repository, e.g. from the PyPI sdist:
#                    cd /tmp && pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
#                    tar xzf llama_cpp_python-0.3.36.tar.gz   # -> llama_cpp_python-0.3.36/vendor/llama.cpp
#                  (the fixtures were made with that copy, llama.cpp commit 0c1e570).
#   PYTHON         an interpreter with torch, transformers, numpy and sentencepiece
#                  (default: .venv-ref/bin/python from tools/requirements.txt + sentencepiece).
#                  The converter imports sentencepiece before it looks for tokenizer.json.
# Only the tiny-smolvlm2 pair is committed (f16, ~8 MB together); add tiny-idefics3 the same way
# if the size budget allows.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${1:?usage: tools/make_gguf_fixtures.sh LLAMA_CPP_DIR [PYTHON]}
py=${2:-.venv-ref/bin/python}
[ -f "$llama/convert_hf_to_gguf.py" ] || { echo "no convert_hf_to_gguf.py in $llama" >&2; exit 2; }
case "$(cd "$llama" && pwd)" in "$(pwd)"/*) echo "keep llama.cpp outside the repository" >&2; exit 2;; esac
"$py" -c "import sentencepiece" 2>/dev/null || "$py" -m pip install --quiet sentencepiece
export PYTHONPATH="$llama/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
out=tests/fixtures/gguf
mkdir -p "$out"
for m in tiny-smolvlm2; do
    src=tests/fixtures/models/$m
    # transformers 5 configs may lack text_config.architectures = ["VLlama3ForCausalLM"], which the
    # converter needs to pick its Llama writer: patch a temporary copy, never the fixture.
    tmp=$(mktemp -d)
    cp "$src"/* "$tmp"/
    "$py" - "$tmp/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c.setdefault("text_config", {}).setdefault("architectures", ["VLlama3ForCausalLM"])
json.dump(c, open(p, "w"), indent=2)
PY
    "$py" "$llama/convert_hf_to_gguf.py" "$tmp" --outtype f16 --model-name "$m" --outfile "$out/$m-f16.gguf"
    "$py" "$llama/convert_hf_to_gguf.py" "$tmp" --mmproj --outtype f16 --model-name "$m" --outfile "$out/mmproj-$m-f16.gguf"
    rm -rf "$tmp"
done
ls -l "$out"

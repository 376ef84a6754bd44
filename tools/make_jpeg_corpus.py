#!/usr/bin/env python3
"""A random JPEG corpus for the differential check of smolvlm's JPEG decoder against Pillow
(core/tests/jpeg_differential.rs).

Run in the reference venv (tools/requirements.txt: transformers 5.23, Pillow 13):

    .venv-ref/bin/python tools/make_jpeg_corpus.py                       # the committed corpus
    .venv-ref/bin/python tools/make_jpeg_corpus.py --count 20000 --seed 7 --out /tmp/jpeg-corpus
    SMOLVLM_JPEG_CORPUS=/tmp/jpeg-corpus cargo test -p smolvlm --release --test jpeg_differential -- --nocapture

Every file is drawn at random (from --seed) over:

* encoder: Pillow (libjpeg-turbo) for RGB, grey and CMYK (Adobe, inverted); the small writer of
  tools/make_preprocess_fixtures.py for YCCK and for sampling layouts Pillow cannot write (4:4:0,
  4:1:1, mixed factors); on about 10% of the files, a Pillow file converted to arithmetic coding
  by libjpeg-turbo's `jpegtran -arithmetic` (SOF9 or, with `-progressive`, SOF10; Debian package
  libjpeg-turbo-progs), with its own restart intervals, keeping the EXIF block or not;
* sampling 4:4:4, 4:2:2, 4:2:0 (and the writer's layouts), baseline or progressive (Pillow's
  scan script; the writer's spectral-selection scans), optimised or standard Huffman tables,
  restart intervals in MCUs or MCU rows, quality 5 to 100, sizes 1 to 80 px per side;
* an EXIF orientation (1 to 8) on about half of the files;
* damage on some: cut at a random byte (in the headers or the entropy data), cut and closed with
  EOI, or one bit flipped in the entropy data, in the EXIF block or anywhere.

Each file is then decoded the way transformers loads a path (`image_utils.load_image`: Pillow
open, exif_transpose, convert("RGB"); then `convert_to_rgb`), and manifest.json records its size
and the SHA-256 of the RGB bytes, or Pillow's error. The Rust decoder must give the same bytes, or
a typed `InvalidImage` error where Pillow fails.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_preprocess_fixtures as mpf  # noqa: E402  (the JPEG writer, test images)
from transformers.image_transforms import convert_to_rgb  # noqa: E402
from transformers.image_utils import load_image  # noqa: E402

warnings.simplefilter("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "jpeg")

# Pillow's `subsampling`: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0.
PILLOW_SAMPLING = {0: "444", 1: "422", 2: "420"}
# The writer's layouts: (h, v) per component.
WRITER_SAMPLING = {
    "444": [(1, 1)] * 3,
    "422": [(2, 1), (1, 1), (1, 1)],
    "420": [(2, 2), (1, 1), (1, 1)],
    "440": [(1, 2), (1, 1), (1, 1)],
    "411": [(4, 1), (1, 1), (1, 1)],
    "mixed": [(2, 2), (2, 1), (1, 2)],
}


def content(rng, h, w):
    """A photo-like image, noise, or flat colour with an edge."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return mpf.photo(rng, max(h, 4), max(w, 4))[:h, :w]
    if kind == 1:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    img[: h // 2, w // 3:] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def exif_bytes(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def with_app1(data, exif):
    """Inserts an APP1 Exif segment right after SOI."""
    return data[:2] + mpf.jpeg_segment(0xE1, b"Exif\x00\x00" + exif) + data[2:]


def encode_pillow(rng, rgb, desc):
    mode = rng.choice(["RGB"] * 6 + ["L"] * 2 + ["CMYK"])
    desc["encoder"], desc["mode"] = "pillow", str(mode)
    kw = {"quality": int(rng.integers(5, 101)), "optimize": bool(rng.integers(0, 2))}
    if mode == "RGB":
        sub = int(rng.integers(0, 3))
        kw["subsampling"] = sub
        desc["sampling"] = PILLOW_SAMPLING[sub]
    if rng.random() < 0.4:
        kw["progressive"] = True
    desc["progressive"] = bool(kw.get("progressive", False))
    r = rng.random()
    if r < 0.2:
        kw["restart_marker_blocks"] = int(rng.integers(1, 8))
        desc["restart"] = f"{kw['restart_marker_blocks']} MCUs"
    elif r < 0.3:
        kw["restart_marker_rows"] = int(rng.integers(1, 3))
        desc["restart"] = f"{kw['restart_marker_rows']} rows"
    if desc["orientation"]:
        kw["exif"] = exif_bytes(desc["orientation"])
    im = Image.fromarray(rgb)
    im = im.convert("L") if mode == "L" else im.convert("CMYK") if mode == "CMYK" else im
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def encode_writer(rng, rgb, desc):
    h, w, _ = rgb.shape
    ycck = rng.random() < 0.5
    desc["encoder"], desc["mode"] = "writer", "YCCK" if ycck else "YCbCr"
    lay = str(rng.choice(list(WRITER_SAMPLING)))
    desc["sampling"] = lay
    samp = list(WRITER_SAMPLING[lay])
    planes = mpf.ycbcr(rgb)
    qidx = [0, 1, 1]
    kw = {}
    if ycck:
        # Adobe transform 2: YCbCr of the inverted CMY, then K.
        planes = mpf.ycbcr(255 - rgb) + [rng.integers(0, 256) * np.ones((h, w)) + np.linspace(0, 40, w)[None, :]]
        samp.append(samp[0])
        qidx.append(0)
        kw.update(adobe=2, jfif=False)
    n = len(planes)
    if rng.random() < 0.3:
        kw["restart"] = int(rng.integers(1, 6))
        desc["restart"] = f"{kw['restart']} MCUs"
    if rng.random() < 0.4:
        # Spectral selection without successive approximation: DC of all, then AC bands per component.
        scans = [(list(range(n)), 0, 0, 0)]
        for c in range(n):
            cut = int(rng.integers(1, 63))
            scans += [([c], 1, cut, 0), ([c], cut + 1, 63, 0)]
        kw.update(progressive=True, scans=scans)
    desc["progressive"] = bool(kw.get("progressive", False))
    qts = mpf.jpeg_qtables(int(rng.integers(5, 101)))
    data = mpf.jpeg_write(mpf.jpeg_coefs(planes, w, h, samp, qts, qidx), w, h, samp, qts, qidx, **kw)
    if desc["orientation"]:
        data = with_app1(data, exif_bytes(desc["orientation"]))
    return data


def encode_jpegtran_arith(rng, rgb, desc):
    """A Pillow file (any mode, sampling, EXIF) losslessly converted to arithmetic coding."""
    data = encode_pillow(rng, rgb, desc)
    desc["encoder"] = "jpegtran-arith"
    args = ["jpegtran", "-arithmetic"]
    desc["progressive"] = bool(rng.random() < 0.5)
    if desc["progressive"]:
        args.append("-progressive")
    desc["restart"] = None
    r = rng.random()
    if r < 0.25:
        n = int(rng.integers(1, 8))
        args += ["-restart", f"{n}B"]
        desc["restart"] = f"{n} MCUs"
    elif r < 0.35:
        n = int(rng.integers(1, 3))
        args += ["-restart", str(n)]
        desc["restart"] = f"{n} rows"
    # Without -copy all, jpegtran drops the EXIF block (and the orientation with it).
    if desc["orientation"] or rng.random() < 0.5:
        args += ["-copy", "all"]
    else:
        args += ["-copy", "none"]
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def entropy_start(data):
    """Offset just past the first SOS header."""
    i = data.find(b"\xff\xda")
    return len(data) if i < 0 else min(len(data), i + 2 + int.from_bytes(data[i + 2: i + 4], "big"))


def damage(rng, data, desc):
    r = rng.random()
    start = entropy_start(data)
    if r < 0.12:
        cut = int(rng.integers(start, len(data)))
        desc["damage"] = f"cut in the entropy data at {cut}"
        return data[:cut]
    if r < 0.18:
        cut = int(rng.integers(2, start))
        desc["damage"] = f"cut in the headers at {cut}"
        return data[:cut]
    if r < 0.28:
        cut = int(rng.integers(start, len(data) - 1))
        desc["damage"] = f"cut at {cut}, then EOI"
        return data[:cut] + b"\xff\xd9"
    if r < 0.36 and start < len(data) - 2:
        at = int(rng.integers(start, len(data) - 2))
        bit = int(rng.integers(0, 8))
        desc["damage"] = f"bit {bit} of byte {at} (entropy data) flipped"
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    exif = data.find(b"Exif\x00\x00")
    if r < 0.44 and exif > 0:
        end = exif + int.from_bytes(data[exif - 2: exif], "big") - 2
        at = int(rng.integers(exif + 6, end))
        bit = int(rng.integers(0, 8))
        desc["damage"] = f"bit {bit} of byte {at} (EXIF) flipped"
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    if r < 0.48:
        at = int(rng.integers(2, len(data)))
        bit = int(rng.integers(0, 8))
        desc["damage"] = f"bit {bit} of byte {at} flipped"
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    return data


def reference(path):
    """What transformers' PIL image processor receives for a path, or Pillow's error."""
    try:
        arr = np.ascontiguousarray(convert_to_rgb(load_image(path), return_numpy=True))
    except Exception as e:  # Pillow's OSError, SyntaxError, ValueError, DecompressionBombError...
        return {"error": f"{type(e).__name__}: {e}"}
    h, w, _ = arr.shape
    return {"width": w, "height": h, "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    if shutil.which("jpegtran") is None:
        sys.exit("make_jpeg_corpus.py: jpegtran not found; install libjpeg-turbo's tools "
                 "(Debian/Ubuntu: apt-get install libjpeg-turbo-progs) for the arithmetic-coded files")
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".jpg"):
            os.remove(os.path.join(args.out, f))
    entries = []
    for i in range(args.count):
        # Mostly small sizes (many partial MCUs), some up to 80 px.
        h, w = (int(rng.integers(1, 81 if rng.random() < 0.3 else 25)) for _ in range(2))
        desc = {"file": f"{i:05d}.jpg", "width_in": w, "height_in": h, "restart": None, "damage": None,
                "orientation": int(rng.integers(1, 9)) if rng.random() < 0.5 else None}
        rgb = content(rng, h, w)
        r = rng.random()
        if r < 0.1:
            data = encode_jpegtran_arith(rng, rgb, desc)
        elif r < 0.775:
            data = encode_pillow(rng, rgb, desc)
        else:
            data = encode_writer(rng, rgb, desc)
        data = damage(rng, data, desc)
        path = os.path.join(args.out, desc["file"])
        with open(path, "wb") as f:
            f.write(data)
        desc.update(reference(path))
        entries.append(desc)
    manifest = {
        "generator": {"script": "tools/make_jpeg_corpus.py", "count": args.count, "seed": args.seed,
                      "pillow": PIL.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
        "files": entries,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)
        f.write("\n")
    errors = sum("error" in e for e in entries)
    size = sum(os.path.getsize(os.path.join(args.out, e["file"])) for e in entries)
    print(f"{len(entries)} files ({size} bytes) in {args.out}: {len(entries) - errors} decoded by Pillow, "
          f"{errors} refused")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for smolvlm's image preprocessing (core/tests/preprocess.rs).

Run in the reference venv (transformers 5.23, Pillow):

    /work/main/.venv-ref/bin/python tools/make_preprocess_fixtures.py

Writes tests/fixtures/preprocess/images/* (small synthetic images, deterministic from numpy seeds)
and tests/fixtures/preprocess/cases.json with SHA-256 hashes (no arrays):

* "decode": every non-JPEG image decoded the way transformers loads a path
  (`image_utils.load_image` = Pillow open + exif_transpose + convert("RGB"), then the PIL image
  processor's `convert_to_rgb`): size + SHA-256 of the packed RGB bytes. Must match exactly.
* "jpeg": JPEG files. The Rust decoder (zune-jpeg) is not bit-identical to Pillow's libjpeg-turbo,
  so these record the size, the exact Pillow hash (for information) and an 8x8-block-mean thumbnail
  that the Rust side must match within a tolerance.
* "resize": standalone Pillow `Image.resize((w, h), Image.LANCZOS)` of crops of the RGB source
  images: SHA-256 of the output bytes.
* "preprocess": `SmolVLMImageProcessorPil` (the PIL backend; `return_row_col_info=True` as the
  SmolVLM processor passes it) on an image path: rows, cols, frame count, shape and the SHA-256 of
  the little-endian float32 `pixel_values` of that image.
"""

import hashlib
import io
import json
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image, PngImagePlugin

import transformers
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import load_image
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

warnings.simplefilter("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "preprocess")
IMG = os.path.join(OUT, "images")

# Real preprocessor_config.json values (SmolVLM-256M/500M-Instruct and SmolVLM(2)-2.2B).
BASE = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 1,
    "rescale_factor": 0.00392156862745098,
}
CONFIGS = {
    "256m": {**BASE, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}},
    "2b": {**BASE, "size": {"longest_edge": 1536}, "max_image_size": {"longest_edge": 384}},
    "256m_nosplit": {**BASE, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512},
                     "do_image_splitting": False},
    "2b_nosplit": {**BASE, "size": {"longest_edge": 1536}, "max_image_size": {"longest_edge": 384},
                   "do_image_splitting": False},
    # Not a real checkpoint: no longest-edge resize, ImageNet mean/std (per-channel LUTs).
    "noresize_imagenet": {**BASE, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512},
                          "do_resize": False, "image_mean": [0.485, 0.456, 0.406],
                          "image_std": [0.229, 0.224, 0.225]},
    # Not a real checkpoint: neither rescale nor normalize (raw 0..255 floats).
    "raw_values": {**BASE, "size": {"longest_edge": 1536}, "max_image_size": {"longest_edge": 384},
                   "do_rescale": False, "do_normalize": False},
}

files = []


def path(name):
    return os.path.join(IMG, name)


def save(name, im, **kw):
    im.save(path(name), **kw)
    files.append(name)


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png_raw(name, w, h, bitdepth, ctype, rows, extra=b""):
    """A PNG written by hand (bit depths / tRNS combinations Pillow cannot write)."""
    raw = b"".join(b"\0" + r for r in rows)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, ctype, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path(name), "wb") as f:
        f.write(data)
    files.append(name)


def pack(vals, bits):
    rows = []
    for row in vals:
        b = n = 0
        bs = bytearray()
        for v in row:
            b = (b << bits) | int(v)
            n += bits
            if n == 8:
                bs.append(b)
                b = n = 0
        if n:
            bs.append(b << (8 - n))
        rows.append(bytes(bs))
    return rows


def photo(rng, h, w):
    """Smooth gradients + mild noise: photo-like, compresses reasonably."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    g = 255 * (xx + yy) / (w + h)
    b = 128 + 120 * np.sin((xx - 2 * yy) / 19.0)
    img = np.dstack([r, g, b])
    # noise only in the top-left quarter (keeps the PNGs small)
    img[: h // 4, : w // 4] += rng.normal(0, 4, (h // 4, w // 4, 3))
    # a few hard edges and saturated areas (exercise clipping of LANCZOS overshoot)
    img[h // 3: h // 2, w // 4: w // 3] = [255, 0, 0]
    img[h // 2: h // 2 + 7, :] = 0
    img[:, w - w // 9:] = 255
    return img.clip(0, 255).astype(np.uint8)


def screenshot(rng, h, w):
    """A tall phone-screenshot-like image: flat panels, coloured boxes, text-like speckle rows."""
    img = np.full((h, w, 3), 245, np.uint8)
    img[: h // 12] = [30, 60, 120]
    for i in range(12):
        y0 = h // 12 + i * (h // 14)
        img[y0 + 10: y0 + h // 16, 40: w - 40] = rng.integers(0, 256, 3, dtype=np.uint8)
        # "text": short runs of dark pixels
        rows = slice(y0 + 30, y0 + 42)
        mask = rng.random((12, w - 200)) < 0.3
        img[rows, 100: w - 100][mask] = [20, 20, 20]
    return img


def make_images():
    os.makedirs(IMG, exist_ok=True)
    for f in os.listdir(IMG):
        os.remove(path(f))
    rng = np.random.default_rng(20240601)
    H, W = 37, 53
    noise = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    a = rng.integers(0, 256, (H, W), dtype=np.uint8)

    # Sources for the standalone resize cases and the main pipeline cases.
    save("noise_97x61.png", Image.fromarray(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)))
    save("photo_640x480.png", Image.fromarray(photo(rng, 480, 640)))
    save("photo_300x500.png", Image.fromarray(photo(rng, 500, 300)))
    save("photo_1000x93.png", Image.fromarray(photo(rng, 93, 1000)))
    save("photo_386x386.png", Image.fromarray(photo(rng, 386, 386)))
    save("photo_2048x93.png", Image.fromarray(photo(rng, 93, 2048)))
    save("photo_900x600.png", Image.fromarray(photo(rng, 600, 900)))
    save("screen_1080x2400.png", Image.fromarray(screenshot(rng, 2400, 1080)))
    save("tiny_1x1.png", Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)))
    save("tiny_3x5.png", Image.fromarray(rng.integers(0, 256, (5, 3, 3), dtype=np.uint8)))
    save("line_1x40.png", Image.fromarray(rng.integers(0, 256, (40, 1, 3), dtype=np.uint8)))

    # Modes and transparency handling.
    save("rgba.png", Image.fromarray(np.dstack([noise, a])))
    save("l.png", Image.fromarray(noise[..., 0]))
    save("la.png", Image.fromarray(np.dstack([noise[..., 0], a]), "LA"))
    pal = Image.fromarray(noise).quantize(16)
    save("p.png", pal)
    save("p_trns.png", pal, transparency=3)
    save("p_trns_alpha_table.png", pal, transparency=bytes([255, 128, 0] + [255] * 13))
    save("l_trns.png", Image.fromarray(noise[..., 0]), transparency=int(noise[0, 0, 0]))
    save("rgb_trns.png", Image.fromarray(noise), transparency=tuple(int(x) for x in noise[1, 1]))
    save("one.png", Image.fromarray(noise).convert("1"))
    save("p4.png", Image.fromarray(noise).quantize(16), bits=4)
    save("p1.png", Image.fromarray(noise).quantize(2), bits=1)
    r16 = rng.integers(0, 65536, (H, W, 4), dtype=np.uint16)
    png_raw("rgb16.png", W, H, 16, 2, [r16[y, :, :3].astype(">u2").tobytes() for y in range(H)])
    png_raw("rgba16.png", W, H, 16, 6, [r16[y].astype(">u2").tobytes() for y in range(H)])
    png_raw("la16.png", W, H, 16, 4, [r16[y, :, :2].astype(">u2").tobytes() for y in range(H)])
    g16 = r16[..., 0] % 600
    png_raw("gray16.png", W, H, 16, 0, [g16[y].astype(">u2").tobytes() for y in range(H)])
    # key 256: Pillow matches it as RGB (0, 0, 0) -> every pixel < 1 turns white
    png_raw("gray16_trns256.png", W, H, 16, 0, [g16[y].astype(">u2").tobytes() for y in range(H)],
            chunk(b"tRNS", struct.pack(">H", 256)))
    g1 = rng.integers(0, 2, (H, W))
    png_raw("gray1_trns0.png", W, H, 1, 0, pack(g1, 1), chunk(b"tRNS", struct.pack(">H", 0)))
    g2 = rng.integers(0, 4, (H, W))
    png_raw("gray2.png", W, H, 2, 0, pack(g2, 2))
    png_raw("gray4.png", W, H, 4, 0, pack(rng.integers(0, 16, (H, W)), 4))
    png_raw("gray2_trns.png", W, H, 2, 0, pack(g2, 2), chunk(b"tRNS", struct.pack(">H", 1)))
    # 16-bit RGB key: Pillow compares its LOW bytes with the (high-byte) 8-bit pixels.
    key = r16[3, 3, :3].copy()
    key16 = (key & 0xFF00) | (r16[3, 3, :3] >> 8)
    png_raw("rgb16_trns.png", W, H, 16, 2, [r16[y, :, :3].astype(">u2").tobytes() for y in range(H)],
            chunk(b"tRNS", key16.astype(">u2").tobytes()))
    plt = bytes(rng.integers(0, 256, 12, dtype=np.uint8))
    idx = rng.integers(0, 8, (H, W)).astype(np.uint8)
    png_raw("p_out_of_range.png", W, H, 8, 3, [bytes(idx[y]) for y in range(H)], chunk(b"PLTE", plt))
    png_raw("p_short_trns.png", W, H, 8, 3, [bytes(idx[y] % 4) for y in range(H)],
            chunk(b"PLTE", plt) + chunk(b"tRNS", b"\xff\x00"))
    # Orientation: EXIF (all 8), XMP, ImageMagick raw profile.
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        save(f"orient{o}.png", Image.fromarray(noise[:, :41]), exif=ex.tobytes())
    pi = PngImagePlugin.PngInfo()
    pi.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    save("xmp_orient6.png", Image.fromarray(noise), pnginfo=pi)
    pi = PngImagePlugin.PngInfo()
    ex = Image.Exif()
    ex[0x0112] = 3
    d = ex.tobytes()
    pi.add_text("Raw profile type exif", f"\nexif\n{len(d):8}\n{d.hex()}\n", zip=True)
    save("rawexif_orient3.png", Image.fromarray(noise), pnginfo=pi)
    # GIF (palette, transparency, grey ramp, first frame smaller than the screen).
    gq = Image.fromarray(noise).quantize(32)
    save("g.gif", gq)
    save("g_trns.gif", gq, transparency=5)
    save("gray.gif", Image.fromarray(noise[..., 1]))
    for name, kw in (("g_small_frame_trns.gif", {"transparency": 7}), ("g_small_frame.gif", {})):
        buf = io.BytesIO()
        gq.save(buf, "GIF", **kw)
        b = bytearray(buf.getvalue())
        b[6:10] = struct.pack("<HH", W + 9, H + 4)
        with open(path(name), "wb") as f:
            f.write(b)
        files.append(name)
    # BMP, WebP.
    save("rgb.bmp", Image.fromarray(noise))
    save("rgba.bmp", Image.fromarray(np.dstack([noise, a])))
    save("l.bmp", Image.fromarray(noise[..., 0]))
    save("p.bmp", Image.fromarray(noise).quantize(16))
    save("lossless.webp", Image.fromarray(noise), lossless=True)
    save("lossless_alpha.webp", Image.fromarray(np.dstack([noise, a])), lossless=True, exact=True)
    ph = photo(rng, 148, 212)
    save("lossy.webp", Image.fromarray(ph), quality=80)
    save("lossy_alpha.webp", Image.fromarray(np.dstack([ph, np.full(ph.shape[:2], 200, np.uint8)])), quality=80)
    # JPEG: subsamplings, progressive, grey, CMYK, odd size, EXIF orientation.
    save("j420.jpg", Image.fromarray(ph), quality=90)
    save("j444.jpg", Image.fromarray(ph), quality=90, subsampling=0)
    save("j422.jpg", Image.fromarray(ph), quality=90, subsampling=1)
    save("jprogressive.jpg", Image.fromarray(ph), quality=85, progressive=True)
    save("jgray.jpg", Image.fromarray(ph[..., 0]), quality=90)
    save("jcmyk.jpg", Image.fromarray(ph).convert("CMYK"), quality=90)
    save("jodd.jpg", Image.fromarray(ph[:131, :97]), quality=75)
    for o in (3, 6, 8):
        ex = Image.Exif()
        ex[0x0112] = o
        save(f"jorient{o}.jpg", Image.fromarray(ph), quality=90, exif=ex.tobytes())


def sha(b):
    return hashlib.sha256(b).hexdigest()


def decoded(name):
    """What transformers' PIL image processor receives for a path."""
    im = load_image(path(name))
    return np.ascontiguousarray(convert_to_rgb(im, return_numpy=True))


def thumb(arr, block=8):
    h, w, _ = arr.shape
    th, tw = h // block, w // block
    a = arr[: th * block, : tw * block].astype(np.float64).reshape(th, block, tw, block, 3)
    return [round(float(v), 3) for v in a.mean(axis=(1, 3)).ravel()]


def main():
    make_images()
    cases = {
        "generator": {
            "script": "tools/make_preprocess_fixtures.py",
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "configs": CONFIGS,
        "decode": [],
        "jpeg": [],
        "resize": [],
        "preprocess": [],
    }
    for name in files:
        arr = decoded(name)
        h, w, _ = arr.shape
        entry = {"file": f"images/{name}", "width": w, "height": h, "sha256": sha(arr.tobytes()),
                 "pillow_mode": Image.open(path(name)).mode}
        if name.endswith(".jpg"):
            entry.update({"thumb_block": 16, "thumb": thumb(arr, 16), "thumb_tolerance": 1.0})
            cases["jpeg"].append(entry)
        else:
            cases["decode"].append(entry)

    # Standalone LANCZOS resizes: (source, crop x, y, w, h) -> many output sizes.
    crops = [
        ("noise_97x61.png", (0, 0, 97, 61)),
        ("noise_97x61.png", (5, 3, 1, 1)),
        ("noise_97x61.png", (10, 7, 1, 13)),
        ("noise_97x61.png", (2, 9, 17, 1)),
        ("noise_97x61.png", (31, 20, 7, 5)),
        ("photo_640x480.png", (0, 0, 640, 480)),
        ("photo_300x500.png", (0, 0, 300, 500)),
        ("photo_640x480.png", (101, 37, 333, 251)),
    ]
    outs = {
        (97, 61): [(97, 61), (200, 122), (2048, 1288), (31, 19), (1, 1), (97, 30), (40, 61), (513, 7), (3, 300),
                   # Pillow 13 pass order: vertical first iff (h - oh) > 2 * (w - ow) and h shrinks
                   (90, 20), (87, 41), (87, 40), (60, 1), (98, 60)],
        (1, 1): [(1, 1), (5, 3), (512, 512), (2, 1)],
        (1, 13): [(3, 1), (1, 40), (7, 7), (1, 2)],
        (17, 1): [(1, 1), (40, 3), (16, 1), (18, 2)],
        (7, 5): [(2048, 1464), (384, 384), (6, 4), (1, 9)],
        (640, 480): [(2048, 1536), (512, 512), (384, 384), (1536, 1152), (639, 481), (64, 48), (1, 1), (17, 1300),
                     (600, 100), (700, 200)],
        (300, 500): [(1230, 2048), (922, 1536), (384, 384), (150, 250), (301, 499)],
        (333, 251): [(2048, 1544), (512, 512), (1000, 1000), (111, 84), (332, 250)],
    }
    for name, (x, y, w, h) in crops:
        src = np.array(Image.open(path(name)).convert("RGB"))[y: y + h, x: x + w]
        for ow, oh in outs[(w, h)]:
            out = np.array(Image.fromarray(np.ascontiguousarray(src)).resize((ow, oh), Image.LANCZOS))
            cases["resize"].append({"file": f"images/{name}", "crop": [x, y, w, h], "width": ow, "height": oh,
                                    "sha256": sha(out.tobytes())})

    # Full preprocessing.
    pre = [
        ("photo_640x480.png", ["256m", "2b", "256m_nosplit", "2b_nosplit", "noresize_imagenet", "raw_values"]),
        ("photo_300x500.png", ["256m", "2b", "256m_nosplit", "noresize_imagenet"]),
        ("photo_1000x93.png", ["256m", "2b"]),
        ("photo_386x386.png", ["256m", "2b"]),
        ("photo_2048x93.png", ["256m", "2b"]),
        ("photo_900x600.png", ["256m", "2b", "noresize_imagenet"]),
        ("noise_97x61.png", ["256m", "2b", "2b_nosplit"]),
        ("screen_1080x2400.png", ["256m", "2b", "256m_nosplit"]),
        ("tiny_1x1.png", ["256m", "2b", "2b_nosplit"]),
        ("tiny_3x5.png", ["256m", "noresize_imagenet"]),
        ("line_1x40.png", ["2b"]),
        ("rgba.png", ["2b"]),
        ("p_trns.png", ["2b"]),
        ("l.png", ["2b"]),
        ("gray16.png", ["2b"]),
        ("orient6.png", ["2b"]),
        ("g_trns.gif", ["2b"]),
        ("lossy_alpha.webp", ["2b"]),
    ]
    for name, cfgs in pre:
        for cname in cfgs:
            cfg = {k: v for k, v in CONFIGS[cname].items()}
            ip = SmolVLMImageProcessorPil(**cfg)
            out = ip(images=[[path(name)]], return_row_col_info=True, return_tensors="np")
            pv = np.asarray(out["pixel_values"])
            # float32, except uint8 when neither rescale nor normalize runs (exact in float32).
            assert pv.dtype in (np.float32, np.uint8), pv.dtype
            pv = pv[0]
            rows, cols = int(out["rows"][0][0]), int(out["cols"][0][0])
            frames = pv.shape[0]
            assert frames == (rows * cols + 1 if rows else 1)
            cases["preprocess"].append({
                "file": f"images/{name}", "config": cname, "rows": rows, "cols": cols, "frames": frames,
                "shape": list(pv.shape), "sha256": sha(pv.astype("<f4").tobytes()),
            })

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(path(n)) for n in os.listdir(IMG))
    print(f"{len(files)} images ({size / 1e6:.2f} MB), {len(cases['decode'])} decode, {len(cases['jpeg'])} jpeg, "
          f"{len(cases['resize'])} resize, {len(cases['preprocess'])} preprocess cases")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for smolvlm's image preprocessing (core/tests/preprocess.rs).

Run in the reference venv (transformers 5.23, Pillow):

    /work/main/.venv-ref/bin/python tools/make_preprocess_fixtures.py

Writes tests/fixtures/preprocess/images/* (small synthetic images, deterministic from numpy seeds)
and tests/fixtures/preprocess/cases.json with SHA-256 hashes (no arrays):

* "decode": every non-JPEG image decoded the way transformers loads a path
  (`image_utils.load_image` = Pillow open + exif_transpose + convert("RGB"), then the PIL image
  processor's `convert_to_rgb`): size + SHA-256 of the packed RGB bytes. Must match exactly.
* "jpeg": JPEG files, decoded the same way: size + SHA-256, which the Rust decoder must match
  exactly; files Pillow refuses (truncated) record its error instead. Besides what Pillow writes
  (subsamplings, progressive, restart markers, grey, CMYK, Adobe RGB), a small writer below
  produces layouts Pillow cannot: 4:4:0, 4:1:1, 3x1 and mixed sampling factors, non-interleaved
  scans, missing Huffman tables, YCCK, progressive files without refinement scans (libjpeg's
  block smoothing), renumbered restart markers and data cut short before EOI.
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


# ------------------------------------------------------------------------------------------------
# A minimal JPEG writer for layouts Pillow cannot produce: any sampling factors, restart intervals,
# component ids, JFIF / Adobe markers, non-interleaved scans, progressive scans without refinement
# (spectral selection and point transform only), optimal or standard Huffman tables.

ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
          7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
          39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
STD_DC = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
STD_AC = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D], [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
    0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72,
    0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
    0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
    0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA])
_K8 = np.arange(8)
DCT8 = np.sqrt(np.where(_K8 == 0, 1 / 8, 2 / 8))[:, None] * np.cos((2 * _K8[None, :] + 1) * _K8[:, None] * np.pi / 16)


def jpeg_qtables(quality):
    """libjpeg's scaled standard luminance / chrominance tables (natural order)."""
    luma = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17,
            22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78,
            87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    chroma = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 38
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    return [np.clip((np.array(t) * scale + 50) // 100, 1, 255) for t in (luma, chroma)]


def jpeg_layout(w, h, samp):
    mh, mv = max(f[0] for f in samp), max(f[1] for f in samp)
    out = []
    for fh, fv in samp:
        wb, hb = -(-w * fh // (mh * 8)), -(-h * fv // (mv * 8))
        out.append({"h": fh, "v": fv, "wb": wb, "hb": hb, "bw": -(-wb // fh) * fh, "bh": -(-hb // fv) * fv,
                    "dw": -(-w * fh // mh), "dh": -(-h * fv // mv)})
    return mh, mv, out


def jpeg_coefs(planes, w, h, samp, qts, qidx):
    """Full-size component planes -> quantised DCT blocks (bh, bw, 64) per component (box downsampling,
    edge padding)."""
    mh, mv, lay = jpeg_layout(w, h, samp)
    coefs = []
    for plane, L, qi in zip(planes, lay, qidx):
        fx, fy = mh // L["h"], mv // L["v"]
        p = np.pad(plane.astype(np.float64), ((0, -h % fy), (0, -w % fx)), mode="edge")
        p = p.reshape(p.shape[0] // fy, fy, p.shape[1] // fx, fx).mean(axis=(1, 3))[: L["dh"], : L["dw"]]
        p = np.pad(np.round(p), ((0, L["bh"] * 8 - p.shape[0]), (0, L["bw"] * 8 - p.shape[1])), mode="edge") - 128
        b = p.reshape(L["bh"], 8, L["bw"], 8).transpose(0, 2, 1, 3)
        d = np.einsum("ij,abjk,lk->abil", DCT8, b, DCT8).reshape(L["bh"], L["bw"], 64)
        coefs.append(np.round(d / qts[qi]).astype(np.int64))
    return coefs


def huffman_lengths(freq):
    """JPEG Annex K.2: code lengths limited to 16 bits -> (BITS[1..16], symbols by code length)."""
    freq = dict(freq)
    freq[256] = 1  # reserves the all-ones code
    syms = sorted(freq)
    f, size, other = dict(freq), {s: 0 for s in syms}, {s: None for s in syms}
    while True:
        live = sorted((f[s], -s) for s in syms if f[s] > 0)
        if len(live) < 2:
            break
        v1, v2 = -live[0][1], -live[1][1]
        f[v1] += f[v2]
        f[v2] = 0
        for v in (v1, v2):
            size[v] += 1
            while other[v] is not None:
                v = other[v]
                size[v] += 1
        x = v1
        while other[x] is not None:
            x = other[x]
        other[x] = v2
    bits = [0] * 33
    for s in syms:
        if size[s]:
            bits[size[s]] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1
    return bits[1:17], sorted((s for s in syms if s != 256), key=lambda s: (size[s], s))


def jpeg_segment(marker, body):
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def jpeg_write(coefs, w, h, samp, qts, qidx, ids=None, restart=0, jfif=True, adobe=None, scans=None,
               std_tables=False, progressive=False):
    """Quantised coefficients -> JPEG bytes. scans: (component indices, Ss, Se, Al) each (no refinement
    scans); default one interleaved sequential scan. Restart markers are numbered as the standard says."""
    n = len(coefs)
    ids = ids or list(range(1, n + 1))
    mh, mv, lay = jpeg_layout(w, h, samp)
    out = bytearray(b"\xff\xd8")
    if jfif:
        out += jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        out += jpeg_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([adobe]))
    for i, q in enumerate(qts):
        out += jpeg_segment(0xDB, bytes([i]) + bytes(int(q[z]) for z in ZIGZAG))
    out += jpeg_segment(0xC2 if progressive else 0xC0, bytes([8]) + h.to_bytes(2, "big") + w.to_bytes(2, "big")
                        + bytes([n]) + b"".join(bytes([ids[c], samp[c][0] * 16 + samp[c][1], qidx[c]]) for c in range(n)))
    if restart:
        out += jpeg_segment(0xDD, restart.to_bytes(2, "big"))
    for comps, ss, se, al in scans or [(list(range(n)), 0, 63, 0)]:
        if len(comps) == 1:
            L = lay[comps[0]]
            mcus = [[(comps[0], r, c)] for r in range(L["hb"]) for c in range(L["wb"])]
        else:
            mcus = [[(c, mr * lay[c]["v"] + y, mc * lay[c]["h"] + x)
                     for c in comps for y in range(lay[c]["v"]) for x in range(lay[c]["h"])]
                    for mr in range(-(-h // (8 * mv))) for mc in range(-(-w // (8 * mh)))]
        events, pred, eobrun = [], {}, [0]

        def coded(kind, run, v):
            """Symbol (run << 4 | size of v), then v's bits."""
            size = abs(v).bit_length()
            events.append((kind, (run << 4) | size))
            if size:
                events.append(("bits", v if v >= 0 else v + (1 << size) - 1, size))

        def flush_eobrun():
            if eobrun[0]:
                nb = eobrun[0].bit_length() - 1
                events.append(("ac", nb << 4))
                if nb:
                    events.append(("bits", eobrun[0] - (1 << nb), nb))
                eobrun[0] = 0
        for i, mcu in enumerate(mcus):
            if i == 0 or (restart and i % restart == 0):
                if i:
                    flush_eobrun()
                    events.append(("rst", (i // restart - 1) & 7))
                pred = {c: 0 for c in comps}
            for c, r, col in mcu:
                blk = coefs[c][r, col]
                if ss == 0:
                    dc = int(blk[0]) >> al
                    coded("dc", 0, dc - pred[c])
                    pred[c] = dc
                if se == 0:
                    continue
                vals = [int(blk[ZIGZAG[k]]) for k in range(max(ss, 1), se + 1)]
                vals = [v >> al if v >= 0 else -((-v) >> al) for v in vals]
                nz = [k for k, v in enumerate(vals) if v]
                if progressive and not nz:
                    eobrun[0] += 1
                    if eobrun[0] == 0x7FFF:
                        flush_eobrun()
                    continue
                flush_eobrun()
                run = 0
                for v in vals[: nz[-1] + 1] if nz else []:
                    if v == 0:
                        run += 1
                        continue
                    while run > 15:
                        events.append(("ac", 0xF0))
                        run -= 16
                    coded("ac", run, v)
                    run = 0
                if not nz or nz[-1] < len(vals) - 1:
                    if progressive:
                        eobrun[0] += 1
                    else:
                        events.append(("ac", 0))
        flush_eobrun()
        codes = {}
        for kind, cls in (("dc", 0x00), ("ac", 0x10)):
            freq = {}
            for e in events:
                if e[0] == kind:
                    freq[e[1]] = freq.get(e[1], 0) + 1
            if not freq:
                continue
            bits, syms = (STD_DC if kind == "dc" else STD_AC) if std_tables else huffman_lengths(freq)
            if not std_tables:
                out += jpeg_segment(0xC4, bytes([cls]) + bytes(bits) + bytes(syms))
            code, k, codes[kind] = 0, 0, {}
            for length in range(1, 17):
                for _ in range(bits[length - 1]):
                    codes[kind][syms[k]] = (code, length)
                    code, k = code + 1, k + 1
                code <<= 1
        out += jpeg_segment(0xDA, bytes([len(comps)]) + b"".join(bytes([ids[c], 0]) for c in comps)
                            + bytes([ss, se, al]))
        acc, nacc, data = 0, 0, bytearray()

        def put(v, nb):
            nonlocal acc, nacc
            acc, nacc = (acc << nb) | v, nacc + nb
            while nacc >= 8:
                nacc -= 8
                byte = (acc >> nacc) & 0xFF
                data.append(byte)
                if byte == 0xFF:
                    data.append(0)
            acc &= (1 << nacc) - 1

        for e in events:
            if e[0] == "bits":
                put(e[1], e[2])
            elif e[0] == "rst":
                if nacc:
                    put((1 << (8 - nacc)) - 1, 8 - nacc)
                data += bytes([0xFF, 0xD0 + e[1]])
            else:
                put(*codes[e[0]][e[1]])
        if nacc:
            put((1 << (8 - nacc)) - 1, 8 - nacc)
        out += data
    return bytes(out) + b"\xff\xd9"


def ycbcr(rgb):
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return [0.299 * r + 0.587 * g + 0.114 * b, -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
            0.5 * r - 0.418688 * g - 0.081312 * b + 128]


def write_jpeg(name, planes, samp, quality=80, qidx=None, **kw):
    h, w = planes[0].shape
    qts = jpeg_qtables(quality)
    qidx = qidx or [0] + [1] * (len(planes) - 1)
    data = jpeg_write(jpeg_coefs(planes, w, h, samp, qts, qidx), w, h, samp, qts, qidx, **kw)
    with open(path(name), "wb") as f:
        f.write(data)
    files.append(name)
    return data


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
    # JPEG: subsamplings, progressive, grey, CMYK, odd size, EXIF orientation (decoded bit-exactly).
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
    # More of what Pillow writes: restart markers, progressive 4:2:2 / grey, odd sizes, Adobe RGB.
    odd = ph[:45, :67]
    save("j420_rst.jpg", Image.fromarray(ph), quality=80, restart_marker_blocks=5)
    save("j422_prog.jpg", Image.fromarray(ph), quality=85, subsampling=1, progressive=True)
    save("j422_prog_rst_odd.jpg", Image.fromarray(odd), quality=70, subsampling=1, progressive=True,
         restart_marker_rows=1)
    save("j420_prog_odd.jpg", Image.fromarray(ph[:37, :61]), quality=60, progressive=True)
    save("jgray_prog.jpg", Image.fromarray(ph[..., 1]), quality=85, progressive=True)
    save("j444_odd.jpg", Image.fromarray(odd), quality=95, subsampling=0)
    save("jrgb.jpg", Image.fromarray(odd), quality=85, keep_rgb=True)
    # Layouts only the writer above produces (odd size 59x41).
    small = ph[:41, :59]
    yuv = ycbcr(small)
    write_jpeg("j440.jpg", yuv, [(1, 2), (1, 1), (1, 1)])
    write_jpeg("j411.jpg", yuv, [(4, 1), (1, 1), (1, 1)], restart=3)
    write_jpeg("j31.jpg", yuv, [(3, 1), (1, 1), (1, 1)])  # generic integral (box) upsampling
    write_jpeg("jmixed.jpg", yuv, [(2, 2), (2, 1), (1, 2)])  # h1v2 and h2v1 fancy upsampling
    write_jpeg("jlumasub.jpg", yuv, [(1, 1), (2, 2), (2, 2)])  # luma upsampled h2v2
    write_jpeg("j420_nonint.jpg", yuv, [(2, 2), (1, 1), (1, 1)], scans=[([0], 0, 63, 0), ([1, 2], 0, 63, 0)])
    write_jpeg("j420_stdhuff.jpg", yuv, [(2, 2), (1, 1), (1, 1)], std_tables=True)  # no DHT (Motion JPEG)
    write_jpeg("jrgb_ids.jpg", [small[..., i] for i in range(3)], [(1, 1)] * 3, ids=[82, 71, 66], jfif=False)
    kplane = np.tile(np.linspace(0, 255, small.shape[1]), (small.shape[0], 1))
    write_jpeg("jycck.jpg", ycbcr(255 - small) + [kplane], [(2, 2), (1, 1), (1, 1), (2, 2)], qidx=[0, 1, 1, 0],
               adobe=2, jfif=False)
    # Progressive files whose AC coefficients are never refined: libjpeg's block smoothing.
    write_jpeg("jprog_dconly.jpg", yuv, [(2, 2), (1, 1), (1, 1)], progressive=True, scans=[([0, 1, 2], 0, 0, 0)])
    write_jpeg("jprog_approx.jpg", yuv, [(2, 1), (1, 1), (1, 1)], quality=50, progressive=True, restart=4,
               scans=[([0, 1, 2], 0, 0, 1), ([0], 1, 5, 1), ([0], 6, 63, 0), ([1], 1, 63, 2), ([2], 1, 2, 0)])
    # Corrupt data, decoded the way libjpeg does: renumbered and missing restart markers (resync),
    # entropy data cut short before EOI (the rest decodes as zero blocks); cut without EOI: an error.
    data = bytearray(open(path("j420_rst.jpg"), "rb").read())
    rst = [i for i in range(len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    data[rst[3] + 1] = 0xD0 + (data[rst[3] + 1] - 0xD0 + 4) % 8
    del data[rst[9]: rst[9] + 2]
    corrupt = {"jbad_rst.jpg": bytes(data)}
    data = open(path("j422.jpg"), "rb").read()
    corrupt["jcut_eoi.jpg"] = data[: len(data) * 3 // 5] + b"\xff\xd9"
    data = open(path("jprogressive.jpg"), "rb").read()
    corrupt["jprog_cut_eoi.jpg"] = data[: len(data) * 2 // 3] + b"\xff\xd9"
    corrupt["jtruncated.jpg"] = data[: len(data) - 1]
    for name, data in corrupt.items():
        with open(path(name), "wb") as f:
            f.write(data)
        files.append(name)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def decoded(name):
    """What transformers' PIL image processor receives for a path."""
    im = load_image(path(name))
    return np.ascontiguousarray(convert_to_rgb(im, return_numpy=True))


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
        try:
            arr = decoded(name)
        except OSError as e:
            assert name.endswith(".jpg"), name
            cases["jpeg"].append({"file": f"images/{name}", "error": str(e)})
            continue
        h, w, _ = arr.shape
        entry = {"file": f"images/{name}", "width": w, "height": h, "sha256": sha(arr.tobytes()),
                 "pillow_mode": Image.open(path(name)).mode}
        cases["jpeg" if name.endswith(".jpg") else "decode"].append(entry)

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
        ("j420.jpg", ["2b"]),
        ("jorient6.jpg", ["256m"]),
        ("jprogressive.jpg", ["2b_nosplit"]),
        ("jcmyk.jpg", ["2b"]),
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

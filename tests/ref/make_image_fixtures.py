"""make_image_fixtures.py - golden outputs for tests/test_image.c from Pillow 9.4 and OpenCV 4.6 (the libraries the
published PromptAD code runs), plus small encoded image files for the decoder tests.

Run from the repository root with the system interpreter (PIL 9.4, cv2 4.6, torch 1.13, numpy):
    /usr/bin/python3 tests/ref/make_image_fixtures.py

Writes
  tests/fixtures/image_ref.safetensors   the expected outputs (U8 / F32 / I64), data-driven: every case is a group
                                         "<op>.<i>.params" (I32) plus either "<op>.<i>.out" (the whole output) or
                                         "<op>.<i>.crc" (zlib CRC-32 of the output bytes) and "<op>.<i>.sub" (the
                                         output at rows and columns 0, 16, 32, ... for diagnostics)
  tests/fixtures/images/*                small PNG and JPEG files and their decoded pixels ("decode.<name>")

Source images are never stored: they come from the formula in synth() / synth_mask(), which test_image.c
implements the same way (integer arithmetic, uint32 wrap-around).

The OpenCLIP / torchvision transforms (Resize(int) with torchvision 0.14's size rule, CenterCrop's rounding,
ToTensor, Normalize) are written out here because the system Python has no torchvision; resampling is Pillow's own
Image.resize and the arithmetic of ToTensor/Normalize is torch's (float32 div, sub, div).
"""
import os
import sys
import zlib

import cv2
import numpy as np
import PIL
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
IMG_DIR = os.path.join(FIX, "images")

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
MODES = {"squash": 0, "openclip": 1, "official": 2}
FULL_LIMIT = 48 * 48 * 3  # outputs up to this many elements are stored whole; larger ones as CRC + subsample
SUB = 16

assert PIL.__version__.startswith("9.4"), PIL.__version__
assert cv2.__version__.startswith("4."), cv2.__version__


# ----------------------------------------------------------------------------
# Deterministic synthetic sources (mirrored in tests/test_image.c: synth_pixel, synth_mask_pixel)

def _mix(x, y, c, seed):
    u = np.uint32
    h = (x.astype(u) * u(0x9E3779B1)) ^ (y.astype(u) * u(0x85EBCA77)) ^ u((c * 0xC2B2AE3D) & 0xFFFFFFFF) ^ \
        u((seed * 0x27D4EB2F) & 0xFFFFFFFF)
    h = h ^ (h >> u(15))
    h = h * u(0x2C1B3C6D)
    h = h ^ (h >> u(12))
    return h


def synth(w, h, cn, seed):
    """(h, w, cn) uint8: 16x16 tiles of noise, a wrapping gradient, a 1-px checkerboard and a flat colour."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.zeros((h, w, cn), np.uint8)
    for c in range(cn):
        hv = _mix(x, y, c, seed)
        region = ((x >> 4) + (y >> 4) * 3 + c + seed) % 4
        noise = (hv >> np.uint32(24)).astype(np.int64)
        grad = (x * 3 + y * 2 + c * 40) & 255
        checker = np.where(((x ^ y) & 1) == 1, 255, 0)
        flat = 128 + c * 30 + 0 * x
        v = np.select([region == 0, region == 1, region == 2], [noise, grad, checker], flat)
        out[..., c] = v.astype(np.uint8)
    return out


def synth_mask(w, h, seed):
    """(h, w) uint8 in {0, 1}: an axis-aligned ellipse, a rectangle and scattered single pixels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    cx, cy = w * 2 // 5, h // 2
    a, b = max(w // 4, 1), max(h // 5, 1)
    ell = (x - cx) ** 2 * b * b + (y - cy) ** 2 * a * a < a * a * b * b
    rect = (x >= w * 3 // 4) & (x < w * 3 // 4 + max(w // 10, 1)) & (y >= h // 8) & (y < h // 8 + max(h // 6, 1))
    dots = (_mix(x, y, 7, seed) >> np.uint32(20)) < np.uint32(40)  # ~1% of the pixels
    return (ell | rect | dots).astype(np.uint8)


# ----------------------------------------------------------------------------
# References

def pil_resize(arr, dw, dh, resample):
    mode = "RGB" if arr.shape[2] == 3 else "L"
    im = Image.fromarray(arr if mode == "RGB" else arr[..., 0], mode)
    out = np.asarray(im.resize((dw, dh), resample))
    return out.reshape(dh, dw, arr.shape[2])


def cv_resize(arr, dw, dh, interp):
    out = cv2.resize(arr if arr.shape[2] > 1 else arr[..., 0], (dw, dh), interpolation=interp)
    return out.reshape(dh, dw, arr.shape[2])


def openclip_geometry(w, h, s):
    """torchvision 0.14 Resize(int) size rule and CenterCrop offsets -> (new_w, new_h, left, top)."""
    short, long_ = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long_ / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    top = int(round((nh - s) / 2.0))
    left = int(round((nw - s) / 2.0))
    return nw, nh, left, top


def preprocess_u8(rgb, mode, s):
    """The S x S uint8 RGB image each --preprocess mode feeds to ToTensor."""
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb, "RGB")
    if mode == "squash":
        return np.asarray(im.resize((s, s), Image.BICUBIC))
    if mode == "openclip":
        nw, nh, left, top = openclip_geometry(w, h, s)
        if (nw, nh) != (w, h):  # torchvision returns the image itself when the size already matches
            im = im.resize((nw, nh), Image.BICUBIC)
        a = np.asarray(im)
        return a[top:top + s, left:left + s]
    if mode == "official":
        big = cv2.resize(rgb, (1024, 1024))  # INTER_LINEAR; channel order does not matter to a resize
        return np.asarray(Image.fromarray(big, "RGB").resize((s, s), Image.BICUBIC))
    raise ValueError(mode)


def to_tensor_normalize(u8):
    t = torch.from_numpy(np.array(u8, copy=True)).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.as_tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(STD, dtype=torch.float32)[:, None, None]
    return t.sub(mean).div(std).numpy()


def mask_preprocess(m01, mode, r):
    """GT mask (0/1) at the metric resolution r: official = cv2 nearest to 1024 then cv2 nearest to r (the
    published code); squash = Pillow nearest to r x r; openclip = Pillow nearest with the openclip geometry."""
    m = (m01 > 0).astype(np.uint8) * 255
    if mode == "official":
        big = cv2.resize(m, (1024, 1024), interpolation=cv2.INTER_NEAREST)
        big = (big > 0).astype(np.uint8)
        return cv2.resize(big, (r, r), interpolation=cv2.INTER_NEAREST)
    im = Image.fromarray(m, "L")
    if mode == "squash":
        return (np.asarray(im.resize((r, r), Image.NEAREST)) > 0).astype(np.uint8)
    if mode == "openclip":
        h, w = m.shape
        nw, nh, left, top = openclip_geometry(w, h, r)
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.NEAREST)
        a = np.asarray(im)
        return (a[top:top + r, left:left + r] > 0).astype(np.uint8)
    raise ValueError(mode)


# ----------------------------------------------------------------------------

T = {}


def put_result(key, params, out):
    T[f"{key}.params"] = np.asarray(params, np.int32)
    out = np.ascontiguousarray(out)
    if out.size <= FULL_LIMIT:
        T[f"{key}.out"] = out
    else:
        T[f"{key}.crc"] = np.asarray([zlib.crc32(out.tobytes())], np.int64)
        T[f"{key}.sub"] = np.ascontiguousarray(out[::SUB, ::SUB] if out.ndim <= 3 and out.dtype == np.uint8
                                               else out[:, ::SUB, ::SUB])


def resize_cases():
    # (sw, sh, cn, dw, dh, seed)
    bicubic = [
        (37, 23, 3, 40, 30, 1), (13, 9, 3, 5, 4, 2), (5, 4, 3, 13, 9, 3), (1, 1, 3, 4, 3, 4), (7, 1, 3, 3, 5, 5),
        (16, 16, 3, 16, 9, 6), (16, 16, 3, 9, 16, 7), (16, 16, 3, 16, 16, 8), (64, 48, 3, 31, 37, 9),
        (37, 23, 1, 24, 30, 10), (3, 50, 3, 40, 7, 11),
        (37, 23, 3, 240, 240, 12), (300, 200, 3, 240, 240, 13), (1024, 1024, 3, 240, 240, 14),
        (241, 239, 3, 240, 240, 15), (700, 700, 3, 240, 240, 16), (1500, 1000, 3, 240, 240, 17),
        (320, 240, 3, 320, 240, 18), (239, 241, 1, 240, 240, 19), (1024, 1024, 3, 400, 400, 20),
    ]
    for i, (sw, sh, cn, dw, dh, seed) in enumerate(bicubic):
        put_result(f"pil_bicubic.{i}", (sw, sh, cn, dw, dh, seed), pil_resize(synth(sw, sh, cn, seed), dw, dh,
                                                                              Image.BICUBIC))
    linear = [
        (13, 9, 3, 31, 17, 1), (31, 17, 3, 13, 9, 2), (50, 40, 3, 23, 61, 3), (200, 140, 3, 100, 70, 4),
        (1, 1, 3, 4, 4, 5), (2, 2, 3, 5, 7, 6), (10, 1, 3, 3, 4, 7), (9, 7, 3, 9, 7, 8), (30, 20, 1, 47, 13, 9),
        (100, 70, 3, 1024, 1024, 10), (1500, 1000, 3, 1024, 1024, 11), (700, 700, 3, 1024, 1024, 12),
        (2048, 1536, 3, 1024, 768, 13), (1024, 1024, 3, 1024, 1024, 14), (1023, 1025, 3, 1024, 1024, 15),
        (480, 640, 1, 1024, 1024, 16), (2, 3, 1, 4096, 5, 17), (5, 4, 3, 2048, 3, 18),  # the last two: .5 ties
    ]
    for i, (sw, sh, cn, dw, dh, seed) in enumerate(linear):
        put_result(f"cv_linear.{i}", (sw, sh, cn, dw, dh, seed), cv_resize(synth(sw, sh, cn, seed), dw, dh,
                                                                           cv2.INTER_LINEAR))
    nearest = [
        (37, 23, 1, 100, 100, 1), (100, 100, 1, 37, 23, 2), (13, 9, 3, 31, 17, 3), (700, 700, 1, 400, 400, 4),
        (1500, 1000, 1, 240, 240, 5), (3, 3, 1, 1024, 1024, 6), (1024, 1024, 1, 400, 400, 7),
        (7, 5, 1, 7, 5, 8), (1, 1, 1, 3, 2, 9),
        (6, 2, 1, 34, 7, 10),  # cv: floor(x * (1 / (34 / 6))) != floor(x * 6 / 34) once; Pillow: accumulated xo
    ]
    for i, (sw, sh, cn, dw, dh, seed) in enumerate(nearest):
        src = synth(sw, sh, cn, seed)
        put_result(f"pil_nearest.{i}", (sw, sh, cn, dw, dh, seed), pil_resize(src, dw, dh, Image.NEAREST))
        put_result(f"cv_nearest.{i}", (sw, sh, cn, dw, dh, seed), cv_resize(src, dw, dh, cv2.INTER_NEAREST))


def preprocess_cases():
    # (sw, sh, mode, S, bgr, seed)
    cases = [
        (37, 23, "squash", 32, 0, 1), (300, 200, "squash", 32, 0, 2), (32, 32, "squash", 32, 0, 3),
        (43, 32, "openclip", 32, 0, 4), (47, 33, "openclip", 32, 0, 5), (33, 47, "openclip", 32, 0, 6),
        (37, 32, "openclip", 32, 0, 7), (100, 70, "official", 32, 0, 8), (100, 70, "official", 32, 1, 9),
        (37, 23, "squash", 32, 1, 10), (32, 32, "openclip", 32, 0, 11),
        (1024, 1024, "squash", 240, 0, 12), (241, 239, "squash", 240, 0, 13), (37, 23, "squash", 240, 1, 14),
        (320, 240, "openclip", 240, 0, 15), (240, 320, "openclip", 240, 0, 16), (333, 250, "openclip", 240, 0, 17),
        (250, 333, "openclip", 240, 0, 18), (241, 300, "openclip", 240, 0, 19), (245, 240, "openclip", 240, 0, 20),
        (240, 240, "openclip", 240, 0, 21), (1500, 1000, "official", 240, 1, 22), (700, 700, "official", 240, 0, 23),
        (1024, 1024, "official", 240, 0, 24), (1500, 1000, "squash", 240, 0, 25),
    ]
    for i, (sw, sh, mode, s, bgr, seed) in enumerate(cases):
        u8 = preprocess_u8(synth(sw, sh, 3, seed), mode, s)
        assert u8.shape == (s, s, 3)
        fed = u8[..., ::-1] if bgr else u8
        x = to_tensor_normalize(fed)
        key = f"preprocess.{i}"
        T[f"{key}.params"] = np.asarray((sw, sh, MODES[mode], s, bgr, seed), np.int32)
        T[f"{key}.u8_crc"] = np.asarray([zlib.crc32(np.ascontiguousarray(u8).tobytes())], np.int64)
        if x.size <= FULL_LIMIT:
            T[f"{key}.out"] = x
        else:
            T[f"{key}.sub"] = np.ascontiguousarray(x[:, ::SUB, ::SUB])
    # ToTensor + Normalize of every 8-bit value, per channel: (3, 256)
    lut = np.arange(256, dtype=np.uint8)
    T["normalize_lut"] = to_tensor_normalize(np.stack([lut, lut, lut], -1)[None])[:, 0, :]
    # (sw, sh, mode, R, seed)
    masks = [
        (37, 23, "official", 40, 1), (37, 23, "squash", 40, 2), (37, 23, "openclip", 40, 3),
        (700, 700, "official", 400, 4), (1500, 1000, "official", 400, 5), (700, 700, "squash", 400, 6),
        (1500, 1000, "squash", 400, 7), (1500, 1000, "openclip", 240, 8), (1024, 1024, "official", 400, 9),
        (900, 900, "official", 256, 10),
    ]
    for i, (sw, sh, mode, r, seed) in enumerate(masks):
        put_result(f"mask.{i}", (sw, sh, MODES[mode], r, seed), mask_preprocess(synth_mask(sw, sh, seed), mode, r))


def smooth(w, h, seed):
    """A smooth RGB test picture (JPEG-friendly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0 + seed)
    g = 128 + 100 * np.cos(y / 4.0 - seed)
    b = 128 + 90 * np.sin((x + y) / 7.0)
    return np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)


def write_png_adam7(path, rgb):
    """An interlaced (Adam7) 8-bit RGB PNG; neither Pillow nor OpenCV writes those."""
    import struct
    h, w = rgb.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                raw += b"\x00" + row.tobytes()

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) +
                chunk(b"IEND", b""))


def decode_cases():
    os.makedirs(IMG_DIR, exist_ok=True)
    rng = np.random.default_rng(123)
    files = {}
    rgb = synth(13, 11, 3, 5)
    Image.fromarray(rgb, "RGB").save(os.path.join(IMG_DIR, "rgb8.png"))
    files["rgb8.png"] = rgb
    rgb16 = rng.integers(0, 65536, (9, 10, 3), dtype=np.uint16)
    cv2.imwrite(os.path.join(IMG_DIR, "rgb16.png"), rgb16[..., ::-1])
    files["rgb16.png"] = (rgb16 >> 8).astype(np.uint8)  # OpenCV (and Pillow for RGB): the high byte
    g8 = synth(12, 7, 1, 6)[..., 0]
    Image.fromarray(g8, "L").save(os.path.join(IMG_DIR, "gray8.png"))
    files["gray8.png"] = np.repeat(g8[..., None], 3, 2)
    g16 = rng.integers(0, 65536, (6, 8), dtype=np.uint16)
    g16[0, :4] = (0, 1, 255, 256)
    cv2.imwrite(os.path.join(IMG_DIR, "gray16.png"), g16)
    files["gray16.png"] = np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, 2)  # OpenCV's rule
    la = rng.integers(0, 256, (5, 9, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(os.path.join(IMG_DIR, "gray_alpha.png"))
    files["gray_alpha.png"] = np.repeat(la[..., :1], 3, 2)
    rgba = rng.integers(0, 256, (7, 6, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(os.path.join(IMG_DIR, "rgba.png"))
    files["rgba.png"] = rgba[..., :3]  # alpha dropped, no compositing
    pal = Image.fromarray(synth(10, 8, 3, 9), "RGB").convert("P", palette=Image.ADAPTIVE, colors=12)
    pal.save(os.path.join(IMG_DIR, "palette.png"), transparency=2)
    files["palette.png"] = np.asarray(Image.open(os.path.join(IMG_DIR, "palette.png")).convert("RGB"))
    bits = (rng.integers(0, 2, (6, 11)) * 255).astype(np.uint8)
    Image.fromarray(bits, "L").convert("1").save(os.path.join(IMG_DIR, "bits1.png"))
    files["bits1.png"] = np.repeat(bits[..., None], 3, 2)
    adam = synth(19, 13, 3, 11)
    write_png_adam7(os.path.join(IMG_DIR, "adam7.png"), adam)
    files["adam7.png"] = adam
    pal4 = Image.fromarray(synth(9, 7, 3, 12), "RGB").convert("P", palette=Image.ADAPTIVE, colors=10)
    pal4.save(os.path.join(IMG_DIR, "palette4.png"), bits=4)
    assert Image.open(os.path.join(IMG_DIR, "palette4.png")).info.get("bits", 4) <= 8
    files["palette4.png"] = np.asarray(Image.open(os.path.join(IMG_DIR, "palette4.png")).convert("RGB"))
    trns = synth(8, 6, 3, 13)
    Image.fromarray(trns, "RGB").save(os.path.join(IMG_DIR, "rgb_trns.png"), transparency=tuple(int(v) for v in
                                                                                              trns[0, 0]))
    files["rgb_trns.png"] = trns
    bmp = synth(11, 6, 3, 14)  # a format that goes through stb_image
    Image.fromarray(bmp, "RGB").save(os.path.join(IMG_DIR, "rgb.bmp"))
    files["rgb.bmp"] = bmp
    sm = smooth(32, 24, 1)
    Image.fromarray(sm, "RGB").save(os.path.join(IMG_DIR, "q95_444.jpg"), quality=95, subsampling=0)
    Image.fromarray(sm, "RGB").save(os.path.join(IMG_DIR, "q75_420.jpg"), quality=75, subsampling=2)
    Image.fromarray(sm, "RGB").save(os.path.join(IMG_DIR, "progressive.jpg"), quality=90, progressive=True)
    Image.fromarray(sm[..., 1], "L").save(os.path.join(IMG_DIR, "gray.jpg"), quality=90)
    Image.fromarray(sm, "RGB").convert("CMYK").save(os.path.join(IMG_DIR, "cmyk.jpg"), quality=90)
    for name in ("q95_444.jpg", "q75_420.jpg", "progressive.jpg", "gray.jpg"):
        p = np.asarray(Image.open(os.path.join(IMG_DIR, name)).convert("RGB"))
        c = cv2.imread(os.path.join(IMG_DIR, name), cv2.IMREAD_COLOR)[..., ::-1]
        assert np.array_equal(p, c), name  # both are libjpeg
        files[name] = p
    # CMYK: Pillow and OpenCV convert differently; we follow OpenCV
    files["cmyk.jpg"] = cv2.imread(os.path.join(IMG_DIR, "cmyk.jpg"), cv2.IMREAD_COLOR)[..., ::-1]
    for name, arr in files.items():
        path = os.path.join(IMG_DIR, name)
        if name.endswith((".png", ".bmp")):  # OpenCV, Pillow (except gray16) and the rule above must agree
            c = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
            assert np.array_equal(c, arr), name
        T[f"decode.{name}"] = np.ascontiguousarray(arr)
    # masks: values > 0 are anomalous, at full bit depth
    m8 = np.zeros((5, 6), np.uint8)
    m8[1, 1:5] = (1, 2, 128, 255)
    Image.fromarray(m8, "L").save(os.path.join(IMG_DIR, "mask8.png"))
    T["mask.mask8.png"] = (m8 > 0).astype(np.uint8)
    m16 = np.zeros((4, 7), np.uint16)
    m16[2, 0:4] = (1, 255, 256, 65535)
    cv2.imwrite(os.path.join(IMG_DIR, "mask16.png"), m16)
    T["mask.mask16.png"] = (m16 > 0).astype(np.uint8)
    mrgb = np.zeros((3, 4, 3), np.uint8)
    mrgb[0, 0] = (255, 255, 255)
    mrgb[1, 2] = (0, 0, 9)
    mrgb[2, 3] = (7, 0, 0)
    Image.fromarray(mrgb, "RGB").save(os.path.join(IMG_DIR, "mask_rgb.png"))
    T["mask.mask_rgb.png"] = (mrgb.max(-1) > 0).astype(np.uint8)


def main():
    resize_cases()
    preprocess_cases()
    decode_cases()
    out = os.path.join(FIX, "image_ref.safetensors")
    st_io.save(out, T, metadata={"generator": "tests/ref/make_image_fixtures.py", "pillow": PIL.__version__,
                                 "opencv": cv2.__version__, "torch": torch.__version__})
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(T)} tensors) and {IMG_DIR}")


if __name__ == "__main__":
    main()

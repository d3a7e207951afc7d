"""test_convert_openclip.py - weights/convert_openclip.py on synthetic ViT-L/14-shaped checkpoints of reduced depth
(2 vision blocks, 1 text block; no download), in the three input forms it accepts:
  laion   a training checkpoint {"state_dict": {"module." + name: tensor}} (OpenCLIP's releases), tag laion2b_s32b_b82k
  openai  an OpenAI-style TorchScript archive, F16, with the extra buffers input_resolution / context_length /
          vocab_size, converted without flags (the archive implies QuickGELU)
  hf      a safetensors file (Hugging Face open_clip_model.safetensors, BF16 here) with --model ViT-L-14-quickgelu
Each output must hold every weight (the extra buffers dropped) equal to the source in F32 and say its activation in
the metadata; promptad must load each one by shape (encode-image runs), the LAION conversion giving the bits of the
original file and the OpenAI one (QuickGELU) another embedding than the same F16 weights with GELU.

Usage: /usr/bin/python3 tests/test_convert_openclip.py PROMPTAD_BINARY   (exit 77 = skipped: no torch)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
import st_io  # noqa: E402

CONVERT = os.path.join(HERE, "..", "weights", "convert_openclip.py")


def metadata(path):
    with open(path, "rb") as f:
        return json.loads(f.read(struct.unpack("<Q", f.read(8))[0])).get("__metadata__", {})


def scripted_module(sd, torch):
    """A TorchScript module whose state_dict is sd (nested submodules per dotted name), as OpenAI ships CLIP."""
    root = torch.nn.Module()
    for name, t in sd.items():
        parts, m = name.split("."), root
        for p in parts[:-1]:
            if not hasattr(m, p):
                m.add_module(p, torch.nn.Module())
            m = getattr(m, p)
        if t.dtype.is_floating_point:
            m.register_parameter(parts[-1], torch.nn.Parameter(t, requires_grad=False))
        else:
            m.register_buffer(parts[-1], t)
    return torch.jit.script(root)


def bf16_bytes(a):
    u = a.astype(np.float32).reshape(-1).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


def write_bf16_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, a in sd.items():
        raw = bf16_bytes(a).tobytes()
        header[k] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check_tensors(out, want, tag):
    got = st_io.load(out)
    assert set(got) == set(want), f"{tag}: names differ: {sorted(set(got) ^ set(want))[:5]}"
    for k, a in want.items():
        assert got[k].dtype == np.float32 and got[k].shape == a.shape, f"{tag}: {k}"
        assert np.array_equal(got[k], a), f"{tag}: {k} differs"


def encode(promptad, weights, image, out):
    r = subprocess.run([promptad, "encode-image", "--weights", weights, "--image", image, "--device", "cpu", "--out",
                        out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return st_io.load(out)


def main():
    try:
        import torch
        from PIL import Image
    except ImportError as e:
        print(f"skipped: {e}")
        return 77
    promptad = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "l14.safetensors")
        subprocess.run([promptad, "make-model", "--preset", "vit-l-14", "--layers", "2", "--text-layers", "1",
                        "--vocab-size", "1000", "--seed", "4", "--out", src], check=True, capture_output=True)
        sd = st_io.load(src)
        assert sd["visual.conv1.weight"].shape == (1024, 3, 14, 14) and sd["visual.positional_embedding"].shape[0] == 257
        # laion: a training checkpoint with DDP prefixes, F32
        pt = os.path.join(tmp, "laion.pt")
        torch.save({"epoch": 32, "state_dict": {"module." + k: torch.from_numpy(v) for k, v in sd.items()}}, pt)
        out_laion = os.path.join(tmp, "laion.safetensors")
        subprocess.run([sys.executable, CONVERT, pt, out_laion, "--model", "ViT-L-14", "--pretrained",
                        "laion2b_s32b_b82k"], check=True, capture_output=True)
        check_tensors(out_laion, sd, "laion")
        m = metadata(out_laion)
        assert m["activation"] == "gelu" and m["pretrained"] == "laion2b_s32b_b82k", m
        # openai: a TorchScript archive in F16 with the extra buffers
        sd16 = {k: torch.from_numpy(v).half() for k, v in sd.items()}
        extra = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
                 "vocab_size": torch.tensor(1000)}
        arch = os.path.join(tmp, "ViT-L-14.pt")
        torch.jit.save(scripted_module({**sd16, **extra}, torch), arch)
        out_openai = os.path.join(tmp, "openai.safetensors")
        subprocess.run([sys.executable, CONVERT, arch, out_openai], check=True, capture_output=True)
        check_tensors(out_openai, {k: v.float().numpy() for k, v in sd16.items()}, "openai")
        assert metadata(out_openai)["activation"] == "quick_gelu"
        # hf: BF16 safetensors with a -quickgelu model name
        hf = os.path.join(tmp, "open_clip_model.safetensors")
        write_bf16_safetensors(hf, sd)
        out_hf = os.path.join(tmp, "hf.safetensors")
        subprocess.run([sys.executable, CONVERT, hf, out_hf, "--model", "ViT-L-14-quickgelu"], check=True,
                       capture_output=True)
        bf = {k: (bf16_bytes(v).astype(np.uint32) << 16).view(np.float32).reshape(v.shape) for k, v in sd.items()}
        check_tensors(out_hf, bf, "hf")
        assert metadata(out_hf)["activation"] == "quick_gelu"
        # --activation wins over the tag
        out_forced = os.path.join(tmp, "forced.safetensors")
        subprocess.run([sys.executable, CONVERT, hf, out_forced, "--pretrained", "openai", "--activation", "gelu"],
                       check=True, capture_output=True)
        assert metadata(out_forced)["activation"] == "gelu"
        # promptad loads them by shape
        img = os.path.join(tmp, "img.png")
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(img)
        e_src = encode(promptad, src, img, os.path.join(tmp, "e_src.safetensors"))
        e_laion = encode(promptad, out_laion, img, os.path.join(tmp, "e_laion.safetensors"))
        e_openai = encode(promptad, out_openai, img, os.path.join(tmp, "e_openai.safetensors"))
        assert e_laion["cls"].shape == (768,) and e_laion["mid2"].shape == (256, 1024)
        for k in ("cls", "tokens", "mid1", "mid2"):
            assert np.array_equal(e_src[k], e_laion[k]), f"laion conversion changed {k}"
            assert np.isfinite(e_openai[k]).all(), k
        # the same F16 weights converted as GELU: same input, another embedding
        out_gelu16 = os.path.join(tmp, "openai_gelu.safetensors")
        subprocess.run([sys.executable, CONVERT, arch, out_gelu16, "--activation", "gelu"], check=True,
                       capture_output=True)
        e_gelu16 = encode(promptad, out_gelu16, img, os.path.join(tmp, "e_gelu16.safetensors"))
        assert np.array_equal(e_openai["pixels"], e_gelu16["pixels"])
        d = np.abs(e_openai["cls"] - e_gelu16["cls"]).max() / np.abs(e_gelu16["cls"]).max()
        assert d > 1e-3, f"QuickGELU and GELU gave nearly the same embedding (rel diff {d})"
    print("ok: laion (state_dict), openai (TorchScript, F16) and hf (BF16 safetensors) conversions")
    return 0


if __name__ == "__main__":
    sys.exit(main())

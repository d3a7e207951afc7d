#!/usr/bin/env python3
"""convert_openclip.py - convert an OpenCLIP / OpenAI CLIP checkpoint into a safetensors file with OpenCLIP names (F32)
that promptad loads by shape (any ViT: B/16, B/16+, L/14; the CLIP ModifiedResNets such as RN101).

Usage: python3 convert_openclip.py IN OUT.safetensors [--model NAME] [--pretrained TAG]
                                                       [--activation auto|gelu|quick_gelu]

IN is one of
  - a state_dict .pt/.bin, or a training checkpoint with a "state_dict" entry, possibly with DDP "module." prefixes
    (OpenCLIP's releases and Hugging Face open_clip_pytorch_model.bin);
  - OpenAI's TorchScript archives (ViT-L-14.pt, RN101.pt from openaipublic): their bookkeeping entries
    input_resolution, context_length and vocab_size are dropped, as open_clip does, and so are batch-norm counters
    (num_batches_tracked);
  - a safetensors file (Hugging Face open_clip_model.safetensors; F32, F16 or BF16).

The MLP activation is not visible in the shapes (docs/clip.md#activation), so the output's metadata says it:
"activation": "quick_gelu" for OpenAI's weights (the pretrained tag `openai`, a model name ending in -quickgelu, or
an OpenAI TorchScript archive when neither --model nor --pretrained is given), "gelu" otherwise; --activation forces
it. Needs torch (and numpy for safetensors inputs); the reading and writing are shared with convert_torchvision.py
(checkpoint_io.py).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

from checkpoint_io import is_torchscript, load_state_dict, write_f32_safetensors

OPENAI_EXTRA = ("input_resolution", "context_length", "vocab_size")  # buffers of OpenAI's archives, not weights
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """{name: float32 tensor} of a safetensors file (F32, F16, F64 and BF16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > 1 << 30:
            raise ValueError(f"{path}: header of {n} bytes")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[b:end]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=_ST_DTYPES[e["dtype"]])
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']} is not a float type")
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).astype(np.float32))
    return out


def choose_activation(args, scripted):
    if args.activation != "auto":
        return args.activation, "--activation"
    if args.pretrained:
        return ("quick_gelu" if args.pretrained == "openai" else "gelu"), f"pretrained tag {args.pretrained}"
    if args.model:
        return ("quick_gelu" if args.model.endswith("-quickgelu") else "gelu"), f"model {args.model}"
    if scripted:
        return "quick_gelu", "an OpenAI TorchScript archive"
    return "gelu", "the OpenCLIP default"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--model", help="OpenCLIP model name, e.g. ViT-L-14 or ViT-B-16-plus-240")
    ap.add_argument("--pretrained", help="OpenCLIP pretrained tag, e.g. openai, laion2b_s32b_b82k, laion400m_e32")
    ap.add_argument("--activation", choices=("auto", "gelu", "quick_gelu"), default="auto")
    args = ap.parse_args(argv)
    if args.src.endswith(".safetensors"):
        sd, scripted = read_safetensors(args.src), False
        sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    else:
        sd, scripted = load_state_dict(args.src), is_torchscript(args.src)
    sd = {k: v for k, v in sd.items() if k not in OPENAI_EXTRA and not k.endswith("num_batches_tracked")}
    if "visual.conv1.weight" not in sd and "token_embedding.weight" not in sd:
        sys.exit(f"{args.src}: no visual.conv1.weight nor token_embedding.weight: not an OpenCLIP checkpoint")
    act, why = choose_activation(args, scripted)
    meta = {"format": "pt", "source": os.path.basename(args.src), "activation": act}
    if args.model:
        meta["model"] = args.model
    if args.pretrained:
        meta["pretrained"] = args.pretrained
    write_f32_safetensors(args.dst, sd, meta)
    ls = sd.get("logit_scale")
    print(f"wrote {args.dst}: {len(sd)} tensors, activation {act} ({why}), logit_scale "
          f"{float(ls) if ls is not None else float('nan'):.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""convert_openclip.py - convert an OpenCLIP .pt checkpoint (a state_dict, or a training checkpoint with a
"state_dict" entry, possibly with DDP "module." prefixes, or OpenAI's TorchScript archives such as RN101.pt, the
`openai` weights of OpenCLIP's RN101) into a safetensors file with OpenCLIP names (F32). Dropped: OpenAI's
bookkeeping entries (input_resolution, context_length, vocab_size) and batch-norm counters (num_batches_tracked).
Usage: python3 convert_openclip.py IN.pt OUT.safetensors   (needs torch; no safetensors package needed)"""
import contextlib
import json
import struct
import sys
import zipfile

import torch


DROP = ("input_resolution", "context_length", "vocab_size")


def load_state_dict(src):
    """The checkpoint's state dict: a pickle (state dict, training checkpoint, nn.Module) or a TorchScript archive."""
    with zipfile.ZipFile(src) if zipfile.is_zipfile(src) else contextlib.nullcontext() as z:
        scripted = z is not None and any(n.endswith("/constants.pkl") for n in z.namelist())
    # OpenAI's releases are TorchScript archives (torch.load would dispatch to torch.jit.load with a warning)
    obj = torch.jit.load(src, map_location="cpu") if scripted else torch.load(src, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        obj = obj.state_dict()  # a pickled or scripted module
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
    return {k: v for k, v in sd.items() if k not in DROP and not k.endswith("num_batches_tracked")}


def main(src, dst):
    sd = load_state_dict(src)
    header, blobs, off = {"__metadata__": {"format": "pt", "source": src.split("/")[-1]}}, [], 0
    for name, t in sd.items():
        raw = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for raw in blobs:
            f.write(raw)
    import os
    os.replace(dst + ".part", dst)
    print(f"wrote {dst}: {len(sd)} tensors, logit_scale {float(sd.get('logit_scale', torch.tensor(float('nan')))):.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

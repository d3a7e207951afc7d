"""checkpoint_io.py - what the checkpoint converters of weights/ share: reading a PyTorch checkpoint as a flat
state_dict, writing tensors as an F32 safetensors file (atomically: OUT.part, then renamed), and the two-argument
command line. Only torch is needed: the safetensors layout is written here (an 8-byte little-endian header length,
the JSON header padded with spaces to a multiple of 8, then the raw tensors in header order)."""
import contextlib
import json
import os
import struct
import sys
import zipfile

import torch


def is_torchscript(src):
    """Whether src is a TorchScript archive (OpenAI's CLIP releases are)."""
    with zipfile.ZipFile(src) if zipfile.is_zipfile(src) else contextlib.nullcontext() as z:
        return z is not None and any(n.endswith("/constants.pkl") for n in z.namelist())


def load_state_dict(src):
    """The tensors of a checkpoint file: a state_dict, a training checkpoint with a "state_dict" entry, a pickled
    nn.Module, or a TorchScript archive (OpenAI's CLIP releases); DDP "module." prefixes are removed."""
    scripted = is_torchscript(src)
    # torch.load would dispatch a TorchScript archive to torch.jit.load with a warning
    obj = torch.jit.load(src, map_location="cpu") if scripted else torch.load(src, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        obj = obj.state_dict()  # a pickled or scripted module
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def write_f32_safetensors(dst, tensors, metadata):
    """Writes the dict name -> tensor (in its order, converted to F32) with the string dict metadata to dst."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
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
    os.replace(dst + ".part", dst)


def run_cli(main, doc):
    """Calls main(IN, OUT) with the two command-line arguments, or exits with the usage text doc."""
    if len(sys.argv) != 3:
        sys.exit(doc)
    main(sys.argv[1], sys.argv[2])

"""st_io.py - minimal safetensors reader/writer for the Python references (json + struct + numpy; Debian has no
safetensors package). Run the references with /usr/bin/python3."""
import json
import struct

import numpy as np

_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "U8": np.uint8, "I8": np.int8, "I32": np.int32,
       "I64": np.int64, "BOOL": np.bool_}
_DT_NAME = {np.dtype(v): k for k, v in _DT.items()}


def load(path):
    """Returns {name: np.ndarray} (BF16 is widened to float32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[b:end]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DT[e["dtype"]])
        out[name] = arr.reshape(e["shape"]).copy()
    return out


def save(path, tensors, metadata=None):
    """Writes {name: np.ndarray} in insertion order (C-contiguous, little-endian)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr)
        if a.dtype not in _DT_NAME:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DT_NAME[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)

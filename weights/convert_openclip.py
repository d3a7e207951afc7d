#!/usr/bin/env python3
"""convert_openclip.py - convert an OpenCLIP .pt checkpoint (a state_dict, or a training checkpoint with a
"state_dict" entry, possibly with DDP "module." prefixes) into a safetensors file with OpenCLIP names (F32).
Usage: python3 convert_openclip.py IN.pt OUT.safetensors   (needs torch; no safetensors package needed)"""
import torch

from checkpoint_io import load_state_dict, run_cli, write_f32_safetensors


def main(src, dst):
    sd = load_state_dict(src)
    write_f32_safetensors(dst, sd, {"format": "pt", "source": src.split("/")[-1]})
    print(f"wrote {dst}: {len(sd)} tensors, logit_scale {float(sd.get('logit_scale', torch.tensor(float('nan')))):.4f}")


if __name__ == "__main__":
    run_cli(main, __doc__)

#!/usr/bin/env python3
"""convert_openclip.py - convert an OpenCLIP .pt checkpoint (a state_dict, or a training checkpoint with a
"state_dict" entry, possibly with DDP "module." prefixes, or OpenAI's TorchScript archives such as RN101.pt, the
`openai` weights of OpenCLIP's RN101) into a safetensors file with OpenCLIP names (F32). Dropped: OpenAI's
bookkeeping entries (input_resolution, context_length, vocab_size) and batch-norm counters (num_batches_tracked).
Usage: python3 convert_openclip.py IN.pt OUT.safetensors   (needs torch; no safetensors package needed)"""
import torch

from checkpoint_io import load_state_dict, run_cli, write_f32_safetensors


# OpenAI's bookkeeping entries, not tensors of the model
DROP = ("input_resolution", "context_length", "vocab_size")


def main(src, dst):
    sd = {k: v for k, v in load_state_dict(src).items() if k not in DROP and not k.endswith("num_batches_tracked")}
    write_f32_safetensors(dst, sd, {"format": "pt", "source": src.split("/")[-1]})
    print(f"wrote {dst}: {len(sd)} tensors, logit_scale {float(sd.get('logit_scale', torch.tensor(float('nan')))):.4f}")


if __name__ == "__main__":
    run_cli(main, __doc__)

#!/usr/bin/env bash
# get_weights.sh - fetch the real CLIP weights and the BPE vocabulary once (needs internet), into this folder:
#   weights/vit_b_16_plus_240-laion400m_e32.safetensors   (what PromptAD uses; converted from the release .pt)
#   weights/bpe_simple_vocab_16e6.txt.gz                   (the CLIP tokenizer vocabulary)
#   weights/wide_resnet50_2.safetensors                    (with --resnet: torchvision's ImageNet wide_resnet50_2,
#                                                           the backbone of PatchCore, PaDiM and SPADE)
#   weights/RN101-openai.safetensors                       (with --rn101: OpenAI's CLIP RN101, OpenCLIP's RN101
#                                                           `openai`, for PromptAD on a CLIP ResNet)
# Usage: bash weights/get_weights.sh [--e31 | --resnet | --rn101 | --vit-l-14-openai | --vit-l-14-laion2b]
#   default  downloads the laion400m_e32 release checkpoint (the file PromptAD's code loads), checks the sha256
#            prefix 699c4b84 in its name, and converts it to safetensors (needs python3 with torch)
#   --e31    takes the laion400m_e31 safetensors from the Hugging Face hub directly (no torch needed; note that
#            modern open_clip silently maps laion400m_e32 to these e31 weights, docs/clip.md#weight-names)
#   --resnet torchvision's wide_resnet50_2 IMAGENET1K_V1 weights (wide_resnet50_2-95faca4d.pth; the name carries the
#            sha256 prefix, checked), converted by convert_torchvision.py (needs python3 with torch)
#   --rn101  OpenAI's RN101.pt (a TorchScript archive; the folder in its URL is its full sha256, checked), converted
#            by convert_openclip.py with QuickGELU recorded for its text tower (needs python3 with torch)
#   --vit-l-14-openai    OpenAI's CLIP ViT-L/14 (OpenCLIP ViT-L-14 `openai`): ViT-L-14.pt from openaipublic, whose URL
#            carries its full sha256 (checked, as OpenAI's clip package does), converted with QuickGELU recorded
#            (docs/clip.md#activation; needs python3 with torch) to vit_l_14-openai.safetensors
#   --vit-l-14-laion2b   OpenCLIP ViT-L-14 `laion2b_s32b_b82k`: open_clip_model.safetensors of the Hugging Face repository
#            laion/CLIP-ViT-L-14-laion2B-s32B-b82K, converted (numpy only) to vit_l_14-laion2b_s32b_b82k.safetensors.
#            This script does not know that file's sha256 and refuses to guess: set PROMPTAD_EXPECTED_SHA256 to the
#            hash you verified (e.g. the LFS sha256 shown on the file's Hugging Face page) and it is checked
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

fetch() { # url out
    if command -v curl >/dev/null; then curl -fL --retry 3 -o "$2.part" "$1"; else wget -O "$2.part" "$1"; fi
    mv "$2.part" "$2"
}
check_sha() { # file expected-prefix-or-full
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    case "$got" in "$2"*) echo "ok: $1 sha256 $got" ;; *) echo "error: $1: sha256 $got does not match $2" >&2; exit 1 ;; esac
}

if [ "${1:-}" = "--vit-l-14-laion2b" ] && [ -z "${PROMPTAD_EXPECTED_SHA256:-}" ]; then # refuse before any download
    echo "error: no sha256 is known to this script for open_clip_model.safetensors of" >&2
    echo "  laion/CLIP-ViT-L-14-laion2B-s32B-b82K; it will not download an unverified file. Set" >&2
    echo "  PROMPTAD_EXPECTED_SHA256 to the hash you verified (the LFS sha256 on the file's Hugging Face page)." >&2
    exit 1
fi
if [ "${1:-}" = "--vit-l-14-laion2b" ] && ! [[ "$PROMPTAD_EXPECTED_SHA256" =~ ^[0-9a-f]{64}$ ]]; then
    echo "error: PROMPTAD_EXPECTED_SHA256 must be a full sha256 (64 lowercase hex digits)" >&2
    exit 1
fi

vocab=bpe_simple_vocab_16e6.txt.gz
if [ ! -f "$vocab" ]; then
    fetch https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz "$vocab"
fi
check_sha "$vocab" 924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a

if [ "${1:-}" = "--resnet" ]; then
    pth=wide_resnet50_2-95faca4d.pth
    out=wide_resnet50_2.safetensors
    [ -f "$pth" ] || fetch "https://download.pytorch.org/models/$pth" "$pth"
    check_sha "$pth" 95faca4d
    [ -f "$out" ] || python3 "$here/convert_torchvision.py" "$pth" "$out"
    echo "done: $here/$out"
    exit 0
fi

if [ "${1:-}" = "--rn101" ]; then
    sha=8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599
    pt=RN101.pt
    out=RN101-openai.safetensors
    [ -f "$pt" ] || fetch "https://openaipublic.azureedge.net/clip/models/$sha/$pt" "$pt"
    check_sha "$pt" "$sha"
    [ -f "$out" ] || python3 "$here/convert_openclip.py" "$pt" "$out" --model RN101 --pretrained openai
    echo "done: $here/$out (set model.weights to it)"
    exit 0
fi

if [ "${1:-}" = "--vit-l-14-openai" ]; then
    sha=b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836 # the folder of the URL is the file's sha256
    pt=ViT-L-14.pt
    out=vit_l_14-openai.safetensors
    [ -f "$pt" ] || fetch "https://openaipublic.azureedge.net/clip/models/$sha/$pt" "$pt"
    check_sha "$pt" "$sha"
    [ -f "$out" ] || python3 "$here/convert_openclip.py" "$pt" "$out" --model ViT-L-14 --pretrained openai
    echo "done: $here/$out (set model.weights to it)"
    exit 0
fi

if [ "${1:-}" = "--vit-l-14-laion2b" ]; then
    src=vit_l_14-laion2b_s32b_b82k-open_clip_model.safetensors
    out=vit_l_14-laion2b_s32b_b82k.safetensors
    [ -f "$src" ] || fetch "https://huggingface.co/laion/CLIP-ViT-L-14-laion2B-s32B-b82K/resolve/main/open_clip_model.safetensors" "$src"
    check_sha "$src" "$PROMPTAD_EXPECTED_SHA256"
    [ -f "$out" ] || python3 "$here/convert_openclip.py" "$src" "$out" --model ViT-L-14 --pretrained laion2b_s32b_b82k
    echo "done: $here/$out (set model.weights to it)"
    exit 0
fi

if [ "${1:-}" = "--e31" ]; then
    out=vit_b_16_plus_240-laion400m_e31.safetensors
    [ -f "$out" ] || fetch "https://huggingface.co/timm/vit_base_patch16_plus_clip_240.laion400m_e31/resolve/main/open_clip_model.safetensors" "$out"
    echo "done: $here/$out (set model.weights to it)"
    exit 0
fi

pt=vit_b_16_plus_240-laion400m_e32-699c4b84.pt
out=vit_b_16_plus_240-laion400m_e32.safetensors
[ -f "$pt" ] || fetch "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/$pt" "$pt"
check_sha "$pt" 699c4b84
[ -f "$out" ] || python3 "$here/convert_openclip.py" "$pt" "$out" --model ViT-B-16-plus-240 --pretrained laion400m_e32
echo "done: $here/$out"

/* cli_model.c - `promptad make-model`: writes a deterministic random OpenCLIP-shaped checkpoint (safetensors, F32):
 * a ViT CLIP, a CLIP ModifiedResNet (rn101, clip-resnet-tiny), or a torchvision ResNet-shaped one (wide-resnet50-2,
 * resnet-tiny), for tests, the demo and speed measurements. Real weights come from weights/get_weights.sh. */
#include "args.h"
#include "cli.h"
#include "clip_resnet.h"
#include "log.h"
#include "resnet.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>

int pad_cli_make_model(int argc, char **argv) {
    const char *preset = "tiny", *seed_s = "0", *out = NULL, *vocab_s = NULL, *layers_s = NULL, *tlayers_s = NULL;
    const char *act_s = NULL;
    const pad_opt opts[] = {
        {"preset", "P",
         "tiny (default), vit-b-16-plus-240, vit-l-14, rn101, clip-resnet-tiny, wide-resnet50-2 or resnet-tiny",
         &preset, NULL, NULL, NULL},
        {"seed", "S", "random seed (default 0)", &seed_s, NULL, NULL, NULL},
        {"vocab-size", "N", "text vocabulary size (default 49408, the CLIP BPE vocabulary)", &vocab_s, NULL, NULL,
         NULL},
        {"layers", "N", "vision blocks (default: the preset's; other shapes kept), e.g. a shallow ViT-L/14 for tests",
         &layers_s, NULL, NULL, NULL},
        {"text-layers", "N", "text blocks (default: the preset's)", &tlayers_s, NULL, NULL, NULL},
        {"activation", "A", "MLP activation: gelu (default; LAION weights) or quick_gelu (OpenAI's weights)", &act_s,
         NULL, NULL, NULL},
        {"out", "FILE", "output .safetensors file (required)", &out, NULL, NULL, NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, 7, pos, 0, &n_pos,
        "promptad make-model [--preset tiny|vit-b-16-plus-240|vit-l-14|rn101|clip-resnet-tiny|wide-resnet50-2|"
        "resnet-tiny] [--seed S] [--vocab-size N] [--layers N] [--text-layers N] [--activation gelu|quick_gelu] "
        "--out FILE",
        "Writes a random OpenCLIP-shaped (or torchvision ResNet-shaped) checkpoint: the "
        "same seed gives the same weights on every machine.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (!out) {
        pad_args_error(argv[0], "--out is required");
        return 2;
    }
    long seed, vocab = 49408, layers = 0, tlayers = 0;
    if (!pad_args_int(argv[0], "seed", seed_s, 0, 2147483647L, &seed)) return 2;
    if (vocab_s && !pad_args_int(argv[0], "vocab-size", vocab_s, 2, 1000000, &vocab)) return 2;
    if (layers_s && !pad_args_int(argv[0], "layers", layers_s, 1, PAD_WEIGHTS_MAX_LAYERS, &layers)) return 2;
    if (tlayers_s && !pad_args_int(argv[0], "text-layers", tlayers_s, 1, PAD_WEIGHTS_MAX_LAYERS, &tlayers)) return 2;
    pad_activation act = PAD_ACT_GELU;
    if (act_s && pad_activation_parse(act_s, &act) != PAD_OK) {
        pad_args_error(argv[0], "--activation must be gelu or quick_gelu");
        return 2;
    }
    pad_resnet_preset rp;
    if (pad_resnet_preset_parse(preset, &rp) == PAD_OK) { // a convolutional backbone (host/model/resnet.h)
        if (layers_s || tlayers_s || act_s) {
            pad_args_error(argv[0], "--layers, --text-layers and --activation are for the CLIP ViT presets");
            return 2;
        }
        const pad_resnet_cfg rc = pad_resnet_preset_cfg(rp);
        if (pad_resnet_write_random(&rc, (uint64_t)seed, out) != PAD_OK) return 1;
        PAD_LOG_INFO("wrote %s (%s, seed %ld)", out, preset, seed);
        return 0;
    }
    pad_clip_resnet_preset cp;
    if (pad_clip_resnet_preset_parse(preset, &cp) == PAD_OK) { // a CLIP ModifiedResNet (host/model/clip_resnet.h)
        if (layers_s || tlayers_s || act_s) {
            pad_args_error(argv[0], "--layers, --text-layers and --activation are for the CLIP ViT presets");
            return 2;
        }
        const pad_clip_resnet_cfg vc = pad_clip_resnet_preset_cfg(cp);
        pad_clip_cfg tc = pad_clip_resnet_text_cfg(cp);
        tc.text.vocab = (int)vocab;
        if (pad_clip_resnet_write_random(&vc, &tc, (uint64_t)seed, out) != PAD_OK) return 1;
        PAD_LOG_INFO("wrote %s (%s, seed %ld)", out, preset, seed);
        return 0;
    }
    pad_model_preset p;
    if (pad_model_preset_parse(preset, &p) != PAD_OK) return 2;
    pad_clip_cfg cfg = pad_model_preset_cfg(p);
    cfg.text.vocab = (int)vocab;
    if (layers) cfg.vision.layers = (int)layers;
    if (tlayers) cfg.text.layers = (int)tlayers;
    cfg.act = act;
    pad_clip_weights *w = NULL;
    if (pad_weights_make_random(&w, &cfg, (uint64_t)seed) != PAD_OK) return 1;
    pad_status st = pad_weights_save(w, out);
    pad_weights_free(w);
    if (st != PAD_OK) return 1;
    PAD_LOG_INFO("wrote %s (%s, seed %ld)", out, preset, seed);
    return 0;
}

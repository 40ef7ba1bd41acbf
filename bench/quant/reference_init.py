#!/usr/bin/python3
"""reference_init.py - a ViT-B/32-shaped CLIP with the initialization of OpenAI's clip/model.py.

    /usr/bin/python3 bench/quant/reference_init.py SHAPES.pt OUT.pt [--seed N]

Takes the tensor names and shapes of an OpenAI-layout checkpoint (tools/make_random_model.py
--preset b32 writes one) and fills them as CLIP.initialize_parameters() does: token
embedding N(0, 0.02), positions N(0, 0.01), the text blocks' attention N(0, W^-1/2),
projections N(0, W^-1/2 (2L)^-1/2), fc N(0, (2W)^-1/2); the vision blocks keep PyTorch's
defaults (xavier-uniform in_proj, kaiming-uniform Linear); LayerNorm (1, 0). Quantization
error depends on these weight statistics, so accuracy is measured on them rather than on
make_random_model's uniform-in-a-few-binades values. --perturb adds the noise golden-tiny's
weights carry (perturb()). Needs Debian's python3-torch.
"""
import argparse
import math

import torch


def uniform_fan_in(t, fan_in):  # nn.Linear / nn.Conv2d default: U(+-1/sqrt(fan_in))
    b = 1 / math.sqrt(fan_in)
    return torch.empty_like(t).uniform_(-b, b)


def perturb(name, v):
    """golden-tiny's weights (../shared/clip/golden-tiny) have this initialization plus noise,
    as their statistics show: matrices and embeddings sd sqrt(init^2 + 0.02^2) (conv1, in_proj,
    c_fc, c_proj all fit), LayerNorm weights 1 +- 0.1 and biases +- 0.1, attention biases
    +- 0.05 where the initialization has zeros. Reference goldens of other shapes are likely
    made the same way, so quantization is measured on such a model too."""
    if v.dim() == 0:
        return v
    if "ln_" in name:
        return v + torch.randn_like(v) * 0.1
    if v.dim() == 1 and name.endswith("bias") and not v.any():
        return torch.randn_like(v) * 0.05
    return v + torch.randn_like(v) * 0.02


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", action="store_true",
                    help="then perturb every value as golden-tiny's weights are (see below)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    sd = torch.load(args.shapes, map_location="cpu")
    sd = sd.get("state_dict", sd)
    tw = sd["text_projection"].shape[0]
    tl = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    vw = sd["visual.class_embedding"].shape[0]
    out = {}
    for k, t in sd.items():
        t = t.float()
        if k == "logit_scale":
            v = torch.tensor(math.log(1 / 0.07))
        elif k == "token_embedding.weight":
            v = torch.randn_like(t) * 0.02
        elif k == "positional_embedding":
            v = torch.randn_like(t) * 0.01
        elif k == "text_projection":
            v = torch.randn_like(t) * tw ** -0.5
        elif k in ("visual.class_embedding", "visual.positional_embedding", "visual.proj"):
            v = torch.randn_like(t) * vw ** -0.5
        elif k == "visual.conv1.weight":
            v = uniform_fan_in(t, t[0].numel())
        elif "ln_" in k:
            v = torch.ones_like(t) if k.endswith("weight") else torch.zeros_like(t)
        elif k.startswith("transformer."):
            proj_std, attn_std, fc_std = tw ** -0.5 * (2 * tl) ** -0.5, tw ** -0.5, (2 * tw) ** -0.5
            if k.endswith("in_proj_weight"):
                v = torch.randn_like(t) * attn_std
            elif k.endswith(("out_proj.weight", "c_proj.weight")):
                v = torch.randn_like(t) * proj_std
            elif k.endswith("c_fc.weight"):
                v = torch.randn_like(t) * fc_std
            elif k.endswith(("in_proj_bias", "out_proj.bias")):
                v = torch.zeros_like(t)
            elif k.endswith("c_fc.bias"):
                v = uniform_fan_in(t, tw)
            else:
                v = uniform_fan_in(t, 4 * tw)
        elif k.startswith("visual.transformer."):
            if k.endswith("in_proj_weight"):
                b = math.sqrt(6 / (t.shape[0] + t.shape[1]))  # xavier_uniform_: fan_out 3W, fan_in W
                v = torch.empty_like(t).uniform_(-b, b)
            elif k.endswith(("in_proj_bias", "out_proj.bias")):
                v = torch.zeros_like(t)
            elif k.endswith("weight"):
                v = uniform_fan_in(t, t.shape[1])
            elif k.endswith("c_fc.bias"):
                v = uniform_fan_in(t, vw)
            else:
                v = uniform_fan_in(t, 4 * vw)
        else:
            raise SystemExit("unknown tensor " + k)
        if args.perturb:
            v = perturb(k, v)
        out[k] = v.contiguous()
    torch.save(out, args.out)
    print("wrote %s: %d tensors" % (args.out, len(out)))


if __name__ == "__main__":
    main()

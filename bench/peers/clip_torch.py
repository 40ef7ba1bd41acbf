#!/usr/bin/python3
"""clip_torch.py - the PyTorch peer: CLIP's forward pass in plain PyTorch, timed warm.

    /usr/bin/python3 bench/peers/clip_torch.py INPUTS.json --threads N [--repeats R]
        [--check-against DIR] [--dump DIR] [--json OUT.json]

INPUTS.json is what bench/prepare.py writes (checkpoint, config, preprocessed images,
token ids). The model follows the structure of OpenAI's clip/model.py (ViT image tower,
causal text tower, pre-LayerNorm residual blocks, QuickGELU) and loads the OpenAI-layout
state dict strictly, so every tensor of the checkpoint is used exactly once. Attention is
written out (in_proj, per-head softmax(q k^T / sqrt(d) + mask) v, out_proj) rather than
nn.MultiheadAttention, so that torch.onnx.export (bench/peers/export_onnx.py) sees only
plain operators.

Threads: torch.set_num_threads(N) for PyTorch's own (OpenMP) loops, and
openblas_set_num_threads(N) for the BLAS it calls (Debian's torch uses the system
OpenBLAS, whose pool torch does not control); OMP_WAIT_POLICY=PASSIVE unless set.

Cases (the same as bench/run_bench.py's): image [1, 3, 224, 224] from the preprocessed
tensor, the short text, the 77-token text, a batch of 8 images, a batch of 8 texts. Each
is run warm: 3 untimed runs, then R timed ones; the median is the number compared.
--dump writes the raw (unnormalized) embeddings as .npy; --check-against compares the
L2-normalized embeddings with clip.c's (DIR/clipc_image.npy [8, D], clipc_text.npy
[10, D]: short, long, batch) and exits 1 above 1e-4 before any timing.
Needs torch and numpy (Debian: python3-torch, python3-numpy).
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

# Debian's torch runs its own loops on OpenMP and its matrix products on OpenBLAS's pthread
# pool. OpenMP's idle workers spin by default and take the cores OpenBLAS's threads need:
# with 2 threads on 2 cores that made every case 5-10x slower. Passive waiting (read by
# libgomp when torch loads it, so set before the import) removes the fight.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOLERANCE = 1e-4


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names
    (in_proj_weight [3W, W] = q, k, v stacked; out_proj)."""

    def __init__(self, width, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, mask):  # x [B, T, W], mask [T, T] additive or None
        B, T, W = x.shape
        head_dim = W // self.n_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)          # [B, T, 3W]
        qkv = qkv.reshape(B, T, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                    # [B, H, T, d]
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
        if mask is not None:
            scores = scores + mask
        out = torch.matmul(torch.softmax(scores, dim=-1), v)               # [B, H, T, d]
        return self.out_proj(out.transpose(1, 2).reshape(B, T, W))


class ResidualBlock(nn.Module):
    def __init__(self, width, n_heads, mlp_width, quick_gelu):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, n_heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, n_layers, n_heads, mlp_width, quick_gelu):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, n_heads, mlp_width, quick_gelu)
                                       for _ in range(n_layers))

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTower(nn.Module):
    """pixels [B, 3, S, S] -> image embeddings [B, D] (unnormalized)."""

    def __init__(self, image_size, patch, width, n_layers, n_heads, mlp_width, embed_dim, quick_gelu):
        super().__init__()
        grid = image_size // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, n_layers, n_heads, mlp_width, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, embed_dim))

    def forward(self, pixels):
        x = self.conv1(pixels)                                   # [B, W, g, g]
        x = x.flatten(2).transpose(1, 2)                         # [B, g*g, W]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        quick = cfg.get("quick_gelu", False)
        v_width = v["width"]
        v_heads = v_width // v.get("head_width", 64)
        mlp_ratio_v, mlp_ratio_t = v.get("mlp_ratio", 4.0), t.get("mlp_ratio", 4.0)
        self.visual = VisionTower(v["image_size"], v["patch_size"], v_width, v["layers"], v_heads,
                                  int(v_width * mlp_ratio_v), cfg["embed_dim"], quick)
        t_width, context = t["width"], t["context_length"]
        self.token_embedding = nn.Embedding(t["vocab_size"], t_width)
        self.positional_embedding = nn.Parameter(torch.empty(context, t_width))
        self.transformer = Transformer(t_width, t["layers"], t["heads"], int(t_width * mlp_ratio_t), quick)
        self.ln_final = nn.LayerNorm(t_width)
        self.text_projection = nn.Parameter(torch.empty(t_width, cfg["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.empty(()))
        # Causal mask: position i attends to positions <= i.
        self.register_buffer("causal_mask", torch.full((context, context), float("-inf")).triu(1),
                             persistent=False)

    def encode_image(self, pixels):
        return self.visual(pixels)

    def encode_text(self, ids):  # ids [B, context] int64, zero padded
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.causal_mask))
        # The end token has the largest id, so argmax finds each text's last position.
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


class ImageEncoder(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixels):
        return self.clip.encode_image(pixels)


class TextEncoder(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, ids):
        return self.clip.encode_text(ids)


def load_model(checkpoint, config):
    with open(config) as f:
        cfg = json.load(f)
    model = CLIP(cfg)
    state = torch.load(checkpoint, map_location="cpu")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_inputs(inputs):
    """The benchmark's tensors: pixels [8, 3, S, S] and ids for short, long, batch."""
    pixels = torch.from_numpy(np.stack([np.load(p) for p in inputs["arrays"]]).astype(np.float32))
    ids = {k: torch.tensor([v] if k != "batch" else v, dtype=torch.int64) for k, v in inputs["ids"].items()}
    return pixels, ids


def cases(model, pixels, ids):
    """{case name: a function running it}, the names bench/run_bench.py uses."""
    return {
        "image": lambda: model.encode_image(pixels[:1]),
        "text_short": lambda: model.encode_text(ids["short"]),
        "text_long": lambda: model.encode_text(ids["long"]),
        "image_batch8": lambda: model.encode_image(pixels),
        "text_batch8": lambda: model.encode_text(ids["batch"]),
    }


def embeddings(model, pixels, ids):
    """Raw embeddings: image [8, D]; text [10, D] (short, long, then the batch)."""
    with torch.inference_mode():
        image = model.encode_image(pixels).numpy()
        text = torch.cat([model.encode_text(ids["short"]), model.encode_text(ids["long"]),
                          model.encode_text(ids["batch"])]).numpy()
    return image, text


def max_normalized_diff(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.abs(a - b).max())


def set_blas_threads(n):
    """torch.set_num_threads sets OpenMP's threads only; Debian's torch does its matrix
    products in the system's BLAS (OpenBLAS, pthreads build), whose own pool defaults to one
    thread per core. Sets it to n through the loaded library; returns its count, or None."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line and ".so" in line})
    count = None
    for path in paths:
        lib = ctypes.CDLL(path)
        if hasattr(lib, "openblas_set_num_threads"):
            lib.openblas_set_num_threads(ctypes.c_int(n))
            count = lib.openblas_get_num_threads()
    return count


def time_case(run, repeats, warmup=3):
    """Median, mean and sd in ms, and the CPU time per wall time of the timed runs (how
    many cores were busy)."""
    with torch.inference_mode():
        for _ in range(warmup):
            run()
        times = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "sd_ms": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": len(times),
            "cpu_per_wall": cpu_per_wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--dump", metavar="DIR")
    ap.add_argument("--check-against", metavar="DIR")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--cases", default="", help="comma-separated subset of the cases")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.randn(64, 64) @ torch.randn(64, 64)  # loads the BLAS library
    blas_threads = set_blas_threads(args.threads)
    with open(args.inputs) as f:
        inputs = json.load(f)
    model = load_model(inputs["checkpoint"], inputs["config"])
    pixels, ids = load_inputs(inputs)

    result = {"peer": "PyTorch", "version": torch.__version__, "threads": args.threads,
              "blas_threads": blas_threads, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
              "cases": {}, "check": {}}
    if args.dump or args.check_against:
        image, text = embeddings(model, pixels, ids)
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            np.save(os.path.join(args.dump, "torch_image.npy"), image)
            np.save(os.path.join(args.dump, "torch_text.npy"), text)
        if args.check_against:
            for name, ours in (("image", image), ("text", text)):
                theirs = np.load(os.path.join(args.check_against, "clipc_%s.npy" % name))
                diff = max_normalized_diff(ours, theirs)
                result["check"]["clip.c " + name] = diff
                print("torch: %s embeddings vs clip.c: max |diff| %.2e (normalized)" % (name, diff),
                      file=sys.stderr)
                if not diff <= TOLERANCE:
                    print("torch: error: differs from clip.c by more than %g" % TOLERANCE, file=sys.stderr)
                    return 1

    wanted = [c for c in args.cases.split(",") if c]
    for name, run in cases(model, pixels, ids).items():
        if wanted and name not in wanted:
            continue
        result["cases"][name] = time_case(run, args.repeats)
        c = result["cases"][name]
        print("torch -t %d %-13s %8.2f ms (median of %d, %.2f cores busy)" %
              (args.threads, name, c["median_ms"], args.repeats, c["cpu_per_wall"]), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

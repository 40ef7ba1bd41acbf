#!/usr/bin/env python3
"""train_demo.py - train the small demo CLIP bundled as weights/demo.clip.

    python3 tools/train_demo.py                       # full run: build-demo/demo.pt
    python3 tools/train_demo.py --steps 30 --images 2000 --out build-demo/quick   # smoke test
    python3 tools/train_demo.py --samples tests/data/demo --no-train          # sample images

A genuine CLIP (OpenAI's architecture: ViT image tower, causal text transformer, QuickGELU,
pre-LN, EOT pooling, projections, learned logit scale), trained contrastively from scratch
on the procedural world of tools/demo_world.py (coloured shapes, several caption templates).
Steps, all from one seed:
  1. a caption corpus -> tools/train_bpe.py -> merges.txt (CLIP-format)
  2. two pools of rendered scenes, each passed through the reference CLIP transform
     (64x64): "easy" ones (large, centred, plain background) and the full variety, 15% of
     which are drawn in a colour without a name and captioned by shape only
  3. AdamW with warm-up and cosine decay on the symmetric contrastive loss; a caption counts
     as a positive for every image in the batch it is true of. What makes shape learnable
     early (a first recipe learned colour at once and sat on a shape-blind plateau):
       - a curriculum: the first 15% of the steps on easy scenes only;
       - hard batches: a few colours x all four shapes, or a few shapes x many colours, so
         colour alone cannot solve a batch;
       - attribute-isolating captions: "a star", "something red" are positives for every
         star / red image of the batch, a shape signal independent of colour.
     Each scene of a batch is mirrored or shifted by a few pixels at random (--shift).
     Two processes (one per core, --procs) each draw their own batch of 64 and average
     gradients after every step; bfloat16 autocast where the CPU has it (--bf16).
  4. demo.pt (torch.save(state_dict), OpenAI key names) + open_clip_config.json + merges.txt
     in --out; then `python3 tools/convert.py demo.pt --config open_clip_config.json
     --vocab merges.txt -o weights/demo.clip` makes the runtime's file.
Zero-shot accuracy over the 32 colour x shape classes ("a photo of a {} {}.") is reported on
fresh scenes (with the held-out combinations, which training never sees) and on "ordinary
drawings" (PIL ImageDraw). Needs PyTorch (CPU), numpy and PIL.
"""
import argparse
import collections
import json
import math
import multiprocessing
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import PIL  # noqa: F401  (demo_world draws with it)
except ImportError as e:
    sys.exit("train_demo: needs PyTorch, numpy and PIL (%s); on Debian: apt-get install "
             "python3-torch python3-numpy python3-pil, then run it with /usr/bin/python3 "
             "(or: make demo-model)" % e)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_world as world  # noqa: E402
import train_bpe  # noqa: E402

CONFIG = {
    "embed_dim": 128,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": None, "width": 128, "heads": 4, "layers": 3},
}
N_MERGES = 400


# ---------------------------------------------------------------------------------------
# The model: OpenAI CLIP (clip/model.py) with the same parameter names, written compactly.

class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(collections.OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask=None):                     # x [batch, n_tokens, width]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch_size, width, layers, heads, embed_dim):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, pixels):                            # pixels [batch, 3, S, S]
        x = self.conv1(pixels).flatten(2).transpose(1, 2)  # [batch, n_patches, width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj          # [batch, embed_dim]


class CLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        self.visual = VisionTransformer(v["image_size"], v["patch_size"], v["width"], v["layers"],
                                        v["width"] // v["head_width"], cfg["embed_dim"])
        self.context_length = t["context_length"]
        self.transformer = Transformer(t["width"], t["layers"], t["heads"])
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.empty(t["context_length"], t["width"]))
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.empty(t["width"], cfg["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.init_weights(t["width"], t["layers"])

    def init_weights(self, width, layers):
        """OpenAI's initialisation."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width ** -0.5)
        for tower, w, n in ((self.transformer, width, layers),
                            (self.visual.transformer, self.visual.conv1.out_channels,
                             len(self.visual.transformer.resblocks))):
            proj_std, attn_std, fc_std = (w ** -0.5) * ((2 * n) ** -0.5), w ** -0.5, (2 * w) ** -0.5
            for block in tower.resblocks:
                nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)

    def encode_image(self, pixels):
        return self.visual(pixels)

    def encode_text(self, ids):                           # ids [batch, n <= context_length]
        # A causal mask makes the output at the EOT position independent of anything after
        # it, so a batch may be cut to its longest text: same result, less work.
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        mask = torch.full((n, n), float("-inf")).triu_(1)
        x = self.ln_final(self.transformer(x, mask))
        eot = x[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]  # EOT has the highest id
        return eot @ self.text_projection

    def openai_state_dict(self):
        """state_dict with exactly OpenAI's keys (ours already match; logit_scale clamped)."""
        return collections.OrderedDict((k, v.detach().clone().contiguous())
                                       for k, v in self.state_dict().items())


# ---------------------------------------------------------------------------------------
# Data.

def render_chunk(job):
    """Renders scenes [start, start + count) of a pool; the result depends only on
    (seed, start), not on which worker runs it."""
    seed, start, count, classes, easy, other = job
    rng = np.random.default_rng([seed, start])
    pixels = np.empty((count, 64, 64, 3), np.uint8)
    facts = []
    for i in range(count):
        color, shape = classes[(start + i) % len(classes)]
        if other and rng.random() < other:     # an unnamed colour, shape-only captions
            color = "other"
        image, f = world.render_scene(rng, color, shape, easy=easy)
        pixels[i] = np.asarray(world.resize_crop(image, 64))
        facts.append(f)
    return pixels, facts


def render_pool(seed, n_images, classes, workers=2, chunk=250, easy=False, shard=(0, 1), other=0.0):
    """Renders a pool of scenes; shard (k, n) keeps every n-th chunk from the k-th, the
    share of one of n training processes."""
    jobs = [(seed, s, min(chunk, n_images - s), classes, easy, other)
            for s in range(0, n_images, chunk)][shard[0]::shard[1]]
    if not jobs:
        sys.exit("train_demo: %d scenes make no chunk of %d for process %d of %d (more --images)"
                 % (n_images, chunk, shard[0] + 1, shard[1]))
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            parts = pool.map(render_chunk, jobs)
    else:
        parts = [render_chunk(j) for j in jobs]
    return np.concatenate([p for p, _ in parts]), [f for _, fs in parts for f in fs]


MEAN = torch.tensor(world.CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(world.CLIP_STD).view(1, 3, 1, 1)


def to_tensor(pixels_u8):
    """uint8 [n, 64, 64, 3] -> normalized float [n, 3, 64, 64], as ToTensor + Normalize."""
    x = torch.from_numpy(pixels_u8).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


FACTS = ["color", "shape", "size", "bg", "pos"]
FACT_ID = {"color": {c: i for i, c in enumerate(world.COLORS)},
           "shape": {s: i for i, s in enumerate(world.SHAPES)},
           "size": {s: i for i, s in enumerate(world.SIZES)},
           "bg": {b: i for i, b in enumerate(world.BG_NAMES)},
           "pos": {p: i for i, p in enumerate(world.WHERE)}}
CLASS_ID = {cs: i for i, cs in enumerate(world.CLASSES)}


def fact_ids(facts):
    """Image facts -> ints [5]: colour, shape, size, background name, position (-2 = none
    or, for the colour, one without a name)."""
    return [FACT_ID[k].get(facts[k], -2) for k in FACTS]


def said_ids(said):
    """What a caption mentions -> ints [5] in the order of fact_ids (-1 = not mentioned)."""
    return [-1 if said[k] is None else FACT_ID[k][said[k]] for k in FACTS]


def batch_targets(img_facts, said):
    """img_facts [n, 5] and what each caption says [n, 5] (-1 = not said) -> [n, n]
    indicator over (image, caption): is the caption true of the image?"""
    ok = np.ones((len(img_facts), len(said)), bool)
    for k in range(len(FACTS)):
        ok &= (said[None, :, k] == -1) | (img_facts[:, None, k] == said[None, :, k])
    return torch.from_numpy(ok.astype(np.float32))


def tokenize(tok, texts, context_length):
    """Texts -> ids [n_texts, n], cut to the longest text (see CLIP.encode_text)."""
    ids = torch.tensor([tok.encode(t, context_length) for t in texts])
    n = int((ids != 0).sum(1).max())
    return ids[:, :n]


def encode_captions(model, tok, texts):
    """Text embeddings [n_texts, embed_dim], each distinct caption encoded once (a batch
    repeats many, e.g. "a photo of a red circle.")."""
    unique = sorted(set(texts))
    where = {t: i for i, t in enumerate(unique)}
    embeds = model.encode_text(tokenize(tok, unique, model.context_length))
    return embeds[torch.tensor([where[t] for t in texts])]


# ---------------------------------------------------------------------------------------
# Evaluation: zero-shot over the 32 classes with the CLI's default template.

@torch.no_grad()
def zero_shot(model, tok, pixels_u8, labels, batch=256):
    model.eval()
    texts = ["a photo of a %s %s." % cs for cs in world.CLASSES]
    t = F.normalize(model.encode_text(tokenize(tok, texts, model.context_length)), dim=-1)
    preds = []
    for s in range(0, len(pixels_u8), batch):
        im = F.normalize(model.encode_image(to_tensor(pixels_u8[s:s + batch])), dim=-1)
        preds.append((im @ t.T).argmax(1))
    model.train()
    preds = torch.cat(preds).numpy()
    labels = np.asarray(labels)
    held = np.array([world.CLASSES[i] in world.HELD_OUT for i in labels])
    acc = float((preds == labels).mean())
    acc_held = float((preds[held] == labels[held]).mean()) if held.any() else float("nan")
    acc_seen = float((preds[~held] == labels[~held]).mean())
    return acc, acc_seen, acc_held, preds


def attribute_accuracy(preds, labels):
    """(colour accuracy, shape accuracy) of predicted class ids against true ones."""
    p, t = np.asarray(preds), np.asarray(labels)
    n_shapes = len(world.SHAPES)
    return float((p // n_shapes == t // n_shapes).mean()), float((p % n_shapes == t % n_shapes).mean())


def ordinary_set(seed, n_per_class):
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for k in range(n_per_class):
        for i, (c, s) in enumerate(world.CLASSES):
            pixels.append(np.asarray(world.resize_crop(world.draw_ordinary(rng, c, s), 64)))
            labels.append(i)
    return np.stack(pixels), labels


def eval_sets(seed, n_per_class, workers=2):
    scenes, facts = render_pool(seed + 1000, n_per_class * len(world.CLASSES), world.CLASSES, workers)
    labels = [CLASS_ID[(f["color"], f["shape"])] for f in facts]
    drawings, dlabels = ordinary_set(seed + 2000, n_per_class)
    return (scenes, labels), (drawings, dlabels)


def report(name, model, tok, data):
    acc, seen, held, preds = zero_shot(model, tok, *data)
    color, shape = attribute_accuracy(preds, data[1])
    return "%s %.3f (seen %.3f, held-out %.3f; colour %.3f, shape %.3f)" % (
        name, acc, seen, held, color, shape)


# ---------------------------------------------------------------------------------------
# Hard batches. In a random batch most captions differ from an image's own in colour, so
# colour alone solves most of the contrastive task and the text tower learns to ignore
# shape words (it cannot be rewarded for them while the image tower is shape-blind). So
# batches are built to need shape: a few colours x all four shapes, or a few shapes x many
# colours, alternating with plain random batches.

class BatchSampler:
    def __init__(self, pixels, facts, rng):
        self.pixels, self.facts, self.rng = pixels, facts, rng
        self.by_class = collections.defaultdict(list)
        for i, f in enumerate(facts):
            self.by_class[(f["color"], f["shape"])].append(i)
        self.by_class = {k: np.array(v) for k, v in self.by_class.items()}

    def batch(self, n, step):
        rng = self.rng
        kind = step % 3
        if kind == 0:      # 2-3 colours x all shapes: shape is what tells images apart
            colors = rng.choice(world.COLORS, int(rng.integers(2, 4)), replace=False)
            classes = [(c, s) for c in colors for s in world.SHAPES]
        elif kind == 1:    # 1-2 shapes x all colours
            shapes = rng.choice(world.SHAPES, int(rng.integers(1, 3)), replace=False)
            classes = [(c, s) for c in world.COLORS + ["other"] for s in shapes]
        else:
            classes = list(self.by_class)
        classes = [cs for cs in classes if cs in self.by_class]
        pick = rng.integers(len(classes), size=n)
        idx = np.array([self.by_class[classes[k]][rng.integers(len(self.by_class[classes[k]]))]
                        for k in pick])
        return self.pixels[idx], [self.facts[i] for i in idx]


# Augmentation. The model sees each pre-rendered scene some 20 times, and fits the
# training scenes (97% top-1) better than fresh ones (91%). A mirror image and a shift of a
# few pixels are new scenes for free: the shape lands at another phase of the 8-pixel patch
# grid, which is exactly what a small shape needs to be recognised anywhere.

MIRROR = {"left": "right", "right": "left", "top left": "top right", "top right": "top left",
          "bottom left": "bottom right", "bottom right": "bottom left"}


def augment(rng, pixels, facts, max_shift):
    """uint8 [n, 64, 64, 3] -> the same scenes, each mirrored left-right half the time and
    (the other half independently) shifted by up to max_shift pixels, edges repeated; a mirrored scene's position fact
    is mirrored, a shifted one's dropped (it might have crossed a position boundary)."""
    n, h, w, _ = pixels.shape
    m = max_shift
    padded = np.pad(pixels, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    out = np.empty_like(pixels)
    new_facts = []
    for i in range(n):
        dy, dx = rng.integers(0, 2 * m + 1, size=2) if rng.random() < 0.5 else (m, m)
        img = padded[i, dy:dy + h, dx:dx + w]
        f = dict(facts[i])
        if rng.random() < 0.5:
            img = img[:, ::-1]
            f["pos"] = MIRROR.get(f["pos"], f["pos"])
        if dy != m or dx != m:
            f["pos"] = None
        out[i] = img
        new_facts.append(f)
    return out, new_facts


# ---------------------------------------------------------------------------------------

def cpu_seconds():
    """CPU time of this process and its finished workers: the cost on an idle machine is
    about this divided by the number of cores, whatever else is running."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def train(args):
    """Trains on args.procs processes (one torch thread each): each renders its share of
    the scenes, draws its own batches and averages gradients with the others after every
    step (data parallel, gloo), i.e. a step of procs x batch pairs in the time of one."""
    if args.procs == 1:
        return train_process(0, args, None)
    import socket
    with socket.socket() as s:        # a free port for the processes to meet on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(train_process, args=(args, port), nprocs=args.procs)


def average_gradients(model, procs):
    import torch.distributed as dist
    grads = [p.grad for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= procs
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def die_with_parent():
    """A training process ends when the one that started it does (Linux prctl)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def train_process(rank, args, port):
    torch.set_num_threads(args.threads)
    if port is not None:
        die_with_parent()
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port,
                                rank=rank, world_size=args.procs)
    lead = rank == 0                  # the process that prints, evaluates and saves

    def say(*a):
        if lead:
            print(*a, flush=True)

    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    torch.manual_seed(args.seed)      # the same initial weights in every process
    rng = np.random.default_rng([args.seed, rank] if args.procs > 1 else args.seed)

    corpus = world.caption_corpus(np.random.default_rng([args.seed, 1]), 20000)
    merges = train_bpe.learn_merges(corpus, N_MERGES)
    merges_path = os.path.join(args.out, "merges.txt")
    if lead:
        with open(os.path.join(args.out, "captions.txt"), "w") as f:
            f.write("\n".join(corpus) + "\n")
        train_bpe.write_merges(merges, merges_path)
    tok = train_bpe.Tokenizer(merges)
    cfg = json.loads(json.dumps(CONFIG))
    cfg["text_cfg"]["vocab_size"] = len(tok.vocab)
    for key, value in args.set or []:
        tower, name = key.split(".")
        cfg[tower + "_cfg"][name] = value
    longest = max(len(tok.encode(t, 1000)) - tok.encode(t, 1000).count(0) for t in corpus)
    say("bpe: %d merges, vocab %d; longest caption %d tokens" % (len(merges), len(tok.vocab), longest))
    if longest > CONFIG["text_cfg"]["context_length"]:
        sys.exit("captions need %d tokens, more than the context length" % longest)
    if lead:
        with open(os.path.join(args.out, "open_clip_config.json"), "w") as f:
            json.dump(cfg, f, indent=4)
            f.write("\n")

    workers = 2 if args.procs == 1 else 1
    shard = (rank, args.procs)
    n_easy = int(args.images * args.easy_fraction)
    easy, easy_facts = render_pool(args.seed + 500, n_easy, world.TRAIN_CLASSES, workers,
                                   easy=True, shard=shard, other=args.other_colors)
    full, full_facts = render_pool(args.seed, args.images - n_easy, world.TRAIN_CLASSES, workers,
                                   shard=shard, other=args.other_colors)
    stages = [BatchSampler(easy, easy_facts, rng), BatchSampler(full, full_facts, rng)]
    if lead:
        scenes, drawings = eval_sets(args.seed, args.eval_per_class, workers)
    say("rendered %d easy + %d full training scenes per process in %.0f s, cpu %.0f s" % (
        len(easy), len(full), time.time() - t_start, cpu_seconds()))

    model = CLIP(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    say("model: %d parameters (%.1f MB fp32); %d steps x %d processes x %d pairs, %s" % (
        n_params, n_params * 4 / 1e6, args.steps, args.procs, args.batch,
        "bfloat16 autocast" if args.bf16 else "float32"))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)
    easy_steps = int(args.steps * args.curriculum)
    t_train = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        # Curriculum: easy scenes first; afterwards mostly the full variety, with a few
        # easy ones mixed in so the first stage is not forgotten.
        stage = stages[0] if step < easy_steps or rng.random() < 0.1 else stages[1]
        pixels, img_facts = stage.batch(args.batch, step)
        if args.shift >= 0:
            pixels, img_facts = augment(rng, pixels, img_facts, args.shift)
        texts, said = [], []
        for f in img_facts:
            text, sd = world.caption(rng, f)
            texts.append(text)
            said.append(said_ids(sd))
        target = batch_targets(np.array([fact_ids(f) for f in img_facts]), np.array(said))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.bf16)):
            img = model.encode_image(to_tensor(pixels))
            txt = encode_captions(model, tok, texts)
        img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T    # [images, captions]
        loss_i = -(F.log_softmax(logits, 1) * target / target.sum(1, keepdim=True)).sum(1).mean()
        loss_t = -(F.log_softmax(logits.T, 1) * target.T / target.T.sum(1, keepdim=True)).sum(1).mean()
        loss = (loss_i + loss_t) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.procs > 1:
            average_gradients(model, args.procs)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 25 == 0 or step == args.steps - 1:
            say("step %d/%d loss %.3f scale %.1f lr %.2e  %.2f s/step, cpu %.0f s" % (
                step, args.steps, loss.item(), model.logit_scale.exp().item(), lr,
                (time.time() - t_train) / (step + 1), cpu_seconds()))
        if lead and ((step + 1) % args.eval_every == 0 or step == args.steps - 1):
            say("  eval: " + report("scenes", model, tok, scenes) + "; "
                + report("ordinary drawings", model, tok, drawings))
            torch.save(model.openai_state_dict(), os.path.join(args.out, "partial.pt"))

    if lead:
        ckpt = os.path.join(args.out, "demo.pt")
        torch.save(model.openai_state_dict(), ckpt)
        say("saved %s, open_clip_config.json, merges.txt in %s; total %.1f min wall, "
            "%.1f min of CPU (this process)" % (ckpt, args.out, (time.time() - t_start) / 60,
                                                cpu_seconds() / 60))


def shrink(image, short_side):
    """The image with its short side at most short_side (bicubic, as the reference resize),
    so that the samples are small files: the model sees them as it sees any rendering of
    that scene, which it shrinks to 64 pixels itself."""
    w, h = image.size
    if min(w, h) <= short_side:
        return image
    if w <= h:
        return image.resize((short_side, int(short_side * h / w)), world.Image.BICUBIC)
    return image.resize((int(short_side * w / h), short_side), world.Image.BICUBIC)


def write_samples(args):
    """Held-out sample images: a different seed, all 32 classes (held-out ones included),
    rendered like training scenes and stored with a short side of at most
    --sample-max-side pixels as PNGs named colour_shape_NNN.png, plus labels.tsv and
    red_circle.png."""
    os.makedirs(args.samples, exist_ok=True)
    rng = np.random.default_rng([args.seed, 7])
    lines = ["file\tcolor\tshape\theld_out"]
    k = 0
    for rep in range(args.samples_per_class):
        for color, shape in world.CLASSES:
            image, _ = world.render_scene(rng, color, shape)
            name = "%s_%s_%03d.png" % (color, shape, k)
            shrink(image, args.sample_max_side).save(os.path.join(args.samples, name), optimize=True)
            lines.append("%s\t%s\t%s\t%d" % (name, color, shape, (color, shape) in world.HELD_OUT))
            k += 1
    with open(os.path.join(args.samples, "labels.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    image, _ = world.render_scene(np.random.default_rng([args.seed, 8]), "red", "circle", plain=True)
    shrink(image, args.sample_max_side).save(os.path.join(args.samples, "red_circle.png"), optimize=True)
    print("wrote %d samples to %s" % (k + 1, args.samples))


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build-demo", help="directory for demo.pt, config, merges")
    ap.add_argument("--steps", type=int, default=3400)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--images", type=int, default=20000, help="rendered training scenes")
    ap.add_argument("--easy-fraction", type=float, default=0.2,
                    help="share of the rendered scenes that are easy (curriculum stage 1)")
    ap.add_argument("--curriculum", type=float, default=0.15,
                    help="share of the steps trained on easy scenes only")
    ap.add_argument("--shift", type=int, default=3,
                    help="augmentation: random mirror and shift by up to this many pixels (-1: none)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-per-class", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process; one costs the least CPU time per step")
    ap.add_argument("--other-colors", type=float, default=0.15,
                    help="share of full-variety scenes drawn in an unnamed colour, shape-only captions")
    ap.add_argument("--set", nargs=2, action="append", type=str, metavar=("TOWER.KEY", "INT"),
                    help="override the architecture, e.g. --set vision.layers 6")
    ap.add_argument("--bf16", type=int, choices=(0, 1), default=None,
                    help="bfloat16 autocast for the training steps (default: 1 if the CPU has "
                         "AVX-512 BF16 or AMX, where it halves the time; 0 = float32)")
    ap.add_argument("--procs", type=int, default=2,
                    help="training processes (data parallel): one per core")
    ap.add_argument("--samples", help="also write sample images to this directory")
    ap.add_argument("--samples-per-class", type=int, default=7)
    ap.add_argument("--sample-max-side", type=int, default=60)
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args()
    args.set = [(k, int(v)) for k, v in args.set or []]
    if args.bf16 is None:
        args.bf16 = int(cpu_has_bf16())
    torch.set_num_threads(args.threads)
    if not args.no_train:
        train(args)
    if args.samples:
        write_samples(args)


if __name__ == "__main__":
    main()

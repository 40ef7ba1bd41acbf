#!/usr/bin/python3
"""export_onnx.py - the benchmark model's two towers as ONNX graphs, for the ONNX Runtime peer.

    /usr/bin/python3 bench/peers/export_onnx.py INPUTS.json OUT_DIR

Builds the PyTorch model of clip_torch.py from the same OpenAI-layout checkpoint and
exports with torch.onnx.export (opset 17, dynamic batch):
  OUT_DIR/image.onnx   pixel_values float32 [B, 3, S, S] -> image_embeds float32 [B, D]
  OUT_DIR/text.onnx    input_ids int64 [B, context]      -> text_embeds float32 [B, D]
The outputs are the raw projections (not normalized), like clip_run --raw. Skipped when
OUT_DIR/onnx.stamp matches the checkpoint's stamp (bench/out/model.stamp). Whether ONNX
Runtime computes the same numbers is checked by ort_bench.js before it times anything.
"""
import argparse
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs")
    ap.add_argument("out_dir")
    args = ap.parse_args()
    with open(args.inputs) as f:
        inputs = json.load(f)
    model_stamp = os.path.join(os.path.dirname(os.path.abspath(args.inputs)), "model.stamp")
    with open(model_stamp) as f:
        key = "onnx v1 opset 17 " + f.read().strip() + " " + torch.__version__
    stamp = os.path.join(args.out_dir, "onnx.stamp")
    outputs = [os.path.join(args.out_dir, n) for n in ("image.onnx", "text.onnx")]
    if all(os.path.exists(p) for p in outputs) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == key:
                return 0

    os.makedirs(args.out_dir, exist_ok=True)
    model = clip_torch.load_model(inputs["checkpoint"], inputs["config"])
    pixels, ids = clip_torch.load_inputs(inputs)
    print("export_onnx: exporting image.onnx and text.onnx to %s" % args.out_dir, file=sys.stderr)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python values
        torch.onnx.export(clip_torch.ImageEncoder(model), (pixels[:2],), outputs[0] + ".tmp",
                          input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                          opset_version=17, do_constant_folding=True)
        torch.onnx.export(clip_torch.TextEncoder(model), (ids["batch"][:2],), outputs[1] + ".tmp",
                          input_names=["input_ids"], output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch"}, "text_embeds": {0: "batch"}},
                          opset_version=17, do_constant_folding=True)
    for p in outputs:
        os.replace(p + ".tmp", p)
    with open(stamp, "w") as f:
        f.write(key + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""quantize_onnx.py - ONNX Runtime's dynamic int8 quantization of the peer graphs, restated.

    /usr/bin/python3 bench/peers/quantize_onnx.py ONNX_DIR

Reads ONNX_DIR/image.onnx and text.onnx (export_onnx.py) and writes image_int8.onnx and
text_int8.onnx beside them: what `onnxruntime.quantization.quantize_dynamic(in, out)`
produces with its defaults, for the operators these graphs contain. That function lives in
the `onnxruntime` Python package, which comes only from PyPI (unreachable here); Debian's
python3-onnx builds the same graph. The defaults, as documented for quantize_dynamic
(weight_type QInt8, per_channel False, reduce_range False, extra options WeightSymmetric
True and MatMulConstBOnly True; operator types: its IntegerOps registry):

  MatMul whose B is an initializer [K, N] (every linear layer and both projections; the
  attention products q k^T and p v have no constant side and stay float):
      x --DynamicQuantizeLinear--> x_q uint8, x_scale, x_zero_point   (per tensor, at run time)
      W --(here, once)--> W_q int8 = clip(round_half_even(W / s), -127, 127), s = max|W| / 127,
                          zero point 0                                (per tensor, symmetric)
      y = Mul(Cast<float>(MatMulInteger(x_q, W_q, x_zero_point, 0)), Mul(x_scale, s))
    ONNX Runtime fuses these at load into one DynamicQuantizeMatMul (bias Add included).
  Conv with an initializer weight (the patch embedding): the same with ConvInteger.
  Gather from an initializer (the token embedding): the table stored as int8 (same rule),
    gathered, then DequantizeLinear back to float for the float consumers.
  Transpose is quantized only when its input already is (never here).

One DynamicQuantizeLinear serves all products that read the same tensor. Nodes keep their
order (each replacement sits where its original was), so the graph stays topologically
sorted. The outputs are checked against the fp32 ones by ort_bench.js (cosine) before any
timing. Skipped when the outputs are newer than their inputs and this script.
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT8_MAX = 127  # symmetric int8 range -127..127, as ORT's symmetric weights use


def quantize_weight(w):
    """float array -> (int8 array, float32 scale): per-tensor symmetric, zero point 0."""
    w = w.astype(np.float32)
    abs_max = float(max(abs(float(w.min())), abs(float(w.max())), 0.0))
    scale = np.float32(abs_max / INT8_MAX) if abs_max > 0 else np.float32(1.0)
    q = np.clip(np.rint(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


class Quantizer:
    def __init__(self, model):
        self.model = model
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.new_initializers = []
        self.dropped = set()             # float initializers replaced by their int8 copies
        self.dynamic = {}                # tensor name -> (x_q, x_scale, x_zero_point)
        self.counts = {}

    def float_initializer(self, name):
        t = self.initializers.get(name)
        return t if t is not None and t.data_type == onnx.TensorProto.FLOAT else None

    def add_initializer(self, array, name):
        self.new_initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name):
        """The int8 copy of initializer `name`: names of (quantized, scale, zero point)."""
        q, scale = quantize_weight(numpy_helper.to_array(self.initializers[name]))
        self.dropped.add(name)
        return (self.add_initializer(q, name + "_quantized"),
                self.add_initializer(np.array(scale, dtype=np.float32), name + "_scale"),
                self.add_initializer(np.array(0, dtype=np.int8), name + "_zero_point"))

    def activation(self, name, nodes):
        """DynamicQuantizeLinear of tensor `name` (one per tensor, shared)."""
        if name not in self.dynamic:
            outs = (name + "_quantized", name + "_scale", name + "_zero_point")
            nodes.append(helper.make_node("DynamicQuantizeLinear", [name], list(outs), name + "_QuantizeLinear"))
            self.dynamic[name] = outs
        return self.dynamic[name]

    def integer_product(self, node, op_type, nodes, attributes=()):
        """MatMul / Conv -> DynamicQuantizeLinear + MatMulInteger / ConvInteger + Cast + Mul."""
        xq, xs, xz = self.activation(node.input[0], nodes)
        wq, ws, wz = self.weight(node.input[1])
        base = node.name or node.output[0]
        integer_out = node.output[0] + "_output_quantized"
        nodes.append(helper.make_node(op_type, [xq, wq, xz, wz], [integer_out], base + "_quant"))
        for a in attributes:
            nodes[-1].attribute.append(a)
        nodes.append(helper.make_node("Cast", [integer_out], [integer_out + "_cast_output"], integer_out + "_cast",
                                      to=onnx.TensorProto.FLOAT))
        scales = base + "_quant_scales_mul:0"
        nodes.append(helper.make_node("Mul", [xs, ws], [scales], base + "_quant_scales_mul"))
        has_bias = len(node.input) == 3 and node.input[2]
        scaled = node.output[0] + ("_quant_scaled_output" if has_bias else "")
        nodes.append(helper.make_node("Mul", [integer_out + "_cast_output", scales], [scaled],
                                      base + "_quant_output_scale_mul"))
        if has_bias:  # a Conv bias [C] broadcast over [N, C, H, W]
            shape = self.add_initializer(np.array([1, -1, 1, 1], dtype=np.int64), node.output[0] + "_bias_shape")
            nodes.append(helper.make_node("Reshape", [node.input[2], shape], [node.output[0] + "_bias"]))
            nodes.append(helper.make_node("Add", [scaled, node.output[0] + "_bias"], [node.output[0]]))
        self.counts[op_type] = self.counts.get(op_type, 0) + 1

    def gather(self, node, nodes):
        """Gather from a float table -> int8 table, Gather, DequantizeLinear."""
        wq, ws, wz = self.weight(node.input[0])
        gathered = node.output[0] + "_quantized"
        g = helper.make_node("Gather", [wq, node.input[1]], [gathered], node.name)
        g.attribute.extend(node.attribute)
        nodes.append(g)
        nodes.append(helper.make_node("DequantizeLinear", [gathered, ws, wz], [node.output[0]],
                                      node.output[0] + "_DequantizeLinear"))
        self.counts["Gather"] = self.counts.get("Gather", 0) + 1

    def run(self):
        nodes = []
        for node in self.graph.node:
            if node.op_type == "MatMul" and self.float_initializer(node.input[1]) is not None:
                self.integer_product(node, "MatMulInteger", nodes)
            elif node.op_type == "Conv" and self.float_initializer(node.input[1]) is not None:
                self.integer_product(node, "ConvInteger", nodes, node.attribute)
            elif node.op_type == "Gather" and self.float_initializer(node.input[0]) is not None:
                self.gather(node, nodes)
            else:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        kept = [t for t in self.graph.initializer if t.name not in self.dropped]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept + self.new_initializers)
        return self.counts


def quantize_file(src, dst):
    model = onnx.load(src)
    counts = Quantizer(model).run()
    onnx.checker.check_model(model)
    onnx.save(model, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    return counts


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: quantize_onnx.py ONNX_DIR")
    onnx_dir = sys.argv[1]
    for name in ("image", "text"):
        src = os.path.join(onnx_dir, name + ".onnx")
        dst = os.path.join(onnx_dir, name + "_int8.onnx")
        if os.path.exists(dst) and os.path.getmtime(dst) > max(os.path.getmtime(src), os.path.getmtime(__file__)):
            continue
        counts = quantize_file(src, dst)
        print("quantize_onnx: %s: %s (%.0f -> %.0f MB)" % (
            os.path.basename(dst), ", ".join("%d %s" % (n, op) for op, n in sorted(counts.items())),
            os.path.getsize(src) / 1e6, os.path.getsize(dst) / 1e6), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

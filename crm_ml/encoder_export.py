"""Write the sentence encoder as an ONNX graph for onnxruntime (app env, at install time).

The graph is built node by node from the checked ``model.safetensors`` (no
PyTorch, no exporter): BERT's embeddings and 6 layers, the last hidden state and the
4th layer's as outputs (pooling stays in numpy, :mod:`crm_ml.encoder`). Its arithmetic is the
numpy forward's, so the two agree to float32 rounding (tested). A second file
has the weight matrices quantized to int8 per output channel by onnxruntime's
dynamic quantization: the serving default, 3x faster than float32 on these cores
for cosine >= 0.98 to the exact vectors (README, "Understanding").

Usage: ``python -m crm_ml.encoder_export [--folder DIR]`` (``make encoder`` runs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from crm_ml.encoder import DEFAULT_DIR, MID_LAYER, read_safetensors, verify_files

logger = logging.getLogger(__name__)

__all__ = ["FP32_FILE", "INT8_FILE", "build_graph", "export"]

FP32_FILE = "encoder.onnx"
INT8_FILE = "encoder.int8.onnx"
OPSET = 17
IR_VERSION = 8  # loadable by every onnxruntime >= 1.14


def build_graph(folder: Path):  # noqa: ANN201 - onnx.ModelProto (onnx imported lazily)
    """The ONNX model of all-MiniLM-L6-v2's transformer (inputs ids, positions, bias)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    t = read_safetensors(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    heads, dim = int(config["num_attention_heads"]), int(config["hidden_size"])
    head_dim, eps = dim // heads, float(config["layer_norm_eps"])
    inits: list = []
    nodes: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, prefix: str, key: str) -> str:
        w = const(f"{prefix}{key}.w", t[f"{prefix}{key}.weight"].T.astype(np.float32))
        b = const(f"{prefix}{key}.b", t[f"{prefix}{key}.bias"].astype(np.float32))
        return node("Add", [node("MatMul", [x, w], f"{prefix}{key}.mm"), b], f"{prefix}{key}.out")

    def layer_norm(x: str, prefix: str, name: str) -> str:
        w = const(f"{prefix}.w", t[f"{prefix}.weight"].astype(np.float32))
        b = const(f"{prefix}.b", t[f"{prefix}.bias"].astype(np.float32))
        return node("LayerNormalization", [x, w, b], name, axis=-1, epsilon=eps)

    words = node("Gather", [const("word", t["embeddings.word_embeddings.weight"]), "input_ids"],
                 "emb.word")
    pos = node("Gather", [const("pos", t["embeddings.position_embeddings.weight"]),
                          "position_ids"], "emb.pos")
    type0 = const("type0", t["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    x = node("Add", [node("Add", [words, pos], "emb.sum"), type0], "emb.typed")
    x = layer_norm(x, "embeddings.LayerNorm", "emb.ln")
    shape_heads = const("shape_heads", np.array([0, 0, 3, heads, head_dim], dtype=np.int64))
    shape_back = const("shape_back", np.array([0, 0, dim], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    one = const("one", np.array(1.0, dtype=np.float32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        w = np.concatenate([t[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
        b = np.concatenate([t[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        qkv = node("Add", [node("MatMul", [x, const(p + "qkv.w", w.T.astype(np.float32))],
                                p + "qkv.mm"), const(p + "qkv.b", b.astype(np.float32))],
                   p + "qkv")
        qkv = node("Transpose", [node("Reshape", [qkv, shape_heads], p + "qkv.r")], p + "qkv.t",
                   perm=[2, 0, 3, 1, 4])
        parts = [p + "q", p + "k", p + "v"]
        nodes.append(helper.make_node("Split", [qkv, const(p + "split", np.ones(3, np.int64))],
                                      [n + "5" for n in parts], name=p + "split", axis=0))
        q, k, v = (node("Squeeze", [n + "5", const(n + ".ax", np.array([0], np.int64))], n)
                   for n in parts)
        scores = node("MatMul", [q, node("Transpose", [k], p + "kt", perm=[0, 1, 3, 2])],
                      p + "scores")
        scores = node("Add", [node("Mul", [scores, scale], p + "scaled"), "attn_bias"],
                      p + "masked")
        probs = node("Softmax", [scores], p + "probs", axis=-1)
        context = node("Transpose", [node("MatMul", [probs, v], p + "ctx")], p + "ctx.t",
                       perm=[0, 2, 1, 3])
        context = node("Reshape", [context, shape_back], p + "ctx.r")
        attn = linear(context, p, "attention.output.dense")
        x = layer_norm(node("Add", [attn, x], p + "res1"), p + "attention.output.LayerNorm",
                       p + "ln1")
        h = linear(x, p, "intermediate.dense")
        erf = node("Erf", [node("Mul", [h, inv_sqrt2], p + "gelu.s")], p + "gelu.erf")
        h = node("Mul", [node("Mul", [h, half], p + "gelu.h"),
                         node("Add", [erf, one], p + "gelu.1")], p + "gelu")
        out = linear(h, p, "output.dense")
        x = layer_norm(node("Add", [out, x], p + "res2"), p + "output.LayerNorm", p + "ln2")
        if i + 1 == MID_LAYER:
            nodes.append(helper.make_node("Identity", [x], ["hidden_mid"], name="hidden_mid"))
    nodes.append(helper.make_node("Identity", [x], ["hidden"], name="hidden"))
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["tokens"]),
         helper.make_tensor_value_info("attn_bias", TensorProto.FLOAT,
                                       ["batch", 1, 1, "tokens"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", dim]),
         helper.make_tensor_value_info("hidden_mid", TensorProto.FLOAT,
                                       ["batch", "tokens", dim])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="crm_ml.encoder_export")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def export(folder: Path = DEFAULT_DIR) -> tuple[Path, Path]:
    """Write the float32 graph and its int8 quantization beside the checked weights."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    verify_files(folder)
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    onnx.save(build_graph(folder), str(fp32))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process applies to image models
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)
    finally:
        root.setLevel(level)
    return fp32, int8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    for path in export(args.folder):
        print(f"encoder: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")  # CLI output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""An fp32 model from a dynamically quantised one: the same network, computed in floats.

    .venv/bin/python scripts/dequantize_int8.py ../shared/models/yolov8n_int8.onnx /tmp/bench-models/yolov8n_fp32.onnx

ONNX Runtime's ``quantize_dynamic`` (what ``edge-agent export --int8`` and the shared
``yolov8n_int8.onnx`` use) turns each ``Conv`` into ``DynamicQuantizeLinear`` (the activations, per
frame) -> ``ConvInteger`` (uint8 weights) -> ``Cast`` -> ``Mul`` by the two scales -> ``Add`` of the
bias. This script puts each ``Conv`` back, with the weights dequantised to floats
(``(w - zero_point) * scale``), and drops the nodes nothing uses any more.

What comes out is a COCO YOLOv8n whose weights sit on 256 levels per tensor, in fp32 throughout:
the benchmarks' fp32 model that sees what the int8 one sees on vtest, as no other fp32 model here
does (the project's own was trained on synthetic junctions). Needs ``onnx`` (the ``test`` or
``export`` extra). Ultralytics' metadata (names, imgsz, stride) is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np


class NotDynamicInt8Error(ValueError):
    """The model is not the pattern ``quantize_dynamic`` writes; the message says where."""


def dequantize(src: Path, dst: Path) -> int:
    """Write ``src`` with every ConvInteger put back as a float Conv to ``dst``; return how many."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only_consumer(name: str, op: str, conv: Any) -> Any:
        users = consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op:
            raise NotDynamicInt8Error(f"{src}: ConvInteger {conv.name!r}: expected one {op} after {name!r}, "
                                      f"found {[u.op_type for u in users]}")
        return users[0]

    def array(name: str, conv: Any) -> Any:
        if name not in init:
            raise NotDynamicInt8Error(f"{src}: ConvInteger {conv.name!r}: {name!r} is not a constant")
        return numpy_helper.to_array(init[name])

    others = sorted({n.op_type for n in graph.node if n.op_type in ("MatMulInteger", "QLinearConv", "QLinearMatMul",
                                                                        "DequantizeLinear")})
    if others:
        raise NotDynamicInt8Error(f"{src}: has {', '.join(others)}: only dynamic quantisation (ConvInteger) is undone")
    if not any(n.op_type == "ConvInteger" for n in graph.node):
        raise NotDynamicInt8Error(f"{src}: no ConvInteger: not a model quantised by quantize_dynamic")
    replaced: dict[int, Any] = {}   # id of the ConvInteger -> its Conv
    dropped: set[int] = set()
    for conv in [n for n in graph.node if n.op_type == "ConvInteger"]:
        x_q, w_q, _, w_zp = conv.input
        dql = producer.get(x_q)
        if dql is None or dql.op_type != "DynamicQuantizeLinear":
            raise NotDynamicInt8Error(f"{src}: ConvInteger {conv.name!r}: its input is not DynamicQuantizeLinear's")
        cast = only_consumer(conv.output[0], "Cast", conv)
        mul = only_consumer(cast.output[0], "Mul", conv)
        scales = producer.get(next(i for i in mul.input if i != cast.output[0]))
        w_scale = next((i for i in (scales.input if scales is not None else []) if i in init), None)
        if scales is None or scales.op_type != "Mul" or w_scale is None:
            raise NotDynamicInt8Error(f"{src}: ConvInteger {conv.name!r}: no activation x weight scale product")
        w = array(w_q, conv).astype(np.float32) - array(w_zp, conv).astype(np.float32).reshape(-1, 1, 1, 1)
        w *= array(w_scale, conv).astype(np.float32).reshape(-1, 1, 1, 1)
        inputs = [dql.input[0], f"{w_q}_dequantized"]
        graph.initializer.append(numpy_helper.from_array(w, inputs[1]))
        out, done = mul.output[0], [cast, mul]
        users = consumers.get(out, [])
        if len(users) == 1 and users[0].op_type == "Add":   # the bias, reshaped to [1, C, 1, 1]
            add = users[0]
            shaped = producer.get(next(i for i in add.input if i != out))
            if shaped is not None and shaped.op_type == "Reshape" and shaped.input[0] in init:
                inputs.append(shaped.input[0])
                out = add.output[0]
                done.append(add)
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        replaced[id(conv)] = helper.make_node("Conv", inputs, [out], name=conv.name.replace("_quant", ""), **attrs)
        dropped |= {id(n) for n in done}
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    # drop what nothing reads any more (the activations' quantisers, the scale products, bias reshapes)
    needed = {o.name for o in graph.output}
    kept: list[Any] = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            kept.append(n)
            needed |= set(n.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [t for t in graph.initializer if t.name not in needed]
    for t in unused:
        graph.initializer.remove(t)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return len(replaced)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="a model quantised by onnxruntime.quantization.quantize_dynamic")
    ap.add_argument("dst", type=Path, help="the fp32 model to write")
    a = ap.parse_args()
    try:
        n = dequantize(a.src, a.dst)
    except (NotDynamicInt8Error, FileNotFoundError) as exc:
        print(f"dequantize_int8: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {a.dst} ({a.dst.stat().st_size / 1e6:.2f} MB): {n} ConvInteger -> Conv, fp32 throughout")
    return 0


if __name__ == "__main__":
    sys.exit(main())

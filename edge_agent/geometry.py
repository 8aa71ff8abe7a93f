"""Plane geometry for lines, zones and the ground-plane calibration (numpy only).

The configuration is validated with these functions, and the controller
imports the configuration module, so nothing here may pull in OpenCV.

Ground plane: a camera looking at a flat road sees it through a homography
``H`` (3x3), ``[X, Y, 1]^T ~ H [x, y, 1]^T`` from image pixels ``(x, y)`` to
metres ``(X, Y)`` on the road. Four point pairs, no three collinear, fix it;
more pairs are fitted by least squares and the residual (the reprojection
error, in metres) says how well the road is flat and the points were clicked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _normaliser(pts: F64) -> F64:
    """Hartley normalisation: centroid to the origin, mean distance sqrt(2)."""
    c = pts.mean(axis=0)
    d = np.sqrt(((pts - c) ** 2).sum(axis=1)).mean()
    s = np.sqrt(2) / d if d > 0 else 1.0
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])


def fit_homography(src: npt.ArrayLike, dst: npt.ArrayLike) -> F64:
    """Least-squares homography mapping (n, 2) ``src`` to ``dst`` (normalised DLT, n >= 4)."""
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ta, tb = _normaliser(a), _normaliser(b)
    ah = (ta @ np.c_[a, np.ones(len(a))].T).T
    bh = (tb @ np.c_[b, np.ones(len(b))].T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(ah, bh):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    h = vt[-1].reshape(3, 3)
    h = np.linalg.inv(tb) @ h @ ta
    h = h / np.linalg.norm(h)
    # the sign of a homography is free; pick the one that puts the fitted points in front (w > 0),
    # so that a point beyond the horizon (w < 0) can be told apart
    w = np.c_[a, np.ones(len(a))] @ h[2]
    return -h if np.median(w) < 0 else h  # type: ignore[no-any-return]


def apply_homography(h: F64, pts: npt.ArrayLike) -> F64:
    """Map (n, 2) points through ``h``. Points on or behind the horizon come back as NaN."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ h.T
    w = q[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = q[:, :2] / w
    out[(w[:, 0] <= 0)] = np.nan
    return out  # type: ignore[no-any-return]


def collinear_triples(pts: npt.ArrayLike, tol: float) -> list[tuple[int, int, int]]:
    """Index triples of (n, 2) points that lie on one line (triangle height below ``tol``)."""
    p = np.asarray(pts, np.float64)
    bad = []
    for i, j, k in combinations(range(len(p)), 3):
        base = max(np.hypot(*(p[j] - p[i])), np.hypot(*(p[k] - p[i])), np.hypot(*(p[k] - p[j])), 1e-12)
        area2 = abs((p[j, 0] - p[i, 0]) * (p[k, 1] - p[i, 1]) - (p[j, 1] - p[i, 1]) * (p[k, 0] - p[i, 0]))
        if area2 / base < tol:  # twice the area over the longest side = the height on it
            bad.append((i, j, k))
    return bad


@dataclass(frozen=True)
class GroundPlane:
    """A fitted image -> ground homography with its residuals.

    Attributes:
        h: 3x3 image pixels -> metres.
        h_inv: 3x3 metres -> image pixels.
        errors_m: (n,) distance in metres between each ground point and its
            image point mapped through ``h`` (all ~0 with exactly 4 pairs).
    """

    h: F64
    h_inv: F64
    errors_m: F64

    @classmethod
    def fit(cls, image: Sequence[Sequence[float]], ground: Sequence[Sequence[float]]) -> GroundPlane:
        """Fit from point pairs; raises ValueError naming the problem (too few, collinear, mirrored)."""
        img, gnd = np.asarray(image, np.float64), np.asarray(ground, np.float64)
        if len(img) < 4 or len(img) != len(gnd):
            raise ValueError(f"need at least 4 image/ground point pairs, got {len(img)}")
        for name, pts, tol in (("image", img, 2.0), ("ground", gnd, 0.05)):
            triples = collinear_triples(pts, tol)
            # 5+ points may have a collinear triple if the rest spans the plane; 4 may not
            if triples and (len(pts) == 4 or _rank_deficient(pts, tol)):
                i, j, k = triples[0]
                raise ValueError(f"{name} points {i}, {j} and {k} are (nearly) on one line; pick points that "
                                 f"span the road, no three in a row")
        h = fit_homography(img, gnd)
        if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-15:
            raise ValueError("the points give a degenerate homography; check that image and ground points match")
        mapped = apply_homography(h, img)
        if np.isnan(mapped).any():
            raise ValueError("an image point maps beyond the horizon; the pairs do not describe one road plane")
        errors = np.hypot(*(mapped - gnd).T)
        return cls(h=h, h_inv=np.linalg.inv(h).astype(np.float64), errors_m=errors)

    def to_ground(self, pts: npt.ArrayLike) -> F64:
        """(n, 2) image pixels -> (n, 2) metres (NaN beyond the horizon)."""
        return apply_homography(self.h, pts)

    def to_image(self, pts: npt.ArrayLike) -> F64:
        """(n, 2) metres -> (n, 2) image pixels."""
        return apply_homography(self.h_inv, pts)

    @property
    def rms_error_m(self) -> float:
        return float(np.sqrt(np.mean(self.errors_m ** 2)))


@dataclass(frozen=True)
class PinholeCamera:
    """The camera behind a ground-plane calibration: metres (X, Y, height) -> image pixels.

    A homography from the road to the image is ``K [r1 r2 t]`` for a pinhole camera with
    intrinsics ``K`` and pose ``[r1 r2 r3 | t]``. With square pixels and the principal point at the
    image centre (true of most CCTV cameras to a few per cent), the two conditions on ``r1`` and
    ``r2`` (orthogonal, of equal length) give the focal length, and with it the whole camera: the
    height above the road of any point can then be projected too. The calibration's four or more
    point pairs are all it needs; :meth:`from_plane` returns None when the homography is not that of
    such a camera (the two conditions disagree by more than ``tol``), and nothing uses a camera then.

    Attributes:
        projection: (3, 4) matrix: ``[X, Y, Z, 1]`` (ground metres, Z up) -> homogeneous pixels.
        focal_px: focal length in pixels.
        position: (3,) camera position: ground X, Y and height in metres.
    """

    projection: F64
    focal_px: float
    position: F64

    @classmethod
    def from_plane(cls, plane: GroundPlane, width: int, height: int, tol: float = 0.05) -> PinholeCamera | None:
        g = plane.h_inv / np.linalg.norm(plane.h_inv)  # ground (X, Y, 1) -> image
        c = np.array([[1.0, 0.0, -width / 2], [0.0, 1.0, -height / 2], [0.0, 0.0, 1.0]]) @ g
        (a1, a2), (b1, b2), (c1, c2) = c[0, :2], c[1, :2], c[2, :2]
        # with m_i = (a_i / f, b_i / f, c_i): m1 . m2 = 0 and |m1| = |m2|, linear in 1 / f^2
        lhs = np.array([a1 * a2 + b1 * b2, a1 * a1 + b1 * b1 - a2 * a2 - b2 * b2])
        rhs = np.array([-c1 * c2, c2 * c2 - c1 * c1])
        inv_f2 = float(lhs @ rhs) / max(float(lhs @ lhs), 1e-300)
        if not inv_f2 > 0:
            return None
        f = 1.0 / np.sqrt(inv_f2)
        k = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
        m = np.linalg.inv(k) @ g
        n1, n2 = np.linalg.norm(m[:, 0]), np.linalg.norm(m[:, 1])
        cos = abs(float(m[:, 0] @ m[:, 1])) / (n1 * n2)
        if abs(n1 - n2) / max(n1, n2) > tol or cos > tol:
            return None
        scale = 2.0 / (n1 + n2)
        r1, r2, t = m[:, 0] * scale, m[:, 1] * scale, m[:, 2] * scale
        if t[2] < 0:  # the road in front of the camera
            r1, r2, t = -r1, -r2, -t
        r3 = np.cross(r1, r2)
        if r3 @ t > 0:  # "up" points from the road towards the camera, whatever the handedness of X, Y
            r3 = -r3
        rt = np.column_stack([r1, r2, r3, t])
        position = -np.linalg.solve(rt[:, :3], t)
        return cls(projection=k @ rt, focal_px=float(f), position=position)

    def project(self, pts: npt.ArrayLike) -> F64:
        """(..., 3) ground metres with height -> (..., 2) pixels."""
        p = np.asarray(pts, np.float64)
        q = p @ self.projection[:, :3].T + self.projection[:, 3]
        out: F64 = q[..., :2] / q[..., 2:3]
        return out

    def footprint_centres(self, plane: GroundPlane, anchors: npt.ArrayLike, heading: npt.ArrayLike,
                          size: npt.ArrayLike, iterations: int = 2) -> F64:
        """Where on the road vehicles are, from their boxes' bottom-centres.

        A box's bottom-centre is not a fixed point of the vehicle: the box spans the vehicle's front
        or back and its roof as the camera sees it, so as a vehicle passes, its bottom-centre slides
        along it by up to its length. Speeds from it are off by several per cent (about 4 % low for a
        car driving past the synthetic camera). Given each vehicle's heading (radians, ground frame)
        and size (length, width, height in metres), this finds the centre of the road footprint whose
        box, projected and boxed as the detector boxes it, has its bottom-centre at the observed one.

        Args:
            plane: the calibration (image <-> road).
            anchors: (n, 2) box bottom-centres on the road, metres.
            heading: (n,) direction of travel on the road, radians.
            size: (n, 3) length, width and height in metres.
            iterations: fixed-point steps (the slide changes slowly along the road: one step is within
                2 cm of the exact centre, two within 2 mm on the synthetic camera).

        Returns:
            (n, 2) footprint centres, metres.
        """
        a = np.asarray(anchors, np.float64).reshape(-1, 2)
        hd = np.asarray(heading, np.float64).reshape(-1)
        dims = np.asarray(size, np.float64).reshape(-1, 3)
        along = np.stack([np.cos(hd), np.sin(hd)], axis=1)
        across = np.stack([-along[:, 1], along[:, 0]], axis=1)
        signs = np.array([(sl, sw, sz) for sl in (-0.5, 0.5) for sw in (-0.5, 0.5) for sz in (0.0, 1.0)])
        corner_xy = (signs[None, :, 0:1] * dims[:, None, 0:1] * along[:, None, :]
                     + signs[None, :, 1:2] * dims[:, None, 1:2] * across[:, None, :])   # (n, 8, 2)
        corner_z = signs[None, :, 2] * dims[:, None, 2]                                 # (n, 8)
        centre = a.copy()
        for _ in range(iterations):
            xyz = np.concatenate([centre[:, None, :] + corner_xy, corner_z[..., None]], axis=2)
            uv = self.project(xyz)
            bottom = np.stack([(uv[..., 0].min(axis=1) + uv[..., 0].max(axis=1)) / 2, uv[..., 1].max(axis=1)], axis=1)
            centre = centre + (a - plane.to_ground(bottom))
        return centre


def _rank_deficient(pts: F64, tol: float) -> bool:
    """All points within ``tol`` of one straight line."""
    c = pts - pts.mean(axis=0)
    return bool(np.linalg.svd(c, compute_uv=False)[-1] / np.sqrt(len(pts)) < tol)


def points_in_polygon(pts: npt.ArrayLike, polygon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each of (n, 2) points is inside the polygon (even-odd rule; edges count as inside-ish).

    Vectorised ray casting over the polygon's edges.
    """
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64)
    x, y = p[:, 0:1], p[:, 1:2]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (np.count_nonzero(straddles & (x < x_cross), axis=1) % 2 == 1)  # type: ignore[no-any-return]


def polygon_area(polygon: npt.ArrayLike) -> float:
    """Absolute area of a simple polygon (shoelace)."""
    p = np.asarray(polygon, np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def polygon_self_intersects(polygon: npt.ArrayLike) -> bool:
    """Whether two non-adjacent edges of the polygon cross."""
    p = np.asarray(polygon, np.float64)
    n = len(p)

    def cross(o: F64, a: F64, b: F64) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    for i in range(n):
        a, b = p[i], p[(i + 1) % n]
        for j in range(i + 2, n):
            if (j + 1) % n == i:
                continue
            c, d = p[j], p[(j + 1) % n]
            if cross(a, b, c) * cross(a, b, d) < 0 and cross(c, d, a) * cross(c, d, b) < 0:
                return True
    return False


def distance_to_segment(pts: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
    """Euclidean distance of (n, 2) points to the segment a-b."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = b - a
    t = np.clip(((p - a) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.hypot(*(p - (a + t[:, None] * d)).T)  # type: ignore[no-any-return]


def principal_length(pts: npt.ArrayLike) -> float:
    """Extent of (n, 2) points along their principal axis (the length of a lane-shaped zone)."""
    p = np.asarray(pts, np.float64)
    c = p - p.mean(axis=0)
    axis = np.linalg.svd(c, full_matrices=False)[2][0]
    proj = c @ axis
    return float(proj.max() - proj.min())

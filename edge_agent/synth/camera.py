"""A pinhole camera on a pole, and the homography between the road plane and the image.

World coordinates are metres on the ground plane: x east, y north, z up, with
the origin at the centre of the intersection. Camera coordinates: x right, y
down, z forward (OpenCV's convention), so ``u = fx * x / z + cx``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Camera:
    """A pinhole camera without lens distortion.

    Attributes:
        width, height: image size in pixels.
        K: (3, 3) intrinsic matrix.
        R: (3, 3) rotation, world -> camera (rows are the camera's right, down and forward axes in world).
        C: (3,) camera centre in world metres.

    """

    width: int
    height: int
    K: F64
    R: F64
    C: F64

    @classmethod
    def look_at(cls, position: tuple[float, float, float], target: tuple[float, float, float],
                hfov_deg: float, width: int, height: int) -> Camera:
        """A camera at ``position`` looking at ``target`` with a horizontal field of view, no roll."""
        if width < 32 or height < 32:
            raise ValueError(f"image size must be at least 32x32, got {width}x{height}")
        if not 10.0 <= hfov_deg <= 150.0:
            raise ValueError(f"hfov_deg must be in [10, 150], got {hfov_deg}")
        c = np.asarray(position, np.float64)
        fwd = np.asarray(target, np.float64) - c
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-6:
            raise ValueError("the camera must not look straight down or up (no roll is defined)")
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        k = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)
        return cls(width, height, k, np.stack([right, down, fwd]), c)

    def to_camera(self, pts: F64) -> F64:
        """(..., 3) world points -> (..., 3) camera coordinates."""
        return (np.asarray(pts, np.float64) - self.C) @ self.R.T

    def project(self, pts: F64) -> tuple[F64, F64]:
        """(..., 3) world points -> ((..., 2) pixels, (...,) depth in metres along the optical axis)."""
        cam = self.to_camera(pts)
        z = cam[..., 2]
        zz = np.where(z > 1e-6, z, 1e-6)
        u = self.K[0, 0] * cam[..., 0] / zz + self.K[0, 2]
        v = self.K[1, 1] * cam[..., 1] / zz + self.K[1, 2]
        return np.stack([u, v], axis=-1), z

    def depth(self, pts: F64) -> F64:
        """(..., 3) world points -> (...,) depth along the optical axis."""
        return self.to_camera(pts)[..., 2]

    @property
    def ground_to_image(self) -> F64:
        """(3, 3) homography: ground metres (x, y, 1) -> image pixels (u, v, 1), normalised to H[2, 2] = 1."""
        h = self.K @ np.column_stack([self.R[:, 0], self.R[:, 1], -self.R @ self.C])
        return np.asarray(h / h[2, 2], np.float64)

    @property
    def image_to_ground(self) -> F64:
        """(3, 3) homography: image pixels -> ground metres (only meaningful below the horizon)."""
        h = np.linalg.inv(self.ground_to_image)
        return np.asarray(h / h[2, 2], np.float64)

    def horizon_v(self) -> float:
        """Image row of the horizon (may be negative when the horizon is above the image)."""
        # a far point straight ahead on the ground, projected
        fwd = self.R[2].copy()
        fwd[2] = 0.0
        fwd /= np.linalg.norm(fwd)
        uv, _ = self.project(self.C + fwd * 1e6 - np.array([0, 0, self.C[2]]))
        return float(uv[1])


def apply_homography(h: F64, pts: npt.ArrayLike) -> F64:
    """(n, 2) points mapped through a 3x3 homography."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ h.T
    return q[:, :2] / q[:, 2:3]

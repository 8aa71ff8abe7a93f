"""Constant-velocity Kalman filter for boxes, batched over all tracks of a camera.

State of one track (8,): ``[cx, cy, w, h, vcx, vcy, vw, vh]`` in pixels and
pixels per second; measurement (4,): ``[cx, cy, w, h]``.

The model (transition matrix and white-noise-acceleration process noise) is
defined with filterpy (``filterpy.common.Q_discrete_white_noise``). The state
itself is not kept in one ``filterpy.kalman.KalmanFilter`` object per track:
predict and update run as batched numpy over ``(n, 8)`` means and
``(n, 8, 8)`` covariances, which is an order of magnitude faster with tens of
tracks and computes the same thing as filterpy's functional
``predict``/``update`` (a test checks it against them). The filter holds only
the model; ``(mean, cov)`` go in and come out, like ByteTrack's.

Noise scales with the box size, so a 20-pixel pedestrian far away and a
300-pixel bus nearby are both tracked with sensible gates: standard deviations
are fractions of the box width (x, w) or height (y, h).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from filterpy.common import Q_discrete_white_noise

Array = npt.NDArray[np.float64]
DIM_X, DIM_Z = 8, 4
H = np.hstack([np.eye(DIM_Z), np.zeros((DIM_Z, DIM_Z))])


@lru_cache(maxsize=64)
def _unit_model(dt: float) -> tuple[Array, Array]:
    """Transition F(dt) and process noise Q(dt) for unit acceleration variance."""
    f = np.eye(DIM_X)
    f[:DIM_Z, DIM_Z:] = np.eye(DIM_Z) * dt
    q = Q_discrete_white_noise(dim=2, dt=dt, var=1.0, block_size=DIM_Z, order_by_dim=False)
    f.setflags(write=False)
    q.setflags(write=False)
    return f, q


def _scale(boxes_wh: Array) -> Array:
    """(n, 8) per-dimension size scale [w, h, w, h, w, h, w, h]."""
    wh = np.maximum(boxes_wh, 1.0)
    return np.tile(wh, 4)


@dataclass(frozen=True)
class KalmanBoxModel:
    """Noise parameters, as fractions of box size (per second where rates).

    Attributes:
        meas_std: measurement noise std of cx, cy, w, h.
        accel_std: process noise: std of acceleration, in box sizes per s².
        init_vel_std: std of the unknown initial velocity, in box sizes per s.
    """

    meas_std: float = 0.05
    accel_std: float = 2.0
    init_vel_std: float = 1.0

    def initiate(self, z: Array) -> tuple[Array, Array]:
        """New states from (n, 4) measurements: zero velocity, wide velocity uncertainty."""
        n = len(z)
        mean = np.zeros((n, DIM_X))
        mean[:, :DIM_Z] = z
        s = _scale(z[:, 2:4])
        std = np.concatenate([2 * self.meas_std * s[:, :DIM_Z], self.init_vel_std * s[:, DIM_Z:]], axis=1)
        cov = np.zeros((n, DIM_X, DIM_X))
        idx = np.arange(DIM_X)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: Array, cov: Array, dt: float) -> tuple[Array, Array]:
        """Advance (n, 8) means and (n, 8, 8) covariances by ``dt`` seconds."""
        if len(mean) == 0 or dt <= 0:
            return mean, cov
        f, q_unit = _unit_model(round(float(dt), 6))
        s = self.accel_std * _scale(mean[:, 2:4])
        q = q_unit[None] * s[:, :, None] * s[:, None, :]
        mean = mean @ f.T
        cov = f[None] @ cov @ f.T[None] + q
        mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)
        return mean, cov

    def measurement_noise(self, z: Array) -> Array:
        """(n, 4, 4) diagonal measurement covariances for (n, 4) measurements."""
        std = self.meas_std * _scale(z[:, 2:4])[:, :DIM_Z]
        r = np.zeros((len(z), DIM_Z, DIM_Z))
        idx = np.arange(DIM_Z)
        r[:, idx, idx] = std**2
        return r

    def update(self, mean: Array, cov: Array, z: Array) -> tuple[Array, Array]:
        """Correct (n, 8) means and (n, 8, 8) covariances with (n, 4) measurements."""
        if len(mean) == 0:
            return mean, cov
        r = self.measurement_noise(z)
        s = cov[:, :DIM_Z, :DIM_Z] + r
        pht = cov[:, :, :DIM_Z]
        k = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1 (S symmetric)
        y = z - mean[:, :DIM_Z]
        mean = mean + np.einsum("nij,nj->ni", k, y)
        i_kh = np.eye(DIM_X)[None] - k @ H[None]
        cov = i_kh @ cov @ i_kh.transpose(0, 2, 1) + k @ r @ k.transpose(0, 2, 1)  # Joseph form, as filterpy
        return mean, cov


def xyxy_to_z(xyxy: npt.NDArray[np.floating]) -> Array:
    """(n, 4) x1 y1 x2 y2 -> (n, 4) cx cy w h."""
    b = np.asarray(xyxy, np.float64)
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)


def z_to_xyxy(z: Array) -> Array:
    """(n, >=4) cx cy w h ... -> (n, 4) x1 y1 x2 y2."""
    half = z[:, 2:4] / 2
    return np.concatenate([z[:, :2] - half, z[:, :2] + half], axis=1)

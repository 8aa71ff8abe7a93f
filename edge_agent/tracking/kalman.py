"""Constant-velocity Kalman filter for boxes, batched over all tracks of a camera.

State of one track (8,): ``[cx, cy, w, h, vcx, vcy, vw, vh]`` in pixels and
pixels per second; measurement (4,): ``[cx, cy, w, h]``.

The model is defined with filterpy: the transition of each coordinate is
``[[1, dt], [0, 1]]`` and its process noise is filterpy's white-noise
acceleration ``Q_discrete_white_noise(dim=2, dt)``, scaled by the box size.
The measurement noise is diagonal. With a diagonal initial covariance the
four coordinates therefore never couple: the 8x8 covariance is, exactly, four
independent 2x2 blocks (position, velocity) of cx, cy, w and h. The filter
keeps only those blocks, as a ``(n, 3, 4)`` array ``cov`` with

* ``cov[:, 0]``: variance of the positions ``cx, cy, w, h``,
* ``cov[:, 1]``: covariance of each position with its velocity,
* ``cov[:, 2]``: variance of the velocities,

and predict/update are a handful of element-wise numpy operations over all
tracks at once. :func:`full_covariance` expands it to the ``(n, 8, 8)``
matrix; a test checks predict/update against filterpy's functional
``predict``/``update`` on the full matrices. The filter holds only the model;
``(mean, cov)`` go in and come out, like ByteTrack's.

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
def _transition(dt: float, accel_var: float) -> tuple[Array, Array, Array]:
    """Mean transition (8, 8), covariance-block transition (3, 3) and process noise (3, 1, 1) for ``dt``.

    The block transition maps (pos var, pos-vel cov, vel var) of one coordinate
    through ``F = [[1, dt], [0, 1]]``; the noise is filterpy's white-noise
    acceleration for that coordinate, times ``accel_var`` (box sizes² per s⁴).
    """
    f = np.eye(DIM_X)
    f[:DIM_Z, DIM_Z:] = np.eye(DIM_Z) * dt
    a = np.array([[1.0, 2 * dt, dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    q = Q_discrete_white_noise(dim=2, dt=dt, var=accel_var)
    q3 = np.array([q[0, 0], q[0, 1], q[1, 1]]).reshape(3, 1, 1)
    for arr in (f, a, q3):
        arr.setflags(write=False)
    return f.T.copy(), a, q3


# xyxy <-> (cx, cy, w, h) as one matrix product each
_XYXY_TO_Z = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]])
_WH_TO_4 = np.array([[1.0, 0, 1, 0], [0, 1, 0, 1]])  # (w, h) -> (w, h, w, h)
_Z_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]])


@dataclass(frozen=True)
class KalmanBoxModel:
    """Noise parameters, as fractions of box size (per second where rates).

    Attributes:
        meas_std: measurement noise std of cx, cy, w, h.
        accel_std: process noise: std of acceleration, in box sizes per s².
        init_vel_std: std of the unknown initial velocity, in box sizes per s.
    """

    meas_std: float = 0.05
    accel_std: float = 1.0
    init_vel_std: float = 1.0

    def __post_init__(self) -> None:
        for name in ("meas_std", "accel_std", "init_vel_std"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")

    def initiate(self, z: Array) -> tuple[Array, Array]:
        """New states from (n, 4) measurements: zero velocity, wide velocity uncertainty.

        Returns:
            (n, 8) means and (n, 3, 4) block covariances.
        """
        n = len(z)
        mean = np.zeros((n, DIM_X))
        mean[:, :DIM_Z] = z
        wh2 = np.maximum(z[:, 2:4], 1.0) ** 2
        cov = np.zeros((n, 3, 2, 2))
        cov[:, 0] = (2 * self.meas_std) ** 2 * wh2[:, None, :]
        cov[:, 2] = self.init_vel_std**2 * wh2[:, None, :]
        return mean, cov.reshape(n, 3, DIM_Z)

    def transition(self, dt: float) -> tuple[Array, Array, Array]:
        """The (cached) matrices that :func:`predict_with` takes to advance by ``dt`` > 0 seconds."""
        return _transition(round(float(dt), 6), self.accel_std**2)

    def predict(self, mean: Array, cov: Array, dt: float) -> tuple[Array, Array]:
        """Advance (n, 8) means and (n, 3, 4) covariances by ``dt`` seconds (new arrays)."""
        if len(mean) == 0 or dt <= 0:
            return mean, cov
        return predict_with(mean, cov, self.transition(dt))

    def measurement_var(self, z: Array) -> Array:
        """(n, 4) measurement variances of cx, cy, w, h for (n, 4) measurements."""
        wh2 = np.maximum(z[:, 2:4], 1.0) ** 2
        return self.meas_std**2 * np.concatenate([wh2, wh2], axis=1)  # type: ignore[no-any-return]

    def update(self, mean: Array, cov: Array, z: Array) -> tuple[Array, Array]:
        """Correct (n, 8) means and (n, 3, 4) covariances with (n, 4) measurements (new arrays)."""
        n = len(mean)
        if n == 0:
            return mean, cov
        r = np.maximum(z[:, 2:4], 1.0)
        r *= r
        r *= self.meas_std**2
        r = r[:, None, :]  # (n, 1, 2) over [[x, y], [w, h]]
        c4 = cov.reshape(n, 3, 2, 2)
        gain = c4[:, :2] / (c4[:, 0] + r)[:, None]  # (n, 2, 2, 2): position and velocity gains
        y = z - mean[:, :DIM_Z]
        new_mean = (gain * y.reshape(n, 1, 2, 2)).reshape(n, DIM_X)
        new_mean += mean
        out = np.empty_like(c4)
        np.multiply(gain, r[:, None], out=out[:, :2])
        vv = out[:, 2]
        np.multiply(gain[:, 1], c4[:, 1], out=vv)
        np.subtract(c4[:, 2], vv, out=vv)
        return new_mean, out.reshape(n, 3, DIM_Z)


def predict_with(mean: Array, cov: Array, transition: tuple[Array, Array, Array]) -> tuple[Array, Array]:
    """:meth:`KalmanBoxModel.predict` with the matrices of :meth:`KalmanBoxModel.transition` (new arrays)."""
    ft, a, q = transition
    wh2 = np.maximum(mean[:, 2:4], 1.0)
    wh2 *= wh2  # noise of x, w scales with w; of y, h with h: over [[x, y], [w, h]]
    cov = a @ cov
    c4 = cov.reshape(len(cov), 3, 2, 2)
    c4 += q * wh2[:, None, None, :]
    mean = mean @ ft
    wh = mean[:, 2:4]
    np.maximum(wh, 1.0, out=wh)
    return mean, cov


# Component-major ("planar") layout, used by the tracker: numpy's per-call cost is several times
# higher on strided or multi-axis broadcast operands than on contiguous ones, and at tens of tracks
# that cost is the whole cost. ``m`` (2, n, 4) holds positions then velocities, ``c`` (3, n, 4) the
# blocks cov[:, 0], cov[:, 1], cov[:, 2] of the (n, 3, 4) layout above; every operation below is
# the same floating-point operation, on the same numbers, as in predict/update above.
_WHWH = np.array([2, 3, 2, 3])
_WH01 = np.array([0, 1, 0, 1])


def to_planar(mean: Array, cov: Array) -> tuple[Array, Array]:
    """(n, 8), (n, 3, 4) -> (2, n, 4), (3, n, 4) contiguous."""
    n = len(mean)
    return (np.ascontiguousarray(mean.reshape(n, 2, DIM_Z).transpose(1, 0, 2)),
            np.ascontiguousarray(cov.transpose(1, 0, 2)))


def from_planar(m: Array, c: Array) -> tuple[Array, Array]:
    """(2, n, 4), (3, n, 4) -> (n, 8), (n, 3, 4)."""
    n = m.shape[1]
    return m.transpose(1, 0, 2).reshape(n, DIM_X), np.ascontiguousarray(c.transpose(1, 0, 2))


def predict_planar(m: Array, c: Array, transition: tuple[Array, Array, Array]) -> tuple[Array, Array]:
    """:func:`predict_with` on the planar layout (new arrays)."""
    ft, a, q = transition
    s2 = m[0].take(_WH01 + 2, axis=1)  # w h w h
    np.maximum(s2, 1.0, out=s2)
    s2 *= s2
    cn = np.empty_like(c)
    np.matmul(a, c.transpose(1, 0, 2), out=cn.transpose(1, 0, 2))
    cn += q.reshape(3, 1, 1) * s2
    mn = m.copy()
    mn[0] += m[1] * ft[DIM_Z, 0]  # positions += velocity * dt (ft[4, 0] is dt)
    wh = mn[0, :, 2:4]
    np.maximum(wh, 1.0, out=wh)
    return mn, cn


def update_planar(m: Array, c: Array, z: Array, meas_std: float) -> tuple[Array, Array]:
    """:meth:`KalmanBoxModel.update` on the planar layout, ``z`` (n, 4) (new arrays)."""
    r = z.take(_WHWH, axis=1)
    np.maximum(r, 1.0, out=r)
    r *= r
    r *= meas_std**2
    gain = c[:2] / (c[0] + r)  # (2, n, 4): position and velocity gains
    mn = gain * (z - m[0])
    mn += m
    cn = np.empty_like(c)
    np.multiply(gain, r, out=cn[:2])
    vv = cn[2]
    np.multiply(gain[1], c[1], out=vv)
    np.subtract(c[2], vv, out=vv)
    return mn, cn


def full_covariance(cov: Array) -> Array:
    """(n, 3, 4) block covariances -> (n, 8, 8) covariance matrices."""
    n = len(cov)
    full = np.zeros((n, DIM_X, DIM_X))
    i = np.arange(DIM_Z)
    full[:, i, i] = cov[:, 0]
    full[:, i, i + DIM_Z] = cov[:, 1]
    full[:, i + DIM_Z, i] = cov[:, 1]
    full[:, i + DIM_Z, i + DIM_Z] = cov[:, 2]
    return full


def xyxy_to_z(xyxy: npt.NDArray[np.floating]) -> Array:
    """(n, 4) x1 y1 x2 y2 -> (n, 4) cx cy w h."""
    return np.asarray(xyxy, np.float64) @ _XYXY_TO_Z  # type: ignore[no-any-return]


def z_to_xyxy(z: Array) -> Array:
    """(n, >=4) cx cy w h ... -> (n, 4) x1 y1 x2 y2."""
    return z[:, :DIM_Z] @ _Z_TO_XYXY  # type: ignore[no-any-return]

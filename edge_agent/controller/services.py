"""Public-service recommendations: a multinomial logit (softmax) over configured options.

For option j with attributes x_j = (travel time in min, occupancy 0..1, distance in km)::

    V_j = asc_j + beta . x_j           P_j = exp(V_j) / sum_k exp(V_k)

Travel time comes from measured flows on the option's access route through
the BPR link-performance function (Bureau of Public Roads, *Traffic
Assignment Manual*, 1964): t = t0 (1 + 0.15 (v/c)^4). Occupancy comes from
the net count of the option's entry and exit lines since the controller
started (bounded to [0, capacity]).

The coefficients beta are configured, or estimated by maximum likelihood from
observed choices (:func:`fit_mnl`, BFGS on the negative log-likelihood with
its analytic gradient; standard errors from the inverse Hessian).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ATTRIBUTES = ("travel_time_min", "occupancy", "distance_km")


def bpr_time(free_flow_min: float, flow_veh_h: float, capacity_veh_h: float) -> float:
    return free_flow_min * (1.0 + 0.15 * (flow_veh_h / capacity_veh_h) ** 4)


def softmax(v: np.ndarray) -> np.ndarray:
    """Row-wise softmax of utilities (..., J); stable for large utilities."""
    z = v - v.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def probabilities(x: np.ndarray, beta: np.ndarray, asc: np.ndarray | None = None) -> np.ndarray:
    """Choice probabilities for attributes x (..., J, K) and coefficients beta (K,)."""
    v = x @ beta
    if asc is not None:
        v = v + asc
    return softmax(v)


@dataclass(frozen=True)
class MNLFit:
    beta: np.ndarray  # (K,)
    std_err: np.ndarray  # (K,)
    log_likelihood: float
    n: int
    converged: bool


def fit_mnl(x: np.ndarray, chosen: Sequence[int] | np.ndarray, asc: np.ndarray | None = None,
            beta0: np.ndarray | None = None) -> MNLFit:
    """Maximum-likelihood coefficients of a multinomial logit.

    Args:
        x: (N, J, K) attributes of the J options seen by each of N deciders.
        chosen: (N,) index of the chosen option.
        asc: (J,) fixed alternative-specific constants (default 0).
        beta0: (K,) starting point (default 0).

    """
    from scipy.optimize import minimize

    x = np.asarray(x, float)
    y = np.asarray(chosen, int)
    if x.ndim != 3 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x (N, J, K) and chosen (N,), got {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= x.shape[1]:
        raise ValueError(f"chosen indices must be in [0, {x.shape[1]}), got [{y.min()}, {y.max()}]")
    n, _, k = x.shape
    a = np.zeros(x.shape[1]) if asc is None else np.asarray(asc, float)
    rows = np.arange(n)
    x_chosen = x[rows, y]  # (N, K)

    def nll(beta: np.ndarray) -> tuple[float, np.ndarray]:
        v = x @ beta + a  # (N, J)
        m = v.max(axis=1, keepdims=True)
        logsum = (m[:, 0] + np.log(np.exp(v - m).sum(axis=1)))
        ll = float((v[rows, y] - logsum).sum())
        p = softmax(v)
        grad = (x_chosen - np.einsum("nj,njk->nk", p, x)).sum(axis=0)
        return -ll, -grad

    res = minimize(nll, np.zeros(k) if beta0 is None else beta0, jac=True, method="BFGS")
    beta = res.x
    p = probabilities(x, beta, a)
    xbar = np.einsum("nj,njk->nk", p, x)
    d = x - xbar[:, None, :]
    hess = np.einsum("nj,njk,njl->kl", p, d, d)  # Fisher information
    try:
        se = np.sqrt(np.diag(np.linalg.inv(hess)))
    except np.linalg.LinAlgError:
        se = np.full(k, np.nan)
    return MNLFit(beta, se, -float(res.fun), n, bool(res.success))

"""BG/NBD and Gamma-Gamma: the two likelihoods behind :mod:`crm_ml.clv`, with numpy and scipy.

* :class:`BetaGeoModel`, the BG/NBD of Fader, Hardie & Lee (2005), "Counting
  your customers the easy way": while alive a customer buys at a Poisson rate
  ``lambda ~ Gamma(r, alpha)`` and after each repeat purchase drops out with
  probability ``p ~ Beta(a, b)``. It gives the probability that a customer is
  still alive and the expected purchases in the next ``t`` units (Gauss'
  hypergeometric function, :func:`scipy.special.hyp2f1`). With
  ``modified=True`` it is the MBG/NBD of Batislam, Denizel & Filiztekin (2007),
  where the first purchase is a dropout chance too.
* :class:`GammaGammaModel` (Fader, Hardie & Lee 2005, "RFM and CLV"): spend per
  purchase ``~ Gamma(p, nu)`` with ``nu ~ Gamma(q, v)`` across customers, so the
  expected spend per purchase shrinks each customer's mean towards the
  population's, the more the fewer purchases they made.

Both fit by maximum likelihood on the RFM summary of :mod:`crm_ml.features.clv`
with :func:`scipy.optimize.minimize` over the log of the parameters (so they stay
positive): L-BFGS-B, then Nelder-Mead from its answer. The likelihoods are
written here rather than taken from a package: lifetimes, the usual
implementation, is no longer maintained (no release since 0.11.3 in 2020), and
pymc-marketing would pull PyMC and PyTensor (a compiler and a sampler) in for
two small likelihoods of three and four parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import betaln, expit, gammaln, hyp2f1

__all__ = ["BetaGeoModel", "GammaGammaModel"]

logger = logging.getLogger(__name__)


def _as_arrays(*columns: Any) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in columns]


def _minimize(negll: Any, start: np.ndarray) -> optimize.OptimizeResult:
    """Minimise over log-parameters: L-BFGS-B, then Nelder-Mead from its answer."""
    first = optimize.minimize(negll, start, method="L-BFGS-B")
    second = optimize.minimize(negll, first.x, method="Nelder-Mead",
                               options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000})
    return second if second.fun <= first.fun else first


def _dead_log_odds(params: Sequence[float], x: np.ndarray, tx: np.ndarray, t_big: np.ndarray,
                   k: float) -> np.ndarray:
    """log of P(dropped out after the last purchase) / P(alive), per customer.

    ``-inf`` where dropping out was impossible (BG/NBD, no repeat purchase).
    ``k`` is 1 for MBG/NBD (a dropout chance right after the first purchase too).
    """
    r, alpha, a, b = params
    possible = (x > 0) | (k > 0)
    # b + x + k - 1 > 0 wherever dropping out was possible; elsewhere any positive value.
    after = b + np.where(possible, x + k - 1, 1.0)
    odds = np.log(a) - np.log(after) + (r + x) * (np.log(alpha + t_big) - np.log(alpha + tx))
    return np.where(possible, odds, -np.inf)


class BetaGeoModel:
    """BG/NBD (Fader, Hardie & Lee 2005) or MBG/NBD: purchase counts and dropout.

    In BG/NBD a customer can drop out only right after a repeat purchase, so a
    customer who bought once is certainly alive whatever the time since. With
    ``modified=True`` (MBG/NBD, Batislam, Denizel & Filiztekin 2007) the first
    purchase is a dropout chance too: one-time buyers of long ago fade.

    Args:
        penalizer: L2 penalty on the parameters (0: plain maximum likelihood).
        modified: MBG/NBD instead of BG/NBD.

    Attributes:
        params_: ``{"r", "alpha", "a", "b"}``.
        log_likelihood_: Mean log-likelihood per customer at the optimum.
        n_customers_: Customers fitted on.
    """

    def __init__(self, penalizer: float = 0.0, modified: bool = False) -> None:
        self.penalizer = penalizer
        self.modified = modified

    @staticmethod
    def log_likelihood(params: Sequence[float], frequency: Any, recency: Any, T: Any, *,
                       modified: bool = False) -> np.ndarray:
        """Each customer's log-likelihood under ``params = (r, alpha, a, b)``.

        Args:
            params: The four parameters.
            frequency: Repeat purchases ``x``.
            recency: Time of the last repeat purchase since the first ``t_x``.
            T: Time since the first purchase.
            modified: MBG/NBD instead of BG/NBD.
        """
        r, alpha, a, b = params
        x, tx, t_big = _as_arrays(frequency, recency, T)
        k = 1.0 if modified else 0.0
        counts = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + t_big)
        survive = betaln(a, b + x + k) - betaln(a, b)  # E[(1 - p)^(x + k)]
        return (counts + survive
                + np.logaddexp(0.0, _dead_log_odds(params, x, tx, t_big, k)))

    def fit(self, frequency: Any, recency: Any, T: Any) -> BetaGeoModel:
        """Fit ``r, alpha, a, b`` by maximum likelihood.

        Args:
            frequency: Repeat purchases per customer.
            recency: Time from the first to the last purchase.
            T: Time from the first purchase to the end of the observation.

        Returns:
            self

        Raises:
            ValueError: empty input, or recency beyond ``T`` or negative values.
        """
        x, tx, t_big = _as_arrays(frequency, recency, T)
        if x.size == 0:
            raise ValueError("no customers to fit on")
        if np.any(x < 0) or np.any(tx < 0) or np.any(tx > t_big + 1e-9):
            raise ValueError("need 0 <= recency <= T and frequency >= 0")
        # Identical summaries share one likelihood term (weights).
        rows, weights = np.unique(np.column_stack([x, tx, t_big]), axis=0, return_counts=True)
        total = weights.sum()

        def negll(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self.log_likelihood(params, rows[:, 0], rows[:, 1], rows[:, 2],
                                     modified=self.modified)
            value = -(weights * ll).sum() / total + self.penalizer * float(params @ params)
            return float(value) if np.isfinite(value) else 1e12

        scale = max(float(t_big.mean()), 1e-3)
        res = _minimize(negll, np.log([1.0, scale, 1.0, 1.0]))
        r, alpha, a, b = np.exp(res.x)
        self.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        self.log_likelihood_ = -float(res.fun)
        self.n_customers_ = int(total)
        logger.info("%s on %d customers: %s", "MBG/NBD" if self.modified else "BG/NBD", total,
                    {k: round(v, 4) for k, v in self.params_.items()})
        return self

    def _p(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise RuntimeError("BetaGeoModel is not fitted yet")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    @property
    def _k(self) -> float:
        return 1.0 if getattr(self, "modified", False) else 0.0

    def prob_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still alive at the end of the observation.

        Args:
            frequency: Repeat purchases.
            recency: Time of the last repeat purchase since the first.
            T: Time since the first purchase.

        Returns:
            Probabilities; in BG/NBD 1 for a customer with no repeat purchase (who
            cannot have dropped out yet), in MBG/NBD lower the longer ago they bought.
        """
        x, tx, t_big = _as_arrays(frequency, recency, T)
        return expit(-_dead_log_odds(self._p(), x, tx, t_big, self._k))

    def expected_purchases(self, t: Any, frequency: Any = None, recency: Any = None,
                           T: Any = None) -> np.ndarray:
        """Expected purchases in the next ``t`` time units.

        With the customer's history (``frequency``, ``recency``, ``T``) this is
        the conditional expectation of FHL (2005, eq. 10): P(alive) times the
        posterior mean of ``(1 - ((alpha + T) / (alpha + T + p t))^(r + x)) / p``,
        in closed form with :func:`scipy.special.hyp2f1`. Without a history, that
        of a customer just acquired (``x = t_x = T = 0``), i.e. ``E[X(t)]``.

        Args:
            t: Horizon in the model's time unit (a number, or one per customer).
            frequency: Repeat purchases (None: a new customer).
            recency: Time of the last repeat purchase since the first.
            T: Time since the first purchase.

        Returns:
            Expected purchases, one per customer.
        """
        params = self._p()
        r, alpha, a, b = params
        if abs(a - 1) < 1e-9:  # the closed form is 0/0 at a = 1; it is continuous there
            a = 1 + 1e-9
        k = self._k
        if frequency is None:
            frequency, recency, T = [0.0], [0.0], [0.0]
        x, tx, t_big = _as_arrays(frequency, recency, T)
        t = np.asarray(t, dtype=float)
        bk = b + x + k  # the posterior of p given alive is Beta(a, b + x + k)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            shrink = np.exp((r + x) * (np.log(alpha + t_big) - np.log(alpha + t_big + t)))
            grows = 1 - shrink * hyp2f1(r + x, bk, a + bk - 1, t / (alpha + t_big + t))
            alive = expit(-_dead_log_odds((r, alpha, a, b), x, tx, t_big, k))
            out = alive * (a + bk - 1) / (a - 1) * grows
        # A customer almost surely gone (alive underflows to 0) expects nothing.
        return np.where(alive > 0, out, 0.0)


class GammaGammaModel:
    """Gamma-Gamma spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV").

    Args:
        penalizer: L2 penalty on the parameters (0: plain maximum likelihood).

    Attributes:
        params_: ``{"p", "q", "v"}``.
        log_likelihood_: Mean log-likelihood per customer at the optimum.
        n_customers_: Customers fitted on (those with a repeat purchase).
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @staticmethod
    def log_likelihood(params: Sequence[float], frequency: Any, monetary: Any) -> np.ndarray:
        """Each customer's log-density of their mean spend ``monetary`` over ``frequency`` buys."""
        p, q, v = params
        x, m = _as_arrays(frequency, monetary)
        px = p * x
        return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + m * x))

    def fit(self, frequency: Any, monetary: Any) -> GammaGammaModel:
        """Fit ``p, q, v`` on the customers with at least one repeat purchase.

        Args:
            frequency: Repeat purchases per customer (rows with 0 are left out).
            monetary: Mean spend of those repeat purchases (> 0).

        Returns:
            self

        Raises:
            ValueError: no customer with a repeat purchase and a positive spend.
        """
        x, m = _as_arrays(frequency, monetary)
        keep = (x > 0) & (m > 0)
        x, m = x[keep], m[keep]
        if x.size == 0:
            raise ValueError("no customer with a repeat purchase to fit spend on")

        def negll(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            value = (-self.log_likelihood(params, x, m).mean()
                     + self.penalizer * float(params @ params))
            return float(value) if np.isfinite(value) else 1e12

        start = np.log([1.0, 2.0, float(np.median(m))])
        res = _minimize(negll, start)
        p, q, v = np.exp(res.x)
        self.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        self.log_likelihood_ = -float(res.fun)
        self.n_customers_ = int(x.size)
        if q <= 1:
            logger.warning("Gamma-Gamma: q = %.3f <= 1, the population mean spend is infinite", q)
        logger.info("Gamma-Gamma on %d customers: %s", x.size,
                    {k: round(v, 4) for k, v in self.params_.items()})
        return self

    def expected_avg_value(self, frequency: Any, monetary: Any) -> np.ndarray:
        """Expected spend per purchase: the customer's mean shrunk to the population's.

        Args:
            frequency: Repeat purchases (0: the population mean ``p v / (q - 1)``).
            monetary: Mean spend of the repeat purchases.

        Returns:
            ``(v + x m) p / (p x + q - 1)`` per customer.
        """
        if not hasattr(self, "params_"):
            raise RuntimeError("GammaGammaModel is not fitted yet")
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        x, m = _as_arrays(frequency, monetary)
        m = np.where(x > 0, m, 0.0)
        return (v + x * m) * p / (p * x + q - 1)

"""Shared machinery of the adapters: the feature-map base class and GD training.

Every adapter is a network whose output is a linear head on last-layer
features,

    f(x) = W_L h(x) + b_L,      h(x) ∈ R^{p_L},  W_L ∈ R^{C×p_L},

so the gradient of output c with respect to W_L is e_c ⊗ h(x): the
"features" of the attack are h(x) at the trained body, and the attacked
matrix is Θ = (W_L − W_L^init)ᵀ ∈ R^{p_L×C}.  The Gram of the stacked
Jacobian of all C outputs is (H Hᵀ) ⊗ I_C, so the projection loss needs one
n×n solve for all outputs (rftheory.attack.loss.feature_map_loss), never the
n·C × p_L·C Jacobian.

Training (:func:`gradient_descent`): full-batch gradient descent on the
squared loss ℓ = ‖F − Y‖_F² / (2n) from the seeded initialisation, either of
all parameters or of the head (W_L, b_L) only.  Step size: by default
``η₀ = n / λ_max([H, 1][H, 1]ᵀ)`` at the initialisation (1/L for the head part of
ℓ, whose Hessian is ``[H, 1]ᵀ[H, 1]/n``); a step that does not decrease ℓ is
rejected and η halved (monotone GD, so the run cannot diverge).  Stopping
rule: the relative train loss ‖F − Y‖_F² / ‖Y‖_F² ≤ ``tol``, or ``max_steps``
steps (then ``converged`` is False).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ...backend import array_namespace, to_numpy
from ...validation import check_matrix

__all__ = ["FeatureMapModel", "TrainingReport", "gradient_descent", "one_hot_targets"]

TRAIN_MODES = ("all", "last")
HEAD_KEYS = ("head.weight", "head.bias")


@dataclass
class TrainingReport:
    """Outcome of :func:`gradient_descent`.

    Attributes
    ----------
    train : "all" or "last"
        Which parameters were trained (all, or the head W_L, b_L only).
    steps : int
        Accepted GD steps.
    rejected_steps : int
        Steps rejected (loss did not decrease) and retried with η/2.
    lr, lr_initial : float
        Final and initial step size η.
    initial_loss, final_loss : float
        Relative train loss ‖F − Y‖²/‖Y‖² before and after training.
    tol : float
        Stopping tolerance on the relative train loss.
    converged : bool
        final_loss ≤ tol.
    body_change : float
        ‖θ_body − θ_body^init‖ / ‖θ_body^init‖ over all non-head parameters
        (0 when only the head was trained).
    loss_history : list of float
        Relative train loss every ``record_every`` accepted steps (and last).
    wall_time : float
        Seconds.
    """

    train: str
    steps: int
    rejected_steps: int
    lr: float
    lr_initial: float
    initial_loss: float
    final_loss: float
    tol: float
    converged: bool
    body_change: float
    loss_history: list = field(default_factory=list)
    wall_time: float = 0.0

    def summary(self) -> str:
        what = "all layers" if self.train == "all" else "last layer only"
        return (f"full-batch GD ({what}), {self.steps} steps (+{self.rejected_steps} rejected), "
                f"η {self.lr_initial:.3g}→{self.lr:.3g}, relative train loss {self.initial_loss:.2e} → "
                f"{self.final_loss:.2e} (stop at ≤ {self.tol:g}: {'reached' if self.converged else 'NOT reached'}), "
                f"body moved {self.body_change:.2e} (relative)")


def one_hot_targets(y):
    """One-hot matrix Y (n×C) of the distinct values of ``y`` (sorted), and those values.

    Used for classification labels such as :func:`rftheory.data.digits.digits`' y
    (class indices scaled to [−1, 1]): C = number of distinct labels.
    """
    y = to_numpy(y).ravel()
    classes = np.unique(y)
    return (y[:, None] == classes[None, :]).astype(np.float64), classes


class FeatureMapModel:
    """Base of the adapters: a body h(x) ∈ R^p and a linear head, f = W_L h + b_L.

    Follows the feature-map protocol of :mod:`rftheory.attack.loss`: attributes
    ``p`` (= p_L, last-layer feature count), ``d``, ``dtype``, ``xp`` and
    methods ``features(X)`` (H = h(X), n×p) and ``features_vjp(X, G)``
    (∂⟨G, h(X)⟩/∂X, n×d, hand-written).  Subclasses set ``params`` and
    ``init_params`` (dicts name → array, PyTorch state_dict names and
    layouts) and implement ``_body_forward`` / ``_body_backward``.
    ``origin`` names where the weights came from when they are not the
    seeded initialisation (:func:`~rftheory.models.adapters.torch_io.load_npz`
    sets it to "loaded from PATH"); :meth:`describe` reports it.

    ``X`` rows are inputs in R^d (images flattened channel-major, as
    ``torch.flatten`` of an N×C×H×W batch).  The attack keeps candidates on
    the √d-sphere; the adapters themselves accept any rows.
    """

    params: dict
    init_params: dict
    chunk_rows = 256  # features() of many rows (re-seeding candidates) runs in chunks
    origin: str | None = None  # where the weights came from ("loaded from PATH"); None: the seeded init

    # ---- protocol --------------------------------------------------------------------------
    @property
    def outputs(self) -> int:
        """C, the number of outputs of the head."""
        return int(self.params["head.weight"].shape[0])

    @property
    def n_params(self) -> int:
        """Total parameter count of the network (all layers, biases included)."""
        return int(sum(int(np.prod(v.shape)) for v in self.params.values()))

    def _check_X(self, X):
        X = check_matrix(X, "X", cols=self.d, cols_name="d")
        return self.xp.asarray(X, dtype=self.dtype)

    def features(self, X):
        """H = h(X) ∈ R^{n×p}: the last-layer features (the gradient of each output
        with respect to its row of W_L) at the current (trained) body."""
        X = self._check_X(X)
        n = X.shape[0]
        if n <= self.chunk_rows:
            return self._body_forward(X, keep=False)[0]
        return self.xp.concatenate(
            [self._body_forward(X[i:i + self.chunk_rows], keep=False)[0] for i in range(0, n, self.chunk_rows)]
        )

    def features_vjp(self, X, G):
        """∂⟨G, h(X)⟩/∂X ∈ R^{n×d} for G ∈ R^{n×p} (reverse mode, hand-written)."""
        X = self._check_X(X)
        G = self.xp.asarray(G, dtype=self.dtype)
        if G.shape != (X.shape[0], self.p):
            raise ValueError(f"G must have shape {(X.shape[0], self.p)}, got {tuple(G.shape)}")
        H, cache = self._body_forward(X, keep=True)
        dX, _ = self._body_backward(cache, G, param_grads=False)
        return dX

    def forward(self, X):
        """f(X) = h(X) W_Lᵀ + b_L ∈ R^{n×C}."""
        return self._head(self.features(X))

    def input_gradient(self, X, G_out):
        """∂⟨G_out, f(X)⟩/∂X = features_vjp(X, G_out W_L), for G_out ∈ R^{n×C}."""
        G_out = self.xp.asarray(G_out, dtype=self.dtype)
        return self.features_vjp(X, G_out @ self.params["head.weight"])

    def delta_theta(self):
        """Θ = (W_L − W_L^init)ᵀ ∈ R^{p×C}: the attacked matrix (one column per output)."""
        return (self.params["head.weight"] - self.init_params["head.weight"]).T.copy()

    def _head(self, H):
        F = H @ self.params["head.weight"].T
        if "head.bias" in self.params:
            F = F + self.params["head.bias"]
        return F

    # ---- training ----------------------------------------------------------------------------
    def loss_and_grads(self, X, Y, names=None):
        """ℓ = ‖F − Y‖_F²/(2n) and its gradients (dict) for the parameters ``names``
        (default all), by hand-written reverse mode."""
        names = tuple(self.params) if names is None else tuple(names)
        X = self._check_X(X)
        Y = self.xp.asarray(Y, dtype=self.dtype)
        n = X.shape[0]
        body = [k for k in names if k not in HEAD_KEYS]
        H, cache = self._body_forward(X, keep=bool(body))
        R = (self._head(H) - Y) / n
        loss = 0.5 * n * float((R * R).sum())
        grads = {}
        if "head.weight" in names:
            grads["head.weight"] = R.T @ H
        if "head.bias" in names and "head.bias" in self.params:
            grads["head.bias"] = R.sum(axis=0)
        if body:
            _, pg = self._body_backward(cache, R @ self.params["head.weight"], param_grads=True)
            grads.update({k: pg[k] for k in body})
        return loss, grads

    def fit(self, X, Y, *, train: str = "all", lr=None, tol: float = 1e-8, max_steps: int = 20000,
            record_every: int = 10):
        """Train from the current parameters by :func:`gradient_descent`; returns its report.

        Y is n×C (C = outputs) or, for C = 1, a vector.  See the module
        docstring for the step size and the stopping rule.
        """
        return gradient_descent(self, X, Y, train=train, lr=lr, tol=tol, max_steps=max_steps,
                                record_every=record_every)

    # ---- helpers for subclasses ---------------------------------------------------------------
    def _rng(self, tag: int) -> np.random.Generator:
        return np.random.default_rng([int(self.seed), 0xADA9, int(tag)])

    def _normal(self, tag: int, shape, std: float):
        """N(0, std²) entries drawn on the host from (seed, tag): same values on any backend."""
        a = self._rng(tag).standard_normal(shape) * std
        return self.xp.asarray(a, dtype=self.dtype)

    def _origin_words(self) -> str:
        """The weights' origin for :meth:`describe`: ``origin`` if set (e.g. "loaded from PATH"),
        else the seed of the initialisation."""
        return self.origin if self.origin else f"init seed={self.seed}"

    def _freeze_init(self):
        self.init_params = {k: v.copy() for k, v in self.params.items()}


def _head_lr(model, X) -> float:
    H = model.features(X).astype(np.float64)
    xp = array_namespace(H)
    if "head.bias" in model.params:
        H = xp.concatenate([H, xp.ones((H.shape[0], 1))], axis=1)
    lam = float(xp.linalg.eigvalsh(H @ H.T)[-1])
    if not lam > 0:
        raise ValueError("the last-layer features are all zero: cannot set a step size")
    return X.shape[0] / lam


def gradient_descent(model, X, Y, *, train: str = "all", lr=None, tol: float = 1e-8, max_steps: int = 20000,
                     record_every: int = 10) -> TrainingReport:
    """Full-batch GD on ℓ = ‖F − Y‖_F²/(2n), in place on ``model.params``.

    Parameters
    ----------
    train : "all" or "last"
        Train every parameter, or only the head (W_L, b_L; the body stays at
        its initialisation, which makes the network a random-features model
        with features h).
    lr : float or None
        Initial step size; None for ``η₀ = n / λ_max([H, 1][H, 1]ᵀ)`` (see module).
    tol : float
        Stop once ‖F − Y‖_F²/‖Y‖_F² ≤ tol.
    max_steps : int
        Cap on accepted steps.
    """
    if train not in TRAIN_MODES:
        raise ValueError(f"train must be one of {TRAIN_MODES}, got {train!r}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a non-negative number, got {tol}")
    if int(max_steps) < 0:
        raise ValueError(f"max_steps must be non-negative, got {max_steps}")
    X = model._check_X(X)
    xp = model.xp
    Y = xp.asarray(Y, dtype=model.dtype)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape != (X.shape[0], model.outputs):
        raise ValueError(f"Y must have shape {(X.shape[0], model.outputs)} (n × outputs), got {tuple(Y.shape)}")
    y_sq = float((Y.astype(np.float64) ** 2).sum())
    if y_sq == 0.0:
        raise ValueError("Y is all zeros: the relative train loss is undefined")
    n = X.shape[0]
    names = tuple(model.params) if train == "all" else tuple(k for k in HEAD_KEYS if k in model.params)
    if lr is None:
        lr = _head_lr(model, X)
    elif not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr}")
    lr0 = float(lr)
    start = time.perf_counter()
    if train == "last":  # the body is fixed: compute H once, GD on the head only
        H = model.features(X)

        def loss_and_grads(X, Y, names):
            R = (model._head(H) - Y) / n
            grads = {"head.weight": R.T @ H}
            if "head.bias" in names:
                grads["head.bias"] = R.sum(axis=0)
            return 0.5 * n * float((R * R).sum()), grads
    else:
        loss_and_grads = model.loss_and_grads
    loss, grads = loss_and_grads(X, Y, names)
    rel0 = 2 * n * loss / y_sq
    history = [rel0]
    steps = rejected = 0
    rel = rel0
    while rel > tol and steps < int(max_steps):
        old = {k: model.params[k] for k in names}
        for k in names:
            model.params[k] = old[k] - lr * grads[k]
        new_loss, new_grads = loss_and_grads(X, Y, names)
        if not (new_loss < loss):  # also catches NaN
            for k in names:
                model.params[k] = old[k]
            lr *= 0.5
            rejected += 1
            if lr < 1e-12 * lr0:
                break
            continue
        loss, grads = new_loss, new_grads
        steps += 1
        rel = 2 * n * loss / y_sq
        if steps % record_every == 0:
            history.append(rel)
    if history[-1] != rel:
        history.append(rel)
    body = [k for k in model.params if k not in HEAD_KEYS]
    num = sum(float(((model.params[k] - model.init_params[k]).astype(np.float64) ** 2).sum()) for k in body)
    den = sum(float((model.init_params[k].astype(np.float64) ** 2).sum()) for k in body)
    return TrainingReport(
        train=train, steps=steps, rejected_steps=rejected, lr=float(lr), lr_initial=lr0, initial_loss=rel0,
        final_loss=rel, tol=float(tol), converged=bool(rel <= tol), body_change=math.sqrt(num / den) if den > 0 else 0.0,
        loss_history=history, wall_time=time.perf_counter() - start,
    )

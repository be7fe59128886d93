"""Audit a trained network: pick a form of the unified formulation, attack, and judge the result.

:func:`audit` runs :func:`rftheory.attack.reconstruct.reconstruct` on the target and
feature map of one :class:`~rftheory.attack.unified.Formulation` and returns the
candidates in the network's input space with a :class:`~rftheory.attack.verdict.Verdict`
computed from the attacker's figures only.  The form ``"auto"`` is "span-init" when the
file holds an initialisation (the lowest floor for SGD-type training, see
:mod:`rftheory.attack.unified`) and "kkt" when it does not.

Two independent searches (seeds s and s + 1) run on every audit; the better one is the
result, and the rows on which they agree (matched, sign-aware distance within the recovery
threshold) are the ones θ pins down.  When θ does not determine the inputs (counting
fails, or the loss floor lets many inputs fit equally), independent searches end at
different inputs with similar losses, which the attacker can see without the data.

Per-row reliability: a candidate whose multiplier norm ‖α_i‖ is below
:data:`WEAK_ROW` of the largest barely enters θ (a sample the training hardly used: its
loss gradient was small from the start), so θ does not pin it down.  On an SGD-trained
MLP the rows recovered had ‖α_i‖ ≥ 0.09 of the largest and the rows missed ≤ 0.02.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..backend import to_numpy
from .loss import feature_map_loss
from .metrics import DEFAULT_THRESHOLD, reconstruction_errors
from .options import NETWORK_OPTIONS, AttackOptions
from .reconstruct import ReconstructionResult, reconstruct
from .unified import (FORMS, Formulation, KKTHead, DataSubspace, SubspaceMap,
                      data_subspace, model_at, span_state, target_matrix)
from .verdict import Verdict, judge

__all__ = ["AuditResult", "audit", "choose_form", "WEAK_ROW"]

WEAK_ROW = 0.05
RANDOM_TRIALS = 8  # random candidate sets whose median loss is the verdict's reference


@dataclass
class AuditResult:
    """Outcome of :func:`audit`.

    Attributes
    ----------
    X_hat : ndarray (n, d)
        Candidates in the network's input space (rows on the √d-sphere).
    loss : float
        Projection loss of X̂ under the form.
    loss_random : float
        Median loss of random candidate sets in the same search space.
    form_name : str
        Name of the form in :data:`rftheory.attack.unified.FORMS` (or "custom").
    form : Formulation
    why_form : str
        Why this form was chosen.
    subspace : DataSubspace or None
        The first layer's data subspace (dense first layers only).
    c : float
        Decay factor of the initialisation used in the target (1: no weight decay).
    body_moved : float or None
        ‖body_T − body_0‖ / ‖body_0‖ over the non-head parameters (None without init).
    alpha_norms : ndarray (n,)
        ‖α_i‖ of each candidate, relative to the largest.
    agrees : ndarray of bool (n,)
        Whether a second, independent search (seed + 1) found the same row (sign-aware
        distance ≤ the recovery threshold after matching).
    reliable : ndarray of bool (n,)
        alpha_norms ≥ WEAK_ROW and agrees.
    verdict : Verdict
    attack : ReconstructionResult
        The underlying attack (in the search space's coordinates).
    wall_time : float
    """

    X_hat: np.ndarray
    loss: float
    loss_random: float
    form_name: str
    form: Formulation
    why_form: str
    subspace: DataSubspace | None
    c: float
    body_moved: float | None
    alpha_norms: np.ndarray
    reliable: np.ndarray
    agrees: np.ndarray
    verdict: Verdict
    attack: ReconstructionResult
    wall_time: float = 0.0
    notes: list = field(default_factory=list)


def _has_init(model) -> bool:
    return any(np.any(to_numpy(v) != 0) for v in model.init_params.values())


def _body_moved(model):
    num = den = 0.0
    for k, v in model.params.items():
        if k.startswith("head."):
            continue
        v0 = to_numpy(model.init_params[k]).astype(np.float64)
        num += float(((to_numpy(v).astype(np.float64) - v0) ** 2).sum())
        den += float((v0 ** 2).sum())
    return math.sqrt(num / den) if den > 0 else None


def choose_form(model, form="auto") -> tuple[str, Formulation, str]:
    """(name, Formulation, reason) for ``form`` ("auto", a name in FORMS, or a Formulation)."""
    if isinstance(form, Formulation):
        return "custom", form, "given"
    if form == "auto":
        if _has_init(model):
            return "span-init", FORMS["span-init"], ("the file holds the initialisation: Δθ against gradients at θ₀ "
                                                     "(lowest floor for SGD-type training)")
        return "kkt", FORMS["kkt"], "no initialisation in the file: θ_T against gradients at θ_T (KKT form)"
    if form not in FORMS:
        raise ValueError(f"form must be 'auto' or one of {', '.join(FORMS)}, got {form!r}")
    if FORMS[form].target == "delta" and not _has_init(model):
        raise ValueError(f"form {form!r} needs the initialisation (init.* arrays); the file has none: use form 'kkt'")
    return form, FORMS[form], "chosen by the caller"


def audit(model, n: int, form="auto", options: AttackOptions | None = None, *, progress=None,
          **overrides) -> AuditResult:
    """Attack a trained adapter model under one form of the unified formulation and judge it.

    Parameters
    ----------
    model : FeatureMapModel
        A :class:`~rftheory.models.adapters.TwoLayerMLP` or
        :class:`~rftheory.models.adapters.SmallResNet` with ``params`` (trained) and
        ``init_params`` (zeros when the file had none).
    n : int
        Number of samples to reconstruct.
    form : "auto", a name in :data:`~rftheory.attack.unified.FORMS`, or a Formulation
    options : AttackOptions, optional
        Default :data:`rftheory.attack.options.NETWORK_OPTIONS`; ``**overrides`` replace fields.
    progress : callable, optional
        ``progress(r, loss)`` after each restart, r = 0 … 2·restarts − 1 over the two searches.
    """
    start = time.perf_counter()
    options = NETWORK_OPTIONS if options is None else options
    if overrides:
        options = options.replace(**overrides)
    name, formulation, why = choose_form(model, form)
    if n > model.p:
        raise ValueError(f"n = {n} > p_L = {model.p} head features: the features of more than p_L samples are "
                         "linearly dependent, θ cannot single out n samples (counting needs p_L > n + n(d − 1)/C)")
    notes = []
    sub = None
    c = 1.0
    use_sub = False
    if "hidden.weight" in model.params:  # a dense first layer: its update spans the inputs
        sub = data_subspace(model, n)
        notes.extend(sub.notes)
        if formulation.target == "delta":
            c = sub.c
        # without an initialisation W₁,T itself is the update: its span holds the inputs only
        # when the trained weights dominate the (small) initialisation, which its tail shows
        use_sub = formulation.subspace and sub.usable and (_has_init(model) or span_state(sub) < 2)
        if formulation.subspace and sub.usable and not use_sub:
            notes.append("W₁,T is not close to rank n (no initialisation to subtract): candidates searched in R^d")
    base = model_at(model, formulation.point)
    if formulation.multipliers == "kkt":
        base = KKTHead(base)
    search = SubspaceMap(base, sub.basis) if use_sub else base
    Theta = target_matrix(model, formulation, c)
    res = reconstruct(Theta, search, n, options, progress=progress)
    later = None if progress is None else (lambda r, loss: progress(r + options.restarts, loss))
    second = reconstruct(Theta, search, n, options.replace(seed=options.seed + 1), progress=later)
    if second.loss < res.loss:
        res, second = second, res
    G = res.X_hat
    # the two independent searches agree on a row when its sign-aware distance to the other's matched row
    # is within the recovery threshold
    cross = reconstruction_errors(to_numpy(second.X_hat), to_numpy(G))
    agrees = np.empty(n, dtype=bool)
    agrees[cross.permutation] = cross.sign_aware <= DEFAULT_THRESHOLD
    X_hat = to_numpy(search.lift(G) if isinstance(search, SubspaceMap) else G)
    final = feature_map_loss(G, Theta, search, with_grad=False)
    alpha = to_numpy(final.alpha).reshape(n, -1)
    norms = np.linalg.norm(alpha, axis=1)
    rel = norms / norms.max() if norms.max() > 0 else norms
    rng = np.random.default_rng([options.seed, 0xA0D1])
    randoms = []
    for _ in range(RANDOM_TRIALS):
        R = rng.standard_normal((n, search.d))
        R *= math.sqrt(search.d) / np.linalg.norm(R, axis=1, keepdims=True)
        randoms.append(feature_map_loss(search.xp.asarray(R, dtype=search.dtype), Theta, search,
                                        with_grad=False).loss)
    loss_random = float(np.median(randoms))
    k = search.d
    reliable = (rel >= WEAK_ROW) & agrees
    verdict = judge(final.loss, loss_random, p=model.p, n=n, k=k, outputs=model.outputs, subspace=sub,
                    agreement=float(np.mean(agrees)),
                    second_loss=float(second.loss))
    weak = int(np.sum(rel < WEAK_ROW))
    if weak:
        verdict.reasons.append(f"{weak} of {n} candidates carry a multiplier below {WEAK_ROW:g} of the largest: "
                               "θ does not pin those down (samples the training hardly used)")
    return AuditResult(
        X_hat=X_hat, loss=float(final.loss), loss_random=loss_random, form_name=name, form=formulation, why_form=why,
        subspace=sub, c=float(c), body_moved=_body_moved(model) if _has_init(model) else None, alpha_norms=rel,
        reliable=reliable, agrees=agrees, verdict=verdict, attack=res, wall_time=time.perf_counter() - start, notes=notes,
    )

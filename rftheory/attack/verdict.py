"""Whether an attack result can be trusted, from what the attacker has (no true data).

Three figures, each compared with a stated cut:

* the loss ratio ρ = L(X̂) / L_random, the best loss reached against the loss of random
  candidates in the same search space.  When the span assumption holds, the loss at the
  true inputs is a floor set by the body's drift: measured 1e-7 (full-batch GD) to
  2e-4 (SGD with momentum, 1000 steps; weight decay) of L_random on two-layer MLPs, while
  an Adam run leaves 0.4 at the true inputs.  ρ ≤ :data:`RATIO_HOLDS` counts as holding,
  ρ ≥ :data:`RATIO_VIOLATED` as violated;
* the span identity of a dense first layer (:mod:`rftheory.attack.unified`): its tail
  energy beyond rank n, judged by :func:`rftheory.attack.unified.span_state`;
* agreement: two independent searches (different random starts) that end at the same
  rows have found what θ determines; searches that end at different inputs with similar
  losses show that θ does not pin the inputs down (at least :data:`AGREEMENT_HOLDS` of the
  rows agreeing holds, none agreeing is violated);
* counting: the head has p_L features and each candidate lies on a sphere in k
  coordinates (k = d, or the data subspace's dimension), so k − 1 free directions.  The
  C·p_L equations of Θ against n(k − 1) directions and n·C multipliers determine the
  candidates only if C(p_L − n) > n(k − 1) (the sphere count of
  :func:`rftheory.theory.identifiability.counting_limits`).  Below it a zero loss is
  reached by wrong inputs too.

The levels: "assumptions hold" (every figure holds), "violated: recovered samples are
unlikely" (any figure violated), otherwise "doubtful".  A loss at tolerance alone is
never a recovery.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..theory.identifiability import counting_limits
from .unified import DataSubspace, span_state

__all__ = ["Verdict", "judge", "RATIO_HOLDS", "RATIO_VIOLATED", "LEVELS"]

RATIO_HOLDS = 1e-3     # 5× above the largest floor measured on runs that recovered
RATIO_VIOLATED = 1e-1  # 4× below the loss at the true inputs of the Adam run
AGREEMENT_HOLDS = 0.5  # two independent searches agree on at least half of the rows
LEVELS = ("assumptions hold", "doubtful", "violated: recovered samples are unlikely")


@dataclass
class Verdict:
    """The verdict on one attack.

    Attributes
    ----------
    level : str
        One of :data:`LEVELS`.
    reasons : list of str
        One sentence per figure, with the number that decided it.
    figures : dict
        The numbers: loss_ratio, tail_energy, counting_margin, ...
    """

    level: str
    reasons: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.level == LEVELS[0]

    @property
    def violated(self) -> bool:
        return self.level == LEVELS[2]

    def words(self) -> str:
        """The level followed by its reasons, one paragraph."""
        return f"{self.level}: " + "; ".join(self.reasons) if self.reasons else self.level


def judge(loss: float, loss_random: float, *, p: int, n: int, k: int, outputs: int = 1,
          subspace: DataSubspace | None = None, agreement: float | None = None,
          second_loss: float | None = None) -> Verdict:
    """The verdict from the attacker's figures (module docstring for the cuts).

    Parameters
    ----------
    loss, loss_random : float
        Best loss reached, and the median loss of random candidates.
    p, n, k, outputs : int
        Head features p_L, samples, free coordinates per candidate, outputs C.
    subspace : DataSubspace or None
        The first layer's span identity (None: no dense first layer).
    agreement, second_loss : float or None
        Fraction of rows a second independent search found too, and its loss.
    """
    reasons, states, fig = [], [], {}
    ratio = loss / loss_random if loss_random > 0 else float("inf")
    fig["loss_ratio"] = ratio
    if ratio <= RATIO_HOLDS:
        states.append(0)
        reasons.append(f"loss {loss:.3g} is {ratio:.2g} of a random guess's (≤ {RATIO_HOLDS:g}: the data explain θ)")
    elif ratio >= RATIO_VIOLATED:
        states.append(2)
        reasons.append(f"loss {loss:.3g} is {ratio:.2g} of a random guess's (≥ {RATIO_VIOLATED:g}: no candidate "
                       "set explains θ; the model is outside the span form")
    else:
        states.append(1)
        reasons.append(f"loss {loss:.3g} is {ratio:.2g} of a random guess's (between {RATIO_HOLDS:g} and "
                       f"{RATIO_VIOLATED:g})")
    if subspace is not None and subspace.usable:
        fig["tail_energy"] = subspace.tail_energy
        state = span_state(subspace)
        states.append(state)
        share = f"{subspace.tail_energy:.1e} of the first layer's update ({subspace.tail_weights:.1e} of its weights)"
        if state == 0:
            reasons.append(f"{share} lies beyond rank n: rounding, the span identity of SGD-type optimisers holds")
        else:
            reasons.append(f"{share} lies beyond rank n: the span identity is "
                           f"{'violated' if state == 2 else 'doubtful'} — Adam, RMSProp and other per-coordinate "
                           "optimisers, or a BatchNorm after the first layer, break it")
    if agreement is not None:
        fig["agreement"] = agreement
        other = f" (loss {second_loss:.3g})" if second_loss is not None else ""
        if agreement >= AGREEMENT_HOLDS:
            states.append(0)
            reasons.append(f"a second independent search{other} found the same rows for {agreement:.0%} of them")
        elif agreement == 0:
            states.append(2)
            reasons.append(f"a second independent search{other} ended at different inputs for every row: θ does not "
                           "determine them at this loss")
        else:
            states.append(1)
            reasons.append(f"a second independent search{other} agrees on only {agreement:.0%} of the rows")
    needed = counting_limits(n, k, p, outputs)["boundary"]
    fig["counting_margin"] = p / needed
    if not p > needed:
        states.append(2)
        reasons.append(f"p_L = {p} features < n + n(k − 1)/C = {needed:.4g} (counting): wrong inputs also reach "
                       "loss 0")
    else:
        states.append(0)
    return Verdict(LEVELS[max(states)], reasons, fig)

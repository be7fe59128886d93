"""One record of the attack's settings, shared by :func:`~rftheory.attack.reconstruct.reconstruct`,
the command line and the law sweep, so that a sweep cell and a ``reconstruct`` call with the same
record and seed are the same run.

:class:`AttackOptions` is frozen: derive a variant with :meth:`AttackOptions.replace`.  Every field
is checked when the record is made, so a bad value fails before any work is done.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AttackOptions", "NETWORK_OPTIONS", "network_options", "OPTIMIZERS", "DERIVATIVES", "STRATEGIES"]

OPTIMIZERS = ("lbfgs", "momentum")
STRATEGIES = ("restarts", "overparam", "birthdeath", "pursuit")
DERIVATIVES = ("true", "relu")
_DTYPES = {"float32": np.float32, "float64": np.float64, "model": None}


@dataclass(frozen=True)
class AttackOptions:
    """Settings of the reconstruction attack (the data, θ and the model are not settings).

    Attributes
    ----------
    restarts : int
        Independent random initialisations; the lowest final loss wins.
    max_iter : int
        Iteration cap of a restart's local search (all re-seeding rounds together).  The
        moves come on top: a birth-death move re-optimises for at most min(max_iter,
        :data:`rftheory.attack.moves.MOVE_ITERATIONS`) iterations, a pursuit start or re-growth
        move for at most max_iter (plus the pursuit's own deflated refits).
    tol : float
        A restart stops once the projection loss L ≤ tol.  L ≤ tol is evidence of
        recovery only above the counting limit on the sphere, p ≥ nd + 1 (p > n +
        n(d − 1)/C with C outputs): up to p = nd wrong X̂ reach L = 0 as well.
    optimizer : "lbfgs" or "momentum"
        Riemannian L-BFGS (no learning rate), or heavy-ball gradient descent with a
        fixed learning rate (the original authors' scheme, kept for comparison).
    lr, momentum : float
        Learning rate η and β of the momentum optimiser (unused by L-BFGS).
    reseed : bool
        Greedy re-seeding of the least useful row when a restart stalls.
    reseed_candidates : int
        Random sphere points scored when a row is re-seeded.
    seed : int
        Seed of the initialisations and re-seeding draws.
    derivative : "true" or "relu"
        σ' in the gradient: the activation's own derivative, or the ReLU surrogate 1[z > 0].
    stop_at_tol : bool
        Skip the remaining restarts once one reaches L ≤ tol.
    dtype : "float32", "float64" or "model"
        Working precision of the products X̂Vᵀ and (·)V; "model" keeps the model's dtype.
        The Gram matrix, α, r and L are accumulated in float64 either way.
    batch_restarts : bool
        Run the restarts together, sharing each pass over V (random-features models, L-BFGS).
    strategy : "pursuit", "birthdeath", "restarts" or "overparam"
        The global search around the local optimiser.  "pursuit": once the first restart has
        ended above tol, from it, a fresh start grown row by row by matching pursuit on θ and
        refitted jointly, then up to ``moves`` re-growth moves (drop the m least useful rows, grow
        them back by pursuit, refit), ending after 25 rejected in a row
        (:mod:`rftheory.attack.pursuit`; random-features models with a vector θ, otherwise
        birth-death moves per restart); the other restarts run only if the pursuit ends above
        tol; "birthdeath": each restart that ends above tol makes up
        to ``moves`` birth-death moves (add a random row, refit, drop the least useful;
        :mod:`rftheory.attack.moves`);
        "restarts" runs independent random starts only; "overparam" starts each restart with
        n̂ + k rows and prunes them to n̂.  Every proposal is kept only if it lowers L.  A first
        restart that reaches tol is the same run under every strategy but "overparam" (the moves
        draw after all starts are drawn).
    extra_rows : int
        k of "overparam"; 0 picks it from the counting limit (see :func:`rftheory.attack.moves.extra_rows_for`).
    moves : int
        Most moves ("pursuit": re-growth moves of the one global search, each refit capped at
        ``max_iter`` iterations; "birthdeath": birth-death moves per restart, each refit capped
        at min(300, max_iter)),
        each accepted only if it lowers L; they come on top of ``max_iter``.
    merge_cos : float
        Two rows with |cos| above this are a near-duplicate pair (a derivative feature, not two
        samples): the moves drop one of them first and never accept a state holding one.
    """

    restarts: int = 3
    max_iter: int = 3000
    tol: float = 1e-10
    optimizer: str = "lbfgs"
    lr: float = 0.01
    momentum: float = 0.9
    reseed: bool = True
    reseed_candidates: int = 512
    seed: int = 0
    derivative: str = "true"
    stop_at_tol: bool = True
    dtype: str = "float32"
    batch_restarts: bool = False
    strategy: str = "pursuit"
    extra_rows: int = 0
    moves: int = 30
    merge_cos: float = 0.99

    def __post_init__(self):
        for name in ("restarts", "max_iter", "reseed_candidates"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("seed", self.seed, low=0)
        _check_int("extra_rows", self.extra_rows, low=0)
        _check_int("moves", self.moves, low=0)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if (isinstance(self.merge_cos, bool) or not isinstance(self.merge_cos, (int, float, np.floating))
                or not 0 < self.merge_cos < 1):
            raise ValueError(f"merge_cos must be a number in (0, 1), got {self.merge_cos!r}")
        for name in ("tol", "lr"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a number, got {val!r}")
            if not (math.isfinite(val) and (val > 0 if name == "lr" else val >= 0)):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '≥ 0'}, got {val!r}")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float, np.floating, np.integer)):
            raise TypeError(f"momentum must be a number, got {self.momentum!r}")
        if not 0 <= self.momentum < 1:  # False for NaN too
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.derivative not in DERIVATIVES:
            raise ValueError(f"derivative must be 'true' or 'relu', got {self.derivative!r}")
        dtype = self.dtype
        if dtype is None:
            dtype = "model"
        elif not isinstance(dtype, str):
            dtype = np.dtype(dtype).name
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype)
        for name in ("reseed", "stop_at_tol", "batch_restarts"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def working_dtype(self):
        """The NumPy dtype of the products, or None to keep the model's."""
        return _DTYPES[self.dtype]

    def replace(self, **changes) -> "AttackOptions":
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line naming every setting, for the header of a report."""
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


def _check_int(name, val, low):
    if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {val!r}")
    if val < low:
        raise ValueError(f"{name} must be at least {low}, got {val}")


# The record for trained networks (the adapters: reconstruct's default for them, the CLI's
# --model mlp|resnet and rftheory audit).  A network whose body moved during training leaves a
# loss floor above 0 at the true inputs (the drift), far above tol: a restart then never stops at
# tol, re-seeding at a stall replaces correct rows, and birth-death moves run every re-optimisation
# to the end, all for the same recovery.  Plain restarts without re-seeding, capped at 1000
# iterations (the recovering runs stall after 200-1000), reach it with a fraction of the
# evaluations: 746 against 9320 for a GD-trained MLP on 20 digits with 3 restarts, both 20/20.
# Six restarts: every restart runs to its stall (none reaches tol), and on an SGD-trained MLP
# (width 10240) 3 restarts found 10/20 samples where 6 found 12/20, as re-seeding did at 1.6×
# the time.
NETWORK_OPTIONS = AttackOptions(strategy="restarts", restarts=6, reseed=False, max_iter=1000)


def network_options(options: AttackOptions) -> AttackOptions:
    """``options`` with every field left at AttackOptions()'s default taking NETWORK_OPTIONS' value.

    For command lines whose parser carries the random-features defaults: a field the user set to
    another value keeps it.
    """
    base = AttackOptions()
    changes = {f.name: getattr(NETWORK_OPTIONS, f.name) for f in dataclasses.fields(AttackOptions)
               if getattr(options, f.name) == getattr(base, f.name)}
    return options.replace(**changes)

"""Riemannian optimisation on products of spheres: geometry and one L-BFGS.

* :mod:`rftheory.optim.sphere`: tangent projection, retraction, retracted step, random points.
* :mod:`rftheory.optim.lbfgs`: one batched Riemannian L-BFGS (R runs sharing each evaluation,
  optional constraint hook, one set of stopping rules, a stop reason per run).
"""
from .lbfgs import STOP_REASONS, LBFGSResult, riemannian_lbfgs
from .sphere import random_sphere, retract_to_sphere, riemannian_gradient, step_on_sphere

__all__ = ["riemannian_lbfgs", "LBFGSResult", "STOP_REASONS", "random_sphere", "retract_to_sphere",
           "riemannian_gradient", "step_on_sphere"]

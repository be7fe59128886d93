"""Models: the feature maps the attack targets and the trainers that produce their parameters.

* :mod:`.activations` — activations σ with σ' and the registry of names;
* :mod:`.random_features` — the random-features model φ(x) = σ(Vx) and its
  minimum-norm interpolator;
* :mod:`.adapters` — torch-free MLP and ResNet adapters (last-layer features);
* :mod:`.subspace` — the random-features map restricted to a known subspace;
* :mod:`.training` — gradient descent on random features from θ₀ and two-layer
  network trainers, whose weight changes the attacks use.
"""

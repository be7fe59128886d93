"""The reconstruction attack: projection loss, the optimiser driver, error metrics, the subspace attack, the original algorithm."""

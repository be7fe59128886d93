"""Models: activations, the random-features model, adapters for MLPs and ResNets."""

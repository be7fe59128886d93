"""Riemannian optimisation on products of spheres: geometry and one L-BFGS."""

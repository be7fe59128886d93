"""Experiments: law sweeps, critical-ratio estimates and their plots."""

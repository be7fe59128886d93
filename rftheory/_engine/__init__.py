"""Private compiled engine (Numba kernels and helper threads) behind :func:`make_loss`; not public API."""

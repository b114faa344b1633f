"""Numba kernels (no torch). Compiled on first use and cached on disk."""

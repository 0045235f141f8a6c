"""Render kernels as Concrete circuits, their plaintext twins, keys, wire formats, tiling."""

"""Render kernels as Concrete circuits, their plaintext twins, keys, wire formats, tiling.

Modules (import them directly; this package imports nothing heavy on its own):

- ``kernels``: the registry (``volume@1``, ``shade@1``, ``post@1``), compilation, spec hashes;
- ``keys`` (client): key sets on disk, evaluation-key export; ``client``: encrypt / decrypt;
- ``server``: run a tile; ``sandbox`` (parent side): run a lease of tiles in a limited child
  process (child side: ``_child``, its entry, and ``lease_child``), pinned to a job's FFT plan
  (``plans`` fingerprints, chooses and pins plans, so honest replicas are bit-identical);
- ``wire``: bundles; ``merkle``: coefficient streams, roots, proofs; ``agreement``: the rule;
- ``tiling`` and ``jobs``: frames, tiles, canaries; ``voxels`` and ``sample``: scene input.
"""

__all__: list[str] = []

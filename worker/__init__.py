"""The render node: claim loop, sandboxed FHE compute, commit and reveal."""

"""The load run of issue 14 (`make soak`, run as ``PYTHONPATH=tests python -m soak``): one
chain, four render nodes (one lazy), many small jobs posted at once by several artists, and
every wei accounted for at the end. Not a pytest suite: it takes many minutes of all the CPUs."""

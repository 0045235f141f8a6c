"""blindframe's benchmarks: one module per subject, each printing ratios against a baseline."""

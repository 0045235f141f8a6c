"""The artist's live dashboard: a loopback-only web page of jobs, tiles, payments and frames."""

"""Run folders, reports, comparisons and regression baselines."""

"""Comparing runs: the paired verdict (compare), its statistics (stats), k-sample rates (sampling,
rates), cost (cost), slices and probes (slices), judge preference (preference), judge-human
agreement (agreement), the leaderboard, a training run's curve, and the verdict as Markdown or
JUnit (format).

May import: harness.errors, harness.safe, harness.store, harness.suite, harness.grading.
"""

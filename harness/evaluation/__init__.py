"""Evaluating models on suites: `evaluate_suite` (runner), several models and adapters in one
evaluation (adapters), k samples per case (sampled), outputs produced elsewhere (offline),
checkpoint sweeps (sweep) and the names users give models and runs (names).

May import: harness.errors, harness.progress, harness.safe, harness.store, harness.suite,
harness.generation, harness.grading, harness.lmeval, harness.comparison (never harness.training
or harness.cli).
"""

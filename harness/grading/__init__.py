"""Grading: a case's criteria results turned into bad < good < better (grader), and judge models
that answer by choosing one of a few fixed answers (judges). The criteria themselves are the
public package `harness.criteria`.

May import: harness.errors, harness.progress, harness.safe, harness.store, harness.criteria,
harness.suite, harness.generation.
"""

"""Training as the harness sees it: the job around a trainer plugin (job), training data from a
suite (data), data from plain text (synth), how varied a split is (diversity), preference pairs
from the rubric (pairs), and `--nproc` under torchrun (launch). Trainers themselves import only
`harness.plugin`.

May import: harness.errors, harness.progress, harness.outfile, harness.safe, harness.store,
harness.suite, harness.generation, harness.grading, harness.comparison, harness.evaluation,
harness.plugin.
"""

"""Suites: the folder loaded and checked (loader), its files and splits (splits: through
`datasets`), what its criteria need to run (code), prompt variants and few-shot choice (prompts),
train/test leakage (leakage), lm-eval task files read as data (lmeval_config), and `suites new`
(new). Loading never executes code.

May import: harness.errors, harness.safe, harness.generation (its types), harness.criteria.
"""

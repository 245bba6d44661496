"""A suite's lm-eval tasks run through lm-eval (run), and lm-eval's logged samples as tuneval
result rows (samples). Reading the task files is the suite loader's (harness.suite.lmeval_config).

May import: harness.errors, harness.safe, harness.store, harness.suite, harness.generation.
"""

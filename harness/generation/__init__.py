"""Models and generation: what a model spec names and its fingerprint (models, hub), the hardware
and dtype (hardware), chat templates, the `Backend` protocol and its shared types (types), the
local engines (local: one per device; pool: the CPU decoder; static: the CUDA decoder; kernels),
served endpoints (served, served_http), the vLLM engine (vllm_engine), and the one choice of
backend for a model reference, with the engine that ran noted for the run (dispatch).

May import: harness.errors, harness.progress, harness.safe, harness.store, harness.processes.
"""

"""Trainer plugins: the protocol (`trainers.protocol`), the registry (`trainers.registry`) and
the built-in recipes (`trainers.sft`). See `tuneval trainers list`."""

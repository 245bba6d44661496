"""Trainer plugins: the registry (`trainers.registry`) and the built-in recipes (`trainers.sft`,
whose data, model and checkpoint parts are `trainers.sft_data`, `trainers.sft_model` and
`trainers.sft_checkpoints`; `trainers.dpo`). The contract every trainer follows, built-in or
third-party, is `harness.plugin`. See `tuneval trainers list`."""

"""Trainer plugins: the registry (`trainers.registry`) and the built-in recipes (`trainers.sft`,
`trainers.dpo`). The contract every trainer follows, built-in or third-party, is
`harness.plugin`. See `tuneval trainers list`."""

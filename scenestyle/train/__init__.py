"""Training: typed TOML configs, deterministic data streams, one explicit loop per trainer,
atomic checkpoints with exact resume, export to safetensors, and DDP via torchrun.

Modules: ``config`` (``load_config``, overrides, TOML writing, hashing), ``schemas`` (the config
dataclasses of every trainer), ``data`` and ``hr_data`` (crop streams, on-the-fly pairs),
``degradations`` (SR inputs), ``noise_synthesis`` (denoise inputs), ``losses`` and ``sr_losses``,
``pool``, ``optim``, ``ema``, ``checkpoint``, ``ddp``, ``progress``, ``loop`` (what the loops
share), ``cyclegan`` (``train_cyclegan``), ``sr_denoise`` (``train_srgan``, ``train_denoise``),
``export``.
"""

"""Training: typed TOML configs, deterministic data streams, one explicit loop per trainer,
atomic checkpoints with exact resume, export to safetensors, and DDP via torchrun.

Modules: ``config`` (dataclasses, ``load_config``), ``restore_config`` (SR-GAN / denoise configs),
``data`` and ``hr_data`` (crop streams, on-the-fly pairs), ``degradations``, ``losses`` and
``sr_losses``, ``pool``, ``optim``, ``ema``, ``checkpoint``, ``ddp``, ``progress``, ``loop`` (what
the loops share), ``cyclegan`` (``train_cyclegan``), ``restore`` (``train_srgan``,
``train_denoise``), ``export``.
"""

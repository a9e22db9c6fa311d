"""Training: typed TOML configs, a deterministic data stream, the explicit CycleGAN loop,
atomic checkpoints with exact resume, export to safetensors, and DDP via torchrun.

Modules: ``config`` (dataclasses, ``load_config``), ``data``, ``losses``, ``pool``, ``optim``,
``ema``, ``checkpoint``, ``ddp``, ``progress``, ``cyclegan`` (``train_cyclegan``), ``export``.
"""

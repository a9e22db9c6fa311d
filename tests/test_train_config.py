"""Training config: TOML + --set, typed parsing, errors that name the valid keys and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenestyle.errors import UsageError
from scenestyle.train.config import config_sha256, load_config, to_toml
from scenestyle.train.schemas import CycleGANConfig

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_upstream_cyclegan() -> None:
    cfg = load_config()
    assert cfg.gan.lambda_cycle == 10.0 and cfg.gan.lambda_identity == 0.5 and cfg.gan.pool_size == 50
    assert cfg.optim.lr == 2e-4 and cfg.optim.beta1 == 0.5 and cfg.gan.loss == "lsgan"


def test_set_parses_by_field_type() -> None:
    cfg = load_config(
        None,
        [
            "gan.loss=hinge",
            "train.steps=7",
            "optim.lr=1e-3",
            "gan.one_direction=true",
            "data.scale_jitter=[1.0, 2.0]",
            "model.generator_kwargs.ngf=16",
            "model.generator_kwargs={n_blocks = 3}",
            "model.generator_kwargs.ngf=8",
            'data.a="/x y/a"',
        ],
    )
    assert cfg.gan.loss == "hinge" and cfg.train.steps == 7 and cfg.optim.lr == 1e-3 and cfg.gan.one_direction is True
    assert cfg.data.scale_jitter == (1.0, 2.0) and cfg.data.a == "/x y/a"
    assert cfg.model.generator_kwargs == {"n_blocks": 3, "ngf": 8}


@pytest.mark.parametrize(
    "item, needle",
    [
        ("gan.los=lsgan", "gan.loss"),  # wrong key: the valid keys are listed
        ("gann.loss=lsgan", "data, model, gan, optim, train"),
        ("gan.loss=wgan", "vanilla, lsgan, wgan-gp, hinge"),
        ("train.steps=ten", "train.steps"),
        ("train.channels_last=maybe", "true or false"),
        ("model.generator=VGG", "resnet_9blocks"),
        ("data.crop=30", "multiple of 4"),
        ("gan.loss", "key=value"),
    ],
)
def test_bad_overrides_teach(item: str, needle: str) -> None:
    with pytest.raises(UsageError, match=None) as exc:
        load_config(None, [item])
    assert needle in str(exc.value)


def test_toml_file_roundtrip_and_hash(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "cyclegan.toml", ["gan.loss=wgan-gp", "model.generator_kwargs.ngf=8"])
    text = to_toml(cfg)
    path = tmp_path / "c.toml"
    path.write_text(text)
    again = load_config(path)
    assert again == cfg and isinstance(again, CycleGANConfig)
    assert config_sha256(to_toml(again)) == config_sha256(text)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstepz = 3\n")
    with pytest.raises(UsageError, match="valid keys of \\[train\\]: steps"):
        load_config(bad)


def test_shipped_variants_load() -> None:
    files = sorted((REPO / "configs").glob("cyclegan*.toml"))
    assert len(files) >= 2
    for f in files:
        load_config(f)

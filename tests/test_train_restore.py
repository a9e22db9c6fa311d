"""SR-GAN and denoise trainers on tiny data: pairs, every degradation and noise kind, overfitting one
pair, exact resume after SIGKILL, resume extension, DDP, export -> upscale/denoise round trips, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import kill_after_first_checkpoint, torchrun_two_ranks
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.errors import UsageError
from scenestyle.train import checkpoint as ckpt
from scenestyle.train.config import load_config
from scenestyle.train.data import CropRecipe
from scenestyle.train.hr_data import HRCrops, HRStream, NoisyPairs, SRPairs
from scenestyle.train.schemas import DenoiseConfig, SRGANConfig, noise_params
from scenestyle.train.sr_denoise import train_denoise, train_srgan

PY = sys.executable
COMMON = [
    "data.crop=32",
    "data.workers=0",
    "train.log_every=1",
    "train.sample_every=0",
    "train.batch_size=2",
    "loss.pretrain_steps=1",
    "model.discriminator_kwargs={num_feat = 8}",
]
SR = COMMON + ["model.generator_kwargs={num_feat = 8, num_conv = 2, upscale = 2}"]
DN = COMMON + ["model.generator_kwargs={nc = 8, nb = 3}", "train.ema_decay=0.9"]  # tiny ffdnet_color


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Three textured photos (one in a subfolder) and a corrupt file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    yy, xx = np.mgrid[0:40, 0:44]
    for i in range(3):
        base = np.stack([128 + 90 * np.sin(xx / (2.0 + i)), 128 + 90 * np.cos(yy / 3.0), 40.0 * (i + 1) + 0 * xx], -1)
        arr = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / ("sub" if i == 2 else "") / f"{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def _sr(photos: Path, *extra: str) -> SRGANConfig:
    return load_config(None, SR + [f"data.hr={photos}", *extra], root=SRGANConfig)


def _dn(photos: Path, *extra: str) -> DenoiseConfig:
    return load_config(None, DN + [f"data.hr={photos}", *extra], root=DenoiseConfig)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict:
    state = ckpt.load(ckpt.latest_checkpoint(run))
    out = {f"{m}.{k}": v for m, sd in state["models"].items() for k, v in sd.items()}
    if state["ema"] is not None:
        out |= {f"ema.{k}": v for k, v in state["ema"]["module"].items()}
    return out


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ---- pairs


def test_crops_are_native_pixels_and_pairs_are_pure_functions_of_the_step(photos: Path) -> None:
    files = sorted(p for p in photos.rglob("*.png"))
    sr = HRCrops(files, 32, SRPairs(2, "bicubic"), gray=False, seed=0, rank=0)
    r = CropRecipe(0, 0, 1.0, 0.25, 0.75, False, False)
    crop = sr.crop_hr(r)
    src = np.asarray(Image.open(files[0]), dtype=np.float32) / 255  # 40x44: free 8 rows, 12 columns
    x, y = round(12 * 0.25), round(8 * 0.75)
    assert torch.equal(crop, torch.from_numpy(src[y : y + 32, x : x + 32].transpose(2, 0, 1).copy()))
    stream = HRStream(len(files), batch_size=2, crop=32, scale_range=(1.0, 1.0), hflip=True, vflip=True, seed=1)
    lr, hr, pix, sigma = sr[stream.recipes(3)]
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 32, 32) and pix is hr and sigma.numel() == 0
    dn = HRCrops(files, 32, NoisyPairs(("gaussian", "jpeg"), (0.5, 0.5), noise_params(DenoiseConfig().noise)), gray=False, seed=0, rank=0)
    a, b, c = dn[stream.recipes(3)], dn[stream.recipes(3)], dn[stream.recipes(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same step: same crops, same noise
    assert not torch.equal(a[0], c[0])
    assert a[3].shape == (2, 1, 32, 32)


def test_gaussian_sigma_map_matches_the_noise(photos: Path) -> None:
    files = sorted(photos.rglob("*.png"))
    params = {"gaussian": dict(sigma_range=(10.0, 40.0), clip=False)}
    ds = HRCrops(files, 32, NoisyPairs(("gaussian",), (1.0,), params), gray=True, seed=0, rank=0)
    recipes = [CropRecipe(0, i % 3, 1.0, 0.5, 0.5, False, False) for i in range(8)]
    noisy, clean, _, sigma = ds[(0, recipes)]
    assert clean.shape == (8, 1, 32, 32) and torch.allclose(clean * 255, (clean * 255).round())  # 8-bit luma
    for i in range(8):  # one σ per image, in [10, 40]/255, and the residual's std agrees with it
        s = sigma[i].unique()
        assert s.numel() == 1 and 10 / 255 <= s.item() <= 40 / 255
        assert abs((noisy[i] - clean[i]).std().item() / s.item() - 1) < 0.12


# ---- trainers run, on every degradation and noise kind


@pytest.mark.parametrize(
    "kind, gen",
    [
        ("bicubic", []),
        (
            "realesrgan",
            [
                "model.generator=RRDBNet",
                "model.generator_kwargs={num_feat = 8, num_block = 1, num_grow_ch = 4, scale = 2}",
                "model.discriminator=VGGStyleDiscriminator",
                "model.spectral_norm=true",
            ],
        ),
    ],
)
def test_srgan_runs(photos: Path, tmp_path: Path, kind: str, gen: list[str]) -> None:
    cfg = _sr(photos, f"degradation.kind={kind}", "train.steps=3", "train.sample_every=3", *gen)
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        res = train_srgan(cfg, run=tmp_path / "run", device="cpu", show_progress=False)
    assert res.step == 3 and res.stopped == "done" and res.exit_code == 0
    recs = _records(tmp_path / "run")
    assert "loss_D" not in recs[0] and "loss_gan" not in recs[0]  # step 1: L1 pre-training only
    assert {"loss_pix", "loss_gan", "loss_fm", "loss_D"} <= recs[-1].keys()
    assert all(np.isfinite(v) for r in recs for k, v in r.items() if k.startswith("loss"))
    sheet = Image.open(tmp_path / "run" / "samples" / "step_00000003.png")
    assert sheet.size == (3 * 32, 3 * 32)  # input (nearest x2) | output | reference, one row per photo
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [3]


@pytest.mark.parametrize("noise", ["gaussian", "poisson_gaussian", "jpeg", "camera"])
def test_denoise_runs_and_feeds_the_sigma_map(photos: Path, tmp_path: Path, monkeypatch, noise: str) -> None:
    from scenestyle.train import sr_denoise

    calls = []
    build = sr_denoise.build_networks

    def spy(cfg, kind):
        nets = build(cfg, kind)
        nets["G"].register_forward_pre_hook(lambda m, args: calls.append(tuple(a.shape for a in args)))
        return nets

    monkeypatch.setattr(sr_denoise, "build_networks", spy)
    cfg = _dn(photos, f"noise.kinds=[{noise}]", "noise.probs=[1.0]", "train.steps=2")
    res = train_denoise(cfg, run=tmp_path / "run", device="cpu", show_progress=False)
    assert res.step == 2 and _records(tmp_path / "run")[-1]["loss_pix"] > 0
    assert calls and all(c == ((2, 3, 32, 32), (2, 1, 32, 32)) for c in calls)  # G(noisy, sigma_map)


def test_bf16_channels_last_and_max_steps(photos: Path, tmp_path: Path) -> None:
    cfg = _dn(photos, "train.amp=bf16", "train.channels_last=true", "train.steps=5", "train.checkpoint_every=100")
    res = train_denoise(cfg, run=tmp_path / "run", max_steps=2, device="cpu", show_progress=False)
    assert (res.step, res.stopped) == (2, "max-steps")
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [2]
    assert all(np.isfinite(v) for k, v in _records(tmp_path / "run")[-1].items() if k.startswith("loss"))


def test_overfit_one_pair_l1_falls(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    img = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 100 * np.cos(yy / 4.0), 255 * ((xx // 8 + yy // 8) % 2)], -1)
    (tmp_path / "one").mkdir()
    Image.fromarray(img.astype(np.uint8)).save(tmp_path / "one" / "one.png")
    cfg = _sr(
        tmp_path / "one",
        "data.hflip=false",
        "data.vflip=false",
        "train.batch_size=1",
        "train.steps=40",
        "loss.pretrain_steps=40",
        "optim.lr=2e-3",
        "optim.policy=step",
    )
    train_srgan(cfg, run=tmp_path / "run", device="cpu", show_progress=False)
    pix = [r["loss_pix"] for r in _records(tmp_path / "run")]
    assert len(pix) == 40 and np.mean(pix[-5:]) < 0.7 * pix[0]


# ---- resume


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical(photos: Path, tmp_path: Path) -> None:
    steps = [
        "train.deterministic=true",
        "train.steps=10",
        "train.checkpoint_every=2",
        "train.keep_checkpoints=2",
        "loss.pretrain_steps=3",
        "noise.kinds=[gaussian, jpeg, camera]",
        "noise.probs=[0.4, 0.3, 0.3]",
    ]
    ref = train_denoise(_dn(photos, *steps), run=tmp_path / "ref", device="cpu", show_progress=False)
    assert ref.step == 10
    run = tmp_path / "killed"
    sets = [x for s in DN + steps for x in ("--set", s)]
    kill_after_first_checkpoint(
        [PY, "-m", "scenestyle", "train", "denoise", "--clean", str(photos), "--run", str(run), *sets, "--device", "cpu"], run
    )
    assert 0 < ckpt.list_checkpoints(run)[-1][0] < 10
    done = subprocess.run(
        [PY, "-m", "scenestyle", "train", "denoise", "--resume", str(run), "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert _same_weights(tmp_path / "ref", run)
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [8, 10]


def test_resume_extends_a_finished_run(photos: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["train", "srgan", "--hr", str(photos), "--device", "cpu", "--json"]
    sets = [x for s in SR + ["train.deterministic=true", "optim.policy=step", "train.steps=2"] for x in ("--set", s)]
    assert runner.invoke(app, [*args, *sets, "--run", str(tmp_path / "ext")]).exit_code == 0
    res = runner.invoke(app, ["train", "srgan", "--resume", str(tmp_path / "ext"), "--set", "train.steps=3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["step"] == 3 and "steps = 3" in (tmp_path / "ext" / "config.toml").read_text()
    # the extended run equals one that was 3 steps long from the start (the step policy has no total)
    ref = [x if x != "train.steps=2" else "train.steps=3" for x in sets]
    assert runner.invoke(app, [*args, *ref, "--run", str(tmp_path / "ref")]).exit_code == 0
    assert _same_weights(tmp_path / "ext", tmp_path / "ref")
    res = runner.invoke(app, ["train", "srgan", "--resume", str(tmp_path / "ext"), "--set", "loss.gan_weight=1"])
    assert res.exit_code == 2 and "train.steps" in res.output and "loss.gan_weight" in res.output
    res = runner.invoke(app, ["train", "srgan", "--resume", str(tmp_path / "ext"), "--set", "train.steps=1"])
    assert res.exit_code == 2 and "below" in res.output
    res = runner.invoke(app, ["train", "denoise", "--resume", str(tmp_path / "ext")])
    assert res.exit_code == 2 and "train srgan --resume" in res.output


def test_resume_extension_stretches_a_cosine_schedule(photos: Path, tmp_path: Path) -> None:
    train_srgan(_sr(photos, "train.steps=2", "optim.min_lr_ratio=0.0"), run=tmp_path / "sr", device="cpu", show_progress=False)
    assert _records(tmp_path / "sr")[-1]["lr"] == pytest.approx(0.0)  # cosine ended at 0
    train_srgan(None, resume=tmp_path / "sr", overrides=["train.steps=4"], device="cpu", show_progress=False)
    lrs = [r["lr"] for r in _records(tmp_path / "sr")]  # now on the 4-step curve: 0.5 * (1 + cos(pi * k / 4))
    assert lrs[2:] == pytest.approx([1e-4 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in (3, 4)], abs=1e-6)


def test_resume_extension_works_for_cyclegan(photos: Path, tmp_path: Path) -> None:
    from scenestyle.train.cyclegan import train_cyclegan

    cg = [
        "data.crop=32",
        "data.workers=0",
        "model.generator=ResnetGenerator",
        "model.generator_kwargs={ngf = 4, n_blocks = 1}",
        "model.discriminator_kwargs={ndf = 4, n_layers = 1}",
        "train.sample_every=0",
        "train.steps=1",
        f"data.a={photos}",
        f"data.b={photos}",
    ]
    train_cyclegan(load_config(None, cg), run=tmp_path / "cg", device="cpu", show_progress=False)
    res = train_cyclegan(None, resume=tmp_path / "cg", overrides=["train.steps=2"], device="cpu", show_progress=False)
    assert res.step == 2 and [s for s, _ in ckpt.list_checkpoints(tmp_path / "cg")] == [1, 2]
    assert "steps = 2" in (tmp_path / "cg" / "config.toml").read_text()
    with pytest.raises(UsageError, match="train.steps"):
        train_cyclegan(None, resume=tmp_path / "cg", overrides=["gan.loss=hinge"], device="cpu", show_progress=False)


# ---- export -> inference


def _png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def test_export_then_upscale_and_denoise_match_direct_forward(photos: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from scenestyle.nn import build

    runner = CliRunner()
    photo = photos / "0.png"
    for kind, folder, sets in (("srgan", "--hr", SR), ("denoise", "--clean", DN)):
        run = tmp_path / kind
        sets = [x for s in sets + ["train.steps=2"] for x in ("--set", s)]
        res = runner.invoke(app, ["train", kind, folder, str(photos), *sets, "--run", str(run), "--device", "cpu"])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["train", "export", str(run), "--name", f"tiny-{kind}", "-o", str(tmp_path / "exp")])
        assert res.exit_code == 0, res.output
        assert f'task = "{"upscale" if kind == "srgan" else "denoise"}"' in res.stdout
    fixed = ["--device", "cpu", "--precision", "fp32", "--tile", "0"]

    weights = tmp_path / "exp" / "tiny-srgan.safetensors"
    res = runner.invoke(app, ["upscale", str(photo), "--weights", str(weights), "-o", str(tmp_path / "up.png"), *fixed])
    assert res.exit_code == 0, res.output
    g = build("SRVGGNetCompact", num_feat=8, num_conv=2, upscale=2).eval()
    g.load_state_dict(load_file(str(weights)))
    with torch.no_grad():
        want = g(_png(photo)).clamp(0, 1)
    assert (_png(tmp_path / "up.png") - want).abs().max() <= 1.01 / 255

    weights = tmp_path / "exp" / "tiny-denoise.safetensors"  # EMA weights (train.ema_decay > 0)
    res = runner.invoke(
        app, ["denoise", str(photo), "--weights", str(weights), "--noise-level", "25", "-o", str(tmp_path / "dn.png"), *fixed]
    )
    assert res.exit_code == 0, res.output
    g = build("ffdnet_color", nc=8, nb=3).eval()
    g.load_state_dict(load_file(str(weights)))
    with torch.no_grad():
        want = g(_png(photo), 25 / 255).clamp(0, 1)
    assert (_png(tmp_path / "dn.png") - want).abs().max() <= 1.01 / 255


@pytest.mark.filterwarnings("ignore:.*broken.jpg")
def test_init_weights_starts_g_from_an_export_and_wrong_weights_are_one_line(photos: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from scenestyle.nn import build

    start = build("SRVGGNetCompact", num_feat=8, num_conv=2, upscale=2).state_dict()
    start = {k: torch.full_like(v, 0.25) if k.endswith("weight") else v for k, v in start.items()}  # far from any init
    save_file(start, str(tmp_path / "start.safetensors"))
    cfg = _sr(photos, "train.steps=1", "loss.pretrain_steps=1", f"model.init_weights={tmp_path / 'start.safetensors'}")
    train_srgan(cfg, run=tmp_path / "run", device="cpu", show_progress=False)
    g = ckpt.load(ckpt.latest_checkpoint(tmp_path / "run"))["models"]["G"]
    lr = cfg.optim.lr  # one Adam step moves each weight by about lr
    assert all((g[k].float() - v).abs().max() <= 1.5 * lr for k, v in start.items() if k.endswith("weight"))

    save_file(build("SRVGGNetCompact", num_feat=8, num_conv=3, upscale=2).state_dict(), str(tmp_path / "other.safetensors"))
    sets = [x for s in SR + ["train.steps=1", f"model.init_weights={tmp_path / 'other.safetensors'}"] for x in ("--set", s)]
    res = CliRunner().invoke(app, ["train", "srgan", "--hr", str(photos), *sets, "--run", str(tmp_path / "r2"), "--device", "cpu"])
    assert res.exit_code == 2 and "does not fit SRVGGNetCompact" in res.output and "Traceback" not in res.output


# ---- DDP


@pytest.mark.slow
def test_ddp_two_gloo_ranks_stay_in_sync(photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    sets = [x for s in SR + ["train.steps=3", "train.checkpoint_every=3"] for x in ("--set", s)]
    done = torchrun_two_ranks(["train", "srgan", "--hr", str(photos), "--run-dir", str(run), *sets, "--device", "cpu", "--json"], run)
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert len(report["digests"]) == 2 and report["digests"][0] == report["digests"][1]
    assert len(_records(run)) == 3  # rank 0 alone logs
    state = ckpt.load(ckpt.latest_checkpoint(run))
    assert len(state["ranks"]) == 2 and state["ranks"][1]["data"]["rank"] == 1


# ---- config and CLI errors


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "srgan"], "--hr"),
        (["train", "srgan", "--hr", "PHOTOS", "--set", "model.generator=DnCNN"], "SRVGGNetCompact, RRDBNet"),
        (["train", "srgan", "--hr", "PHOTOS", "--set", "model.generator_kwargs={upscale = 1, num_feat = 8}"], "scale"),
        (["train", "srgan", "--hr", "PHOTOS", "--set", "degradation.kind=jpeg"], "bicubic, realesrgan"),
        (["train", "srgan", "--hr", "PHOTOS", "--set", "degradation.realesrgan={noise_rnage = [1.0, 2.0]}"], "noise_range"),
        (["train", "srgan", "--hr", "PHOTOS", "--set", "loss.perceptual_weight=1"], "feature_matching_weight"),
        (
            [
                "train",
                "srgan",
                "--hr",
                "PHOTOS",
                "--set",
                "model.discriminator=VGGStyleDiscriminator",
                "--set",
                "model.discriminator_kwargs={input_size = 64}",
            ],
            "data.crop",
        ),
        (["train", "denoise", "--clean", "PHOTOS", "--set", "noise.probs=[0.5, 0.5]"], "noise.probs"),
        (["train", "denoise", "--clean", "PHOTOS", "--set", "model.generator=ffdnet_gray"], "camera"),
        (["train", "denoise", "--clean", "PHOTOS", "--set", "noise.kinds=[gaussian, salt]"], "poisson_gaussian"),
        (["train", "denoise", "--clean", "NOWHERE"], "does not exist"),
    ],
)
def test_errors_are_one_line_exit_2(photos: Path, tmp_path: Path, argv: list[str], needle: str) -> None:
    argv = [str(photos) if a == "PHOTOS" else str(tmp_path / "nope") if a == "NOWHERE" else a for a in argv]
    tiny = [x for s in ["data.crop=32", "data.workers=0", "train.steps=1"] for x in ("--set", s)]
    res = CliRunner().invoke(app, [*argv, *tiny, "--run", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_shipped_configs_load() -> None:
    repo = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(repo / "srgan.toml", root=SRGANConfig).degradation.kind == "bicubic"
    assert load_config(repo / "srgan-realesrgan.toml", root=SRGANConfig).degradation.kind == "realesrgan"
    cfg = load_config(repo / "denoise.toml", root=DenoiseConfig)
    assert cfg.model.generator == "ffdnet_color" and "camera" in cfg.noise.kinds


def test_config_hash_ignores_only_the_cadence_keys(tmp_path: Path) -> None:
    from scenestyle.train.config import config_hash, to_toml

    base = load_config(None, ["data.hr=/x"], root=SRGANConfig)
    cadence = load_config(None, ["data.hr=/x", "train.steps=7", "train.log_every=3", "train.keep_checkpoints=9"], root=SRGANConfig)
    assert config_hash(base) == config_hash(cadence) and to_toml(base) != to_toml(cadence)
    assert config_hash(base) != config_hash(load_config(None, ["data.hr=/x", "train.batch_size=2"], root=SRGANConfig))
    # same sections and values, other trainer: other hash; TOML round trip keeps the root's defaults
    path = tmp_path / "c.toml"
    path.write_text(to_toml(base))
    assert load_config(path, root=SRGANConfig) == base
    dn = load_config(None, ["data.hr=/x"], root=DenoiseConfig)
    assert dn.model.generator == "ffdnet_color" and dn.loss.feature_matching_weight == 0.0
    path.write_text("[model]\ndiscriminator_kwargs = { num_feat = 16 }\n")
    assert load_config(path, root=DenoiseConfig).model.generator == "ffdnet_color"  # partial table keeps root defaults

"""LPIPS: key layout of the lpips package's state dict, the distance against an independent
computation on torchvision's AlexNet, and `eval pair --lpips-weights`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import models as tv
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.errors import WeightsError
from scenestyle.metrics.lpips import LPIPS, load_lpips

runner = CliRunner()
_SLICES = {"alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))}
_CHNS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _lpips_package_state(features: torch.nn.Module, net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict lpips.LPIPS(net=...) would save, built from torchvision's layers (as the package does)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for n, (a, b) in enumerate(_SLICES[net], start=1):
        for i in range(a, b):
            for k, v in features[i].state_dict().items():
                sd[f"net.slice{n}.{i}.{k}"] = v
    for k, c in enumerate(_CHNS[net]):
        sd[f"lin{k}.model.1.weight"] = torch.rand(1, c, 1, 1, generator=g)
        sd[f"lins.{k}.model.1.weight"] = sd[f"lin{k}.model.1.weight"].clone()  # lpips >= 0.1.4 ModuleList twin
    sd["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    sd["scaling_layer.scale"] = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]
    return sd


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    torch.manual_seed(0)
    features = tv.alexnet(weights=None).features.eval()
    path = tmp_path_factory.mktemp("lpips") / "lpips-alex.pth"
    sd = _lpips_package_state(features, "alex")
    torch.save(sd, path)
    return features, sd, path


def _reference(features, sd, x0, x1):
    """LPIPS v0.1 written out from the paper/package formula on torchvision's own AlexNet."""
    shift, scale = sd["scaling_layer.shift"], sd["scaling_layer.scale"]
    h0, h1, total = (x0 - shift) / scale, (x1 - shift) / scale, 0.0
    for k, (a, b) in enumerate(_SLICES["alex"]):
        for i in range(a, b):
            h0, h1 = features[i](h0), features[i](h1)
        n0 = h0 / (h0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        n1 = h1 / (h1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = sd[f"lin{k}.model.1.weight"][0, :, 0, 0]
        total = total + torch.einsum("nchw,c->nhw", (n0 - n1) ** 2, w).mean(dim=(1, 2))
    return total


def test_alex_matches_independent_computation_and_is_zero_on_identity(alex):
    features, sd, path = alex
    model, sha = load_lpips(path)
    assert len(sha) == 64 and model.net_type == "alex"
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.rand(2, 3, 64, 72, generator=g) * 2 - 1, torch.rand(2, 3, 64, 72, generator=g) * 2 - 1
    with torch.no_grad():
        got, want = model(x0, x1), _reference(features, sd, x0, x1)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7) and (got > 0).all()
        assert torch.equal(model(x0, x0), torch.zeros(2))


@pytest.mark.parametrize("net,build", [("alex", tv.alexnet), ("vgg", tv.vgg16)])
def test_keys_and_shapes_match_the_lpips_package(net, build):
    with torch.device("meta"):  # VGG-16 without its memory
        features = build(weights=None).features
        want = {k: tuple(v.shape) for k, v in _lpips_package_state(features, net).items() if not k.startswith("lins.")}
        got = {k: tuple(v.shape) for k, v in LPIPS(net).state_dict().items()}
    assert got == want


def test_file_without_backbone_says_how_to_get_one(tmp_path):
    path = tmp_path / "alex.pth"
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(_CHNS["alex"])}, path)
    with pytest.raises(WeightsError, match="lpips.LPIPS"):
        load_lpips(path)


def test_eval_pair_with_and_without_lpips(alex, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(x).save(a / "p.png"), Image.fromarray(x).save(b / "p.png")
    Image.fromarray(x).save(a / "q.png"), Image.fromarray(255 - x).save(b / "q.png")
    r = runner.invoke(app, ["eval", "pair", str(a), str(b), "--lpips-weights", str(alex[2]), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    by_name = {i["name"]: i["lpips"] for i in out["images"]}
    assert by_name["p.png"] == 0.0 and by_name["q.png"] > 0
    assert out["means"][""]["lpips"] == pytest.approx(by_name["q.png"] / 2) and "sha256" in out["protocol"]["lpips"]
    r = runner.invoke(app, ["eval", "pair", str(a), str(b)])
    assert r.exit_code == 0 and "--lpips-weights" in r.stdout
    r = runner.invoke(app, ["eval", "pair", str(a), str(b), "--lpips-weights", str(tmp_path / "none.pth")])
    assert r.exit_code == 3 and "none.pth" in r.output

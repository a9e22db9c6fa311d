"""FID/KID/IS against independent formulas; the FID Inception's layout against torchvision's; `eval fid`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from scipy.special import softmax
from scipy.stats import entropy
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.metrics import fid as F
from scenestyle.nn.inception import InceptionV3FID

runner = CliRunner()


def _features(seed: int, n: int = 40, d: int = 6, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, (n, d)) @ rng.normal(0, 1, (d, d))


def test_frechet_distance_against_eigenvalues():
    a, b = _features(0), _features(1, shift=0.5)
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    # Tr sqrt(S1 S2) = sum of square roots of the (real, non-negative) eigenvalues of S1 S2
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expect = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expect, rel=1e-8)
    assert F.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    assert F.frechet_distance(*F.feature_stats(a), *F.feature_stats(b)) == pytest.approx(expect, rel=1e-8)


def test_kid_is_unbiased_mmd_with_cubic_kernel():
    x, y = _features(2, n=12), _features(3, n=12, shift=0.3)
    d, m = x.shape[1], len(x)
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    mean, std = F.kid(x, y, subsets=3, subset_size=m)  # full sets: every subset is a permutation
    assert mean == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="subset size"):
        F.kid(x, y, subset_size=50)


def test_inception_score_against_scipy():
    z = np.random.default_rng(4).normal(0, 3, (30, 7))
    scores = []
    for part in np.array_split(z, 3):
        p = softmax(part, axis=1)
        scores.append(np.exp(np.mean([entropy(row, p.mean(0)) for row in p])))
    mean, std = F.inception_score(z, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-9) and std == pytest.approx(np.std(scores), rel=1e-9)
    assert F.inception_score(np.zeros((10, 5)), splits=2)[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A checkpoint with pytorch-fid's layout, written from torchvision's Inception3 (random weights,
    random BN statistics) and without num_batches_tracked, like an old torch.save."""
    torch.manual_seed(0)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    sd = {
        k: (torch.rand_like(v) + 0.5 if k.endswith("running_var") else torch.randn_like(v) * 0.05 if v.is_floating_point() else v)
        for k, v in tv.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path_factory.mktemp("fid") / "pt_inception-test.pth"
    torch.save(sd, path)
    return path, sd


def test_layout_matches_pytorch_fid_keys(inception_file):
    path, sd = inception_file
    model, sha = F.load_fid_inception(str(path))
    own = model.state_dict()
    known = {  # names and shapes of pt_inception-2015-12-05-6726825d.pth (pytorch-fid / torchvision Inception3)
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for k, shape in known.items():
        assert tuple(own[k].shape) == shape, k
    assert len(sha) == 64
    torch.testing.assert_close(own["Mixed_6e.branch1x1.bn.running_mean"], sd["Mixed_6e.branch1x1.bn.running_mean"])


def test_extractor_matches_torchvision_blocks(inception_file):
    path, sd = inception_file
    model, _ = F.load_fid_inception(str(path))
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False).eval()
    tv.load_state_dict(sd, strict=False)
    x = torch.randn(1, 288, 35, 35)
    with torch.no_grad():  # unpatched blocks are torchvision's exactly
        torch.testing.assert_close(model.Mixed_6a(x), tv.Mixed_6a(x))
        stem = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(
            model.Conv2d_2b_3x3(model.Conv2d_2a_3x3(model.Conv2d_1a_3x3(stem))), tv.Conv2d_2b_3x3(tv.Conv2d_2a_3x3(tv.Conv2d_1a_3x3(stem)))
        )
    imgs = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8) for i in range(3)]
    feats, logits = F.extract(model, imgs, "clean", batch_size=2)
    assert feats.shape == (3, 2048) and logits.shape == (3, 1008) and np.isfinite(feats).all()
    legacy, _ = F.extract(model, imgs, "legacy")
    assert legacy.shape == (3, 2048)
    assert F.preprocess(imgs[0], "clean").shape == (3, 299, 299) and F.preprocess(imgs[0], "legacy").shape == (3, 40, 50)


def test_bad_checkpoint_is_a_weights_error(tmp_path):
    from scenestyle.errors import WeightsError

    p = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, p)
    with pytest.raises(WeightsError, match="not an FID Inception"):
        F.load_fid_inception(str(p))


def _folder(path, seed, n=4):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


@pytest.mark.slow  # two 2048x2048 matrix square roots per run, run twice
def test_eval_fid_cli_kid_is_and_cache(tmp_path, inception_file, monkeypatch):
    monkeypatch.setenv("SCENESTYLE_CACHE", str(tmp_path / "cache"))
    a, b = _folder(tmp_path / "a", 0), _folder(tmp_path / "b", 1)
    args = ["eval", "fid", str(a), str(b), "--weights", str(inception_file[0]), "--kid", "--is", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["fid"] > 0 and out["kid_subset_size"] == 4 and set(out["inception_score"]) == {"a", "b"}
    assert out["protocol"]["mode"] == "clean" and out["cached"] == [False, False]
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["cached"] == [True, True] and again["fid"] == pytest.approx(out["fid"])
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 2


def test_eval_fid_without_weights_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    a, b = _folder(tmp_path / "a", 0, 2), _folder(tmp_path / "b", 1, 2)
    r = runner.invoke(app, ["eval", "fid", str(a), str(b), "--offline"])
    assert r.exit_code == 3
    assert "scenestyle weights pull inception-fid" in r.output and len(r.output.strip().splitlines()) == 1

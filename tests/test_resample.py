"""Band-by-band antialiased bicubic resizing equals torch's whole-image resize."""

from __future__ import annotations

import numpy as np
import pytest

from scenestyle.engine.convert import resize
from scenestyle.engine.resample import BandResizer, axis_weights, resize_band


@pytest.mark.parametrize(
    "h,w,oh,ow", [(40, 52, 20, 26), (40, 52, 35, 45), (37, 29, 111, 87), (50, 30, 7, 5), (9, 11, 40, 3), (1, 5, 3, 7), (64, 64, 64, 64)]
)
@pytest.mark.parametrize("band", [1, 7, 1000])
def test_bands_fed_top_to_bottom_give_the_whole_resize(h, w, oh, ow, band):
    x = np.random.default_rng(h * w + band).random((h, w, 3)).astype(np.float32)
    resizer = BandResizer(h, w, oh, ow)
    pieces = [piece for r in range(0, h, band) for piece in resizer.feed(x[r : r + band])]
    starts = [first for first, _ in pieces]
    got = np.concatenate([rows for _, rows in pieces])
    assert starts == sorted(starts) and starts[0] == 0
    assert all(a + len(rows) == b for (a, rows), b in zip(pieces, starts[1:] + [oh]))  # contiguous, no gaps
    np.testing.assert_allclose(got, resize(x, oh, ow), atol=1e-5)


def test_resize_band_reads_only_the_rows_it_needs():
    x = np.random.default_rng(0).random((60, 33)).astype(np.float32)
    whole = resize(x, 150, 80)
    first, w = axis_weights(60, 150)
    np.testing.assert_allclose(resize_band(x, 150, 80, 40, 90), whole[40:90], atol=1e-5)
    poisoned = x.copy()
    poisoned[: int(first[40])] = np.nan  # rows above the band's inputs are never read
    poisoned[int(first[89]) + w.shape[1] :] = np.nan
    np.testing.assert_allclose(resize_band(poisoned, 150, 80, 40, 90), whole[40:90], atol=1e-5)


def test_axis_weights_sum_to_one_and_stay_inside():
    for n_in, n_out in ((10, 3), (10, 37), (1, 4), (7, 7)):
        first, w = axis_weights(n_in, n_out)
        np.testing.assert_allclose(w.sum(axis=1), 1, atol=1e-6)
        used = np.nonzero(w)
        assert (first[used[0]] + used[1] < n_in).all() and (first >= 0).all()

"""The three jobs — stylize, upscale, denoise — as Picture → Picture processors.

Each processor holds a loaded model and its placement and is called once per photo; the
batch runner does the rest. Alpha, ICC, EXIF and bit depth ride along on the Picture.

Denoisers with a noise-level input (FFDNet) get one σ per photo: the given ``noise_level``, or
``strength`` × the blind estimate of :func:`scenestyle.engine.noise.estimate_noise`. One σ for
the whole photo keeps the tiles seam-free; ``annotate`` decides it on the reader thread, stores
it on the Picture (``Picture.noise_level``) and records it as a note, so it lands in the
manifest and the summary; the tile runner passes it to every forward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from scenestyle.engine.convert import UnitRange, blend, resize, resize_rows, to_pixels, to_tensor
from scenestyle.engine.device import Placement
from scenestyle.engine.guided import BAND_ROWS, GuidedUpsampler, work_shape
from scenestyle.engine.noise import fixed_sigma_note, gain_note, gray_gain, sigma_from_estimate
from scenestyle.engine.resample import BandResizer, resize_band, resize_in_bands
from scenestyle.engine.streamed import Band, Streamed, materialise
from scenestyle.engine.strokes import Strokes, draw_strokes
from scenestyle.engine.tiles import has_instance_norms, model_blocks, run_model, run_model_many
from scenestyle.engine.windows import fewest_pixels_tile, round_up
from scenestyle.errors import ScenestyleError
from scenestyle.imaging import Picture, alpha_kind, quantise_into, unit_float
from scenestyle.nn.meta import ModelMeta

TileProgress = Callable[[int, int], None]
# Results with at least this many output pixels are computed band by band while the writer
# encodes them (nothing full-size in memory). Smaller ones are computed whole (upscales straight
# into a sample buffer), so that their encoding overlaps the next photo's compute.
STREAM_PIXELS = 16_000_000
FEED_ROWS = 128  # model-output rows handed to an --outscale resize at a time
NEVER = 1 << 62  # a ``stream_pixels`` for callers that need every result as an array
# On the CPU a norm-free style net paints the working-size photo in windows of at most this many
# pixels (halo included), as few as cover it: a whole 1 MP pass holds about 500 MB of activations,
# which would take a 12 MP stylize over 1 GB; two windows of a 3:2 photo stay under it, and the
# feathered windows with the net's halo give the whole-image result to within 1/255. Nets with
# instance norms run whole (exact statistics).
WORK_WINDOW_PIXELS = 700_000
NON_FINITE = "the model produced NaN or infinite values; try --precision fp32"  # one line, whatever the stage


@dataclass
class Processor:
    """Runs one model over a Picture; ``task`` picks the pre/post-processing."""

    model: nn.Module  # prepared for the placement (engine.device.prepare)
    meta: ModelMeta  # what the loader says about it
    placement: Placement
    task: str  # "style" | "upscale" | "denoise"
    tile: int | None = None  # None = auto, 0 = whole image, N = N×N tiles
    batch_size: int = 1
    strength: float = 1.0  # stylize/denoise: blend of the result over the input; noise-level denoisers: σ = strength × estimate
    noise_level: float | None = None  # noise-level denoisers: σ in [0, 1] units for every photo; None = estimate
    outscale: float | None = None  # upscale: final size factor (default: the model's scale)
    progress: TileProgress | None = None
    stream_pixels: int | None = None  # results this big (output pixels) are computed while written; None = STREAM_PIXELS
    work_pixels: int = 0  # stylize: photos larger than this are painted at this size, then guided back up (0 = full size)
    strokes: Strokes | None = None  # stylize with work_pixels > 0: brush streaks drawn over the painting at the working size

    def __post_init__(self) -> None:
        self.net = self.model  # the bare network
        self.model = UnitRange(self.model, self.meta.value_range)

    @property
    def reads_samples(self) -> bool:
        """True when photos may be read as integer samples (``read_picture(samples=True)``): stylize
        and upscale read them window by window or band by band, so no float copy of a big photo is
        made (a denoiser estimates its σ from the whole photo first)."""
        return self.task in ("style", "upscale")

    @property
    def takes_noise_level(self) -> bool:
        """True for a denoiser whose forward is conditioned on σ (``meta.takes_sigma``)."""
        return self.task == "denoise" and self.meta.takes_sigma

    def sigma(self, pixels: np.ndarray) -> tuple[float, str]:
        """The σ (in [0, 1] units) to denoise ``pixels`` with, and a note saying where it came from."""
        gain = gray_gain(pixels, self.meta.in_channels)
        if self.noise_level is not None:
            return self.noise_level * gain, f"noise level {self.noise_level * 255:.3g}/255 from --noise-level" + gain_note(gain)
        return sigma_from_estimate(pixels, self.strength, self.meta.sigma_max, gain)

    def annotate(self, pic: Picture) -> Picture:
        """Decide a noise-level denoiser's σ for ``pic`` ahead of ``__call__`` (on the reader
        thread): it rides along as ``pic.noise_level`` and is added to the notes."""
        if not self.takes_noise_level:
            fixed = self.meta.fixed_sigma if self.task == "denoise" else None
            note = fixed_sigma_note(pic.pixels, fixed, self.strength) if fixed else None  # e.g. DnCNN-25 on a clean photo
            return dataclasses.replace(pic, notes=(*pic.notes, note)) if note else pic
        level, note = self.sigma(pic.pixels)
        return dataclasses.replace(pic, noise_level=level, notes=(*pic.notes, note))

    def _sigma_for(self, pic: Picture) -> float | None:
        """The σ to run ``pic`` at: the one ``annotate`` decided, else decided now; None for a
        model without a noise-level input."""
        if not self.takes_noise_level:
            return None
        return pic.noise_level if pic.noise_level is not None else self.sigma(pic.pixels)[0]

    def _stream(self, pic: Picture, m: nn.Module, placement: Placement, sigma: float | None) -> Streamed | None:
        """The model over ``pic`` as a ``Streamed`` result; None when the float path is needed (a
        one-channel model on a colour photo runs once per channel)."""
        if self.meta.in_channels == 1 and pic.pixels.shape[2] == 3:
            return None
        blended = self.task != "upscale" and not self.takes_noise_level  # a noise-level denoiser took strength into σ
        tiled = _TiledBands(
            pic,
            m,
            self.meta,
            placement,
            self.tile,
            self.batch_size,
            self.progress,
            strength=self.strength if blended else 1.0,
            sigma=sigma,
            size=self._out_size(pic),
        )
        return Streamed(pic, tiled.shape, alpha_kind(pic.alpha), tiled.bands)

    def _out_size(self, pic: Picture) -> tuple[int, int]:
        """(height, width) of the result for ``pic``."""
        h, w = pic.pixels.shape[:2]
        if self.task != "upscale":
            return h, w
        factor = self.outscale if self.outscale is not None else float(self.meta.scale)
        return max(1, round(h * factor)), max(1, round(w * factor))

    @property
    def draws_strokes(self) -> bool:
        """True when stylize finishes each painting (chroma median, edges, streaks: ``Strokes.acts``), at the working size or below."""
        return self.task == "style" and self.work_pixels > 0 and self.strokes is not None and self.strokes.acts

    def _streams(self, pic: Picture) -> bool:
        """True when the result for ``pic`` is big enough to be computed while it is written (not a
        photo within the working size that gets strokes: it is painted and stroked whole)."""
        if self.draws_strokes and not self._paints_small(pic):
            return False
        th, tw = self._out_size(pic)
        return th * tw >= (STREAM_PIXELS if self.stream_pixels is None else self.stream_pixels)

    def _run(
        self, pixels: np.ndarray, m: nn.Module, placement: Placement, sigma: float | None = None, tile: int | None = None
    ) -> np.ndarray:
        """Model over an H×W×C array (``tile``: as ``self.tile``); a one-channel model runs each colour channel alone."""
        if self.meta.in_channels == 1 and pixels.shape[2] == 3:
            return np.concatenate([self._run(pixels[..., c : c + 1], m, placement, sigma, tile) for c in range(3)], axis=2)
        y = run_model(
            m,
            self.meta,
            to_tensor(pixels, self.meta.in_channels),
            placement,
            tile=self.tile if tile is None else tile,
            batch_size=self.batch_size,
            progress=self.progress,
            sigma=sigma,
        )
        return to_pixels(y, channels=pixels.shape[2])

    def _paints_small(self, pic: Picture) -> bool:
        """True when ``pic`` is stylized at the working size (see ``engine.guided``)."""
        h, w = pic.pixels.shape[:2]
        return self.task == "style" and 0 < self.work_pixels < h * w

    def work_tile(self, hs: int, ws: int) -> int | None:
        """The tile for painting an ``hs`` x ``ws`` working size: ``tile`` when given, else on the
        CPU for a norm-free net the fewest windows under ``WORK_WINDOW_PIXELS``, else auto."""
        if self.tile is not None or self.placement.device.type != "cpu" or has_instance_norms(self.net):
            return self.tile
        m = self.meta.size_multiple
        return fewest_pixels_tile(hs, ws, round_up(self.meta.halo, m), m, WORK_WINDOW_PIXELS)

    def _stylize_small(self, pic: Picture) -> Picture:
        """Paint ``pic`` at the working size, then guided-upsample it to full size band by band."""
        h, w, _ = pic.pixels.shape
        hs, ws = work_shape(h, w, self.work_pixels, self.meta.size_multiple)
        small = resize_in_bands(pic.pixels, hs, ws)
        painted = self._run(small, self.model, self.placement, tile=self.work_tile(hs, ws))
        if hasattr(self.net, "release_memory"):  # OpenVINO holds the pass's activations; the full-size guided filter needs the room
            self.net.release_memory()
        if self.draws_strokes:
            painted = draw_strokes(painted, self.strokes, small)
        pic = dataclasses.replace(pic, notes=(*pic.notes, f"painted at {ws}x{hs}, guided up to {w}x{h}"))
        up = GuidedUpsampler(small, painted, h, w)
        result = Streamed(
            pic, up.shape, alpha_kind(pic.alpha), lambda bits, with_alpha: _guided_bands(pic, up, self.strength, bits, with_alpha)
        )
        if self._streams(pic):
            return result
        pixels, alpha = materialise(result, 16 if pic.bit_depth == 16 else 8)  # quantised band by band: no float copy
        return dataclasses.replace(pic, pixels=pixels, alpha=alpha)

    def __call__(self, pic: Picture) -> Picture | Streamed:
        """The result for ``pic``: a Picture, or a ``Streamed`` result when it is big enough to be
        computed while it is written."""
        if self._paints_small(pic):
            return self._stylize_small(pic)
        if self.takes_noise_level:
            pic = _as_float(pic)
        sigma = self._sigma_for(pic)
        stream = self._stream(pic, self.model, self.placement, sigma)
        if stream is not None and self._streams(pic):
            return stream  # computed as it is written
        if stream is not None and self.task == "upscale":  # quantised block by block: no float copy
            pixels, alpha = materialise(stream, 16 if pic.bit_depth == 16 else 8)
            return dataclasses.replace(pic, pixels=pixels, alpha=alpha)
        pic = _as_float(pic)
        return self._finish(pic, self._run(pic.pixels, self.model, self.placement, sigma))

    def many(self, pics: list[Picture]) -> list[Picture | Streamed]:
        """Several pictures; same-size ones share forward passes (up to ``batch_size`` whole images
        each), a noise-level denoiser with one σ per image."""
        per_image = (
            len(pics) == 1
            or self.batch_size == 1
            or len({p.pixels.shape for p in pics}) > 1
            or (self.meta.in_channels == 1 and pics[0].pixels.shape[2] == 3)
            or self._streams(pics[0])  # a big result is written while computed, one by one
            or self._paints_small(pics[0])
        )  # painted at the working size, one by one
        if per_image:
            return [self(p) for p in pics]
        pics = [_as_float(p) for p in pics]
        x = torch.cat([to_tensor(p.pixels, self.meta.in_channels) for p in pics])
        sigmas = [self._sigma_for(p) for p in pics] if self.takes_noise_level else None
        y = run_model_many(
            self.model, self.meta, x, self.placement, tile=self.tile, batch_size=self.batch_size, progress=self.progress, sigma=sigmas
        )
        return [self._finish(p, to_pixels(y[i : i + 1], channels=p.pixels.shape[2])) for i, p in enumerate(pics)]

    def _finish(self, pic: Picture, out: np.ndarray) -> Picture:
        alpha = pic.alpha
        if self.task == "upscale":
            th, tw = self._out_size(pic)
            if out.shape[:2] != (th, tw):
                out = resize(out, th, tw)
            if alpha is not None:
                alpha = resize(alpha, th, tw)
        elif not self.takes_noise_level:  # a noise-level denoiser took strength into σ instead
            if self.draws_strokes:  # a photo within the working size, painted at its own size
                out = draw_strokes(out, self.strokes, pic.pixels)
            out = blend(pic.pixels, out, self.strength)
        return dataclasses.replace(pic, pixels=out, alpha=alpha)


class _TiledBands:
    """A model run tile by tile, as bands: each finished window row of output is blended over the
    photo (``strength``) or resized to ``size`` (``--outscale``) and quantised, so no full-size
    result exists (a ×4 upscale of a 20 MP photo is 3.8 GB as float). Alpha rides along band by
    band, resized for an upscale."""

    def __init__(
        self,
        pic: Picture,
        model: nn.Module,
        meta: ModelMeta,
        placement: Placement,
        tile: int | None,
        batch_size: int,
        progress: TileProgress | None,
        strength: float = 1.0,
        sigma: float | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        h, w, c = pic.pixels.shape
        self.factor = meta.scale
        self.model_size = (h * self.factor, w * self.factor)
        self.shape = (*(size or self.model_size), c)
        self.pixels, self.source_alpha, self.strength, self.sigma = pic.pixels, pic.alpha, strength, sigma
        self.model, self.meta, self.placement = model, meta, placement
        self.tile, self.batch_size, self.progress = tile, batch_size, progress

    def _alpha_rows(self, first: int, last: int) -> np.ndarray:
        if self.shape[:2] != self.model_size:
            return resize_band(self.source_alpha, self.shape[0], self.shape[1], first, last)
        if self.factor == 1:
            return unit_float(self.source_alpha[first:last])
        return resize_rows(self.source_alpha, self.factor, first, last)

    def _with_alpha(self, row: int, samples: np.ndarray, with_alpha: bool) -> Band:
        alpha = None
        if with_alpha:
            alpha = np.empty(samples.shape[:2], samples.dtype)
            quantise_into(alpha, self._alpha_rows(row, row + samples.shape[0]))
        return row, samples, alpha

    def bands(self, bits: int, with_alpha: bool) -> Iterator[Band]:
        """The result's bands, one window row of model output at a time (resized: as the rows allow)."""
        model_w, c = self.model_size[1], self.shape[2]
        resizing = self.shape[:2] != self.model_size
        dtype = np.uint16 if bits == 16 else np.uint8
        # one window row of model output, quantised; 16-bit before a resize (half the memory of
        # float32, and 1/65535 steps stay far below the final 8/16-bit quantisation)
        band = np.empty((0, model_w, c), np.uint16 if resizing else dtype)
        resizer: BandResizer | None = None
        blocks = model_blocks(
            self.model, self.meta, to_tensor(self.pixels, self.meta.in_channels), self.placement,
            tile=self.tile, batch_size=self.batch_size, progress=self.progress, sigma=self.sigma,
        )  # fmt: skip
        for row, col, block in blocks:
            rows, cols = block.shape[1], block.shape[2]
            if band.shape[0] != rows:
                band = np.empty((rows, model_w, c), band.dtype)
            out = to_pixels(block[None], channels=c)
            if self.strength < 1.0:  # stylize/denoise only: the output lines up with the photo
                out = blend(unit_float(self.pixels[row : row + rows, col : col + cols]), out, self.strength)
            _quantise(band[:, col : col + cols], out)
            if col + cols < model_w:
                continue
            if not resizing:  # the window row is done
                yield self._with_alpha(row, band, with_alpha)
                continue
            if row == 0:  # the first window row, or the run started over
                resizer = BandResizer(*self.model_size, *self.shape[:2])
            for r in range(0, rows, FEED_ROWS):  # in pieces: the resize's temporaries stay small
                for first, resized in resizer.feed(band[r : r + FEED_ROWS].astype(np.float32) / 65535):
                    samples = np.empty(resized.shape, dtype)
                    _quantise(samples, resized)
                    yield self._with_alpha(first, samples, with_alpha)


def _guided_bands(pic: Picture, up: GuidedUpsampler, strength: float, bits: int, with_alpha: bool) -> Iterator[Band]:
    """A working-size painting guided up to full size band by band (``engine.guided``), blended over
    the photo (``strength``) and quantised; alpha passes through."""
    dtype = np.uint16 if bits == 16 else np.uint8
    for r in range(0, up.shape[0], BAND_ROWS):
        try:
            samples = up.samples(pic.pixels[r : r + BAND_ROWS], r, strength, dtype)
        except ValueError:
            raise ScenestyleError(NON_FINITE) from None
        alpha = None
        if with_alpha:
            alpha = np.empty(samples.shape[:2], dtype)
            quantise_into(alpha, unit_float(pic.alpha[r : r + BAND_ROWS]))
        yield r, samples, alpha


def _quantise(dst: np.ndarray, src: np.ndarray) -> None:
    try:
        quantise_into(dst, src)
    except ValueError:
        raise ScenestyleError(NON_FINITE) from None


def _as_float(pic: Picture) -> Picture:
    """``pic`` with float32 pixels and alpha (photos read as integer samples, see ``reads_samples``)."""
    if pic.pixels.dtype.kind == "f":
        return pic
    alpha = None if pic.alpha is None else unit_float(pic.alpha)
    return dataclasses.replace(pic, pixels=unit_float(pic.pixels), alpha=alpha)

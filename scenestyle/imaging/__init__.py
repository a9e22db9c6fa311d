"""Read and write photos without losing depth, transparency, colour profile or EXIF.

``read`` decodes any still image into a ``Picture``; ``write`` encodes one atomically, whole
(``write_picture``) or band by band as its caller computes it (``band_writer``). The band encoders are ``png``, ``tiff`` and ``jpeg``
(``rows`` is their common base); ``atomic`` makes files appear whole or not at all.
"""

from scenestyle.imaging.atomic import remove_stale_temps
from scenestyle.imaging.picture import Picture, SampleBands, alpha_kind, quantise_into, sample_buffer, unit_float
from scenestyle.imaging.read import DEFAULT_MAX_PIXELS, read_picture
from scenestyle.imaging.write import OUTPUT_FORMATS, BandWriter, band_writer, output_format_for, write_picture

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "Picture",
    "SampleBands",
    "BandWriter",
    "alpha_kind",
    "band_writer",
    "output_format_for",
    "quantise_into",
    "read_picture",
    "remove_stale_temps",
    "sample_buffer",
    "unit_float",
    "write_picture",
]

"""scenestyle: turn scene photos into paintings with GANs; upscale and denoise them."""

__version__ = "0.1.0"

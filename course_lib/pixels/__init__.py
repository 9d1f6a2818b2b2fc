"""Part 1, chaining pixels and samples (notebook 01): PixelCNN on digits (``pixel_ar``) and a
WaveNet over mu-law audio (``wavenet``)."""
from course_lib.pixels.pixel_ar import GatedPixelCNN, MaskedConv2d, PixelCNN, bits_per_dim, raster_sample
from course_lib.pixels.wavenet import CausalConv1d, WaveNet, mu_law_decode, mu_law_encode

__all__ = [
    "MaskedConv2d", "PixelCNN", "GatedPixelCNN", "bits_per_dim", "raster_sample",
    "CausalConv1d", "WaveNet", "mu_law_encode", "mu_law_decode",
]

"""Part 1, chaining pixels and samples (notebook 01): PixelCNN on digits (``pixel_ar``) and a
WaveNet over mu-law audio (``wavenet``)."""

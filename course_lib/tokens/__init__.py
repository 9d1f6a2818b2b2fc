"""Part 2, tokenizers (notebooks 02-03): vector quantization and residual VQ (``vq``), FSQ / LFQ /
BSQ bitwise tokens (``bitwise``), the image, audio and video tokenizers (``tokenizers``), 1-D tokens
(``titok``) and the losses that define "similar" (``losses``)."""

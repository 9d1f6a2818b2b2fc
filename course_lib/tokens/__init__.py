"""Part 2, tokenizers (notebooks 02-03).

* ``vq``: the quantizer contract (:class:`~course_lib.tokens.vq.Quantizer` -> ``QuantOut`` with
  ``CodeStats``), VQ-VAE's vector quantizer (straight-through, commitment, EMA, k-means, restarts)
  and residual VQ;
* ``bitwise``: FSQ, LFQ and BSQ, lookup-free tokens;
* ``tokenizers``: the image, audio and video tokenizers (``forward(x) -> AEOut(recon, quant)``),
  their training (``fit``) and evaluation (``evaluate``);
* ``titok``: 1-D tokens;
* ``losses``: what "similar" means (MSE, perceptual, multi-resolution STFT, adversarial).
"""
from course_lib.tokens.vq import CodeStats, QuantOut, Quantizer, ResidualVQ, VectorQuantizer, ema_vq
from course_lib.tokens.bitwise import BSQ, FSQ, LFQ
from course_lib.tokens.tokenizers import AEOut, AudioTokenizer, ImageTokenizer, Tokenizer, VideoTokenizer
from course_lib.tokens.titok import TiTok
from course_lib.tokens.losses import PatchDiscriminator, PerceptualLoss, multi_resolution_stft_loss
from course_lib.tokens.rounding import round_to_bits

__all__ = [
    "Quantizer", "QuantOut", "CodeStats", "VectorQuantizer", "ema_vq", "ResidualVQ",
    "FSQ", "LFQ", "BSQ",
    "Tokenizer", "AEOut", "ImageTokenizer", "AudioTokenizer", "VideoTokenizer",
    "TiTok",
    "PerceptualLoss", "multi_resolution_stft_loss", "PatchDiscriminator",
    "round_to_bits",
]

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

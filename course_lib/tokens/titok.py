"""A TiTok-style 1-D tokenizer (Yu et al. 2024, "An Image is Worth 32 Tokens"), at course scale.

Encoder: a bidirectional :class:`~course_lib.nets.transformer.Transformer` over the image's p x p
patches plus K learned latent tokens; only the K latents are kept, projected to ``token_dim`` and
quantized (any quantizer, or none). Decoder: a transformer over one learned mask token per patch
position plus the K quantized latents; the patch outputs become pixels. The K latents carry no 2-D
position: they describe the image as a whole.

Simplifications: one-stage training with pixel MSE (TiTok trains stage 1 on a VQGAN's proxy codes),
no class token, a few tiny layers.

Deviation (optional, ``tail_drop=True``): one model for every token count. In training each batch
keeps only its first k ~ U{1..K} latents (the decoder never sees the others), as One-D-Piece (Miwa et
al. 2025) and FlexTok (Bachmann et al. 2025) do; ``forward(x, n_tokens=k)`` then decodes from the
first k. TiTok itself trains one model per K; at course scale one run of N steps is cheaper than
three runs of N/3, and a transformer tokenizer needs several hundred steps before it leaves the
average image.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib import checks
from course_lib.nets.transformer import Config, Transformer
from course_lib.tokens.tokenizers import AEOut, Tokenizer


class TiTok(Tokenizer):
    """1-D tokenizer over (B, C, image_size, image_size) images: ``n_tokens`` latent tokens of
    ``token_dim`` numbers each, quantized by ``quantizer`` (any
    :class:`~course_lib.tokens.vq.Quantizer`, or None for continuous tokens)."""

    def __init__(self, image_size: int = 16, patch: int = 4, channels: int = 3, n_tokens: int = 8,
                 token_dim: int = 8, d_model: int = 64, n_layer: int = 2, n_head: int = 4,
                 quantizer: nn.Module | None = None, tail_drop: bool = False):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by patch {patch}")
        self.image_size, self.patch, self.channels, self.n_tokens = image_size, patch, channels, n_tokens
        self.n_patches = (image_size // patch) ** 2
        pdim = channels * patch * patch
        cfg = Config(d_model=d_model, n_layer=n_layer, n_head=n_head)
        # TiTok's init (1d-tokenizer blocks.py): positions, latents and mask token ~ N(0, d^-1/2).
        # Why it matters: with GPT's 0.02 every patch query of the decoder starts almost identical,
        # and the model sits for hundreds of steps at the average image.
        scale = d_model ** -0.5
        self.patch_in = nn.Linear(pdim, d_model)
        self.pos_enc = nn.Parameter(scale * torch.randn(1, self.n_patches, d_model))
        self.latents = nn.Parameter(scale * torch.randn(1, n_tokens, d_model))
        self.enc = Transformer(cfg)
        self.to_token = nn.Linear(d_model, token_dim)
        self.from_token = nn.Linear(token_dim, d_model)
        self.mask_token = nn.Parameter(scale * torch.randn(1, 1, d_model))
        self.pos_dec = nn.Parameter(scale * torch.randn(1, self.n_patches, d_model))
        self.lat_pos_dec = nn.Parameter(scale * torch.randn(1, n_tokens, d_model))
        self.dec = Transformer(cfg)
        self.patch_out = nn.Linear(d_model, pdim)
        self.quantizer, self.tail_drop = quantizer, tail_drop

    def _patchify(self, x):
        B, C, H, W = x.shape                                                        # (B, C, H, W)
        p = self.patch
        x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)       # (B, h, w, C, p, p)
        return x.reshape(B, (H // p) * (W // p), C * p * p)                         # (B, N, C p p)

    def _unpatchify(self, t):
        B, p, s = t.shape[0], self.patch, self.image_size // self.patch
        t = t.reshape(B, s, s, self.channels, p, p).permute(0, 3, 1, 4, 2, 5)       # (B, C, h, p, w, p)
        return t.reshape(B, self.channels, s * p, s * p)                            # (B, C, H, W)

    def _check(self, x):
        checks.tensor(x, "x", floating=True, shape=f"(B, {self.channels}, {self.image_size}, {self.image_size})")
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"expected images (B, {self.channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> the K continuous latent tokens (B, K, token_dim)."""
        self._check(x)
        checks.same_place(self, x, "x")
        B = x.shape[0]
        h = torch.cat([self.patch_in(self._patchify(x)) + self.pos_enc,
                       self.latents.expand(B, -1, -1)], 1)                           # (B, N + K, d)
        return self.to_token(self.enc(h, mask=None)[:, self.n_patches:])            # (B, K, token_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The first k tokens (B, k, token_dim), k <= K -> images (B, C, H, W): one mask token per
        patch position plus the k latents through the decoder transformer."""
        B, k = z.shape[:2]
        g = torch.cat([self.mask_token.expand(B, self.n_patches, -1) + self.pos_dec,
                       self.from_token(z) + self.lat_pos_dec[:, :k]], 1)             # (B, N + k, d)
        return self._unpatchify(self.patch_out(self.dec(g, mask=None)[:, :self.n_patches]))  # (B, N, C p p) in

    def forward(self, x: torch.Tensor, n_tokens: int | None = None) -> AEOut:
        """x: (B, C, H, W). n_tokens: decode from the first n_tokens latents only (default all;
        with tail_drop, in training, a random k ~ U{1..K} per batch). The quantizer sees all K
        latents (its QuantOut covers them all); the decoder sees the first k."""
        self._check(x)
        if n_tokens is not None and not 1 <= n_tokens <= self.n_tokens:
            raise ValueError(f"n_tokens must be in 1..{self.n_tokens}, got {n_tokens}")
        k = n_tokens or self.n_tokens
        if self.training and self.tail_drop and n_tokens is None:
            k = int(torch.randint(1, self.n_tokens + 1, ()))
        z = self.encode(x)                                                          # (B, K, token_dim)
        q = None if self.quantizer is None else self.quantizer(z)
        return AEOut(self.decode((z if q is None else q.z_q)[:, :k]), q)           # decode (B, k, token_dim)

    @property
    def last_layer(self):
        return self.patch_out.weight

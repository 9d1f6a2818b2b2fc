"""Next-scale prediction with a flow at every scale: FlowAR at the scale of the 16x16 shapes (notebook 11, project D).

FlowAR (Ren, Yu, He, Shen, Yuille, Chen 2024, "FlowAR: Scale-wise Autoregressive Image Generation
Meets Flow Matching", arXiv 2412.15205; official code OliverRensu/FlowAR, ``models/flowar.py``,
``models/flowloss.py``, ``models/sampler.py``; read in a fork's snapshot, wangqiang9/FlowAR at c02e06d,
whose history starts from the official repository) keeps VAR's coarse-to-fine order (notebook 06,
:mod:`course_lib.orders.var`) and drops its multi-scale residual VQ tokenizer. The scales simply
double, (1, 2, 4, 8, 16), and the map of scale k is the whole (continuous) image, or VAE latent,
area-downsampled to that side: no residual, no codebook (``FlowAR.forward``: ``F.interpolate(imgs,
(i, i), mode='area')``, the last scale the image itself). A block-causal transformer reads the class
token and, for scale k >= 1, the map of scale k - 1 brought to scale k's size (**bicubic up to the
full size, then area down to scale k**: ``F.interpolate(F.interpolate(x_{k-1}, (H, W),
mode='bicubic'), (s_k, s_k), mode='area')``); its output at scale k conditions a small flow-matching
network (``SimpleTransformerAdaLN``, with the paper's Spatial-adaLN) that turns noise into the scale-k
map, instead of VAR's softmax over codes. Sampling runs the scales in order: the flow's sample of
scale k, brought to scale k + 1 the same way, is the transformer's next input.

Time convention: FlowAR's ``SILoss`` (linear path) writes x_t = (1 - t) x + t eps with target
v = eps - x and samples from t = 1 to 0 (noise at t = 1, as SD3). In the course's convention (t = 0
noise, t = 1 data; :mod:`course_lib.flow.path`) the same path and velocity read

    x_t = (1 - t) eps + t x_k,      v = x_k - eps,      t ~ U(0, 1) one per sample,

sampled from t = 0 to 1 (their t is 1 - ours, their v is minus ours). :func:`flowar_scale_pair` is
the training pair of one scale, the learner's exercise.

What the course simplifies: no transformer. Each scale has its own small velocity network that
reads the noisy map x_t, the condition map (the previous scale brought to this size) and, through
FiLM (a scale and a shift per channel), the prompt (four attribute embeddings, as
:mod:`course_lib.orders.prompt`) and the time: an MLP on the flattened maps up to side 4
(:class:`CoarseNet`), a small residual conv net on patches above (:class:`ScaleNet`). So scale k
sees only scale k - 1, not every earlier scale (a Markov chain over scales rather than FlowAR's
block-causal attention), and the flow network is not shared across scales; pixels in [-1, 1] instead of
KL-16 VAE latents; uniform Euler steps per scale (FlowAR: 25 steps on a two-piece grid, CFG ramped
over the scales) and classifier-free guidance with a fixed scale; the per-scale losses are averaged
(FlowAR weights them by area; with one network per scale and Adam this only rescales each net's
gradient).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, data, evaluator, runtime, train
from course_lib.nets.mlp import FourierTime
from course_lib.orders.prompt import PromptEmbedding, check_prompts, drop_prompts, null_prompts
from course_lib.orders.var import area_down, check_scales

SCALES = (1, 2, 4, 8, 16)          # FlowAR's doubling scales, up to the 16x16 shapes


# ----------------------------------------------------------------------------- the pyramid

def next_input(prev: torch.Tensor, side: int, full: int) -> torch.Tensor:
    """FlowAR's input for the next scale: ``prev`` (N, C, p, p) bicubic-upsampled to the full size
    (full, full), then area-downsampled to (side, side). Returns (N, C, side, side)."""
    checks.tensor(prev, "prev", ndim=4, floating=True, shape="(N, C, p, p)")
    full, side = checks.positive_int(full, "full"), checks.positive_int(side, "side")
    if full % side or prev.shape[-1] > full:
        raise ValueError(f"side: expected a divisor of full = {full} (the area pooling of FlowAR's pyramid), "
                         f"and prev no larger than {full}; got side {side}, prev {tuple(prev.shape)}")
    up = prev if prev.shape[-1] == full else F.interpolate(prev, size=(full, full), mode="bicubic")
    return area_down(up, side)


def _check_pair_inputs(x, scales, k, t, noise) -> tuple:
    checks.tensor(x, "x", ndim=4, floating=True, shape="(N, C, H, H)")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x: expected square images (N, C, H, H), got {tuple(x.shape)}")
    scales = check_scales(scales)
    if scales[-1] > x.shape[-1]:
        raise ValueError(f"scales: the largest scale {scales[-1]} is larger than the images ({x.shape[-1]})")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(scales):
        raise ValueError(f"k: expected a scale index in 0..{len(scales) - 1}, got {k!r}")
    N, C, s = x.shape[0], x.shape[1], scales[k]
    checks.tensor(t, "t", ndim=1, floating=True, shape=f"({N},)")
    if t.shape != (N,):
        raise ValueError(f"t: expected shape ({N},), one time per image, got {tuple(t.shape)}")
    checks.tensor(noise, "noise", ndim=4, floating=True, shape=f"({N}, {C}, {s}, {s})")
    if tuple(noise.shape) != (N, C, s, s):
        raise ValueError(f"noise: expected shape ({N}, {C}, {s}, {s}) (scale {k}'s map), got {tuple(noise.shape)}")
    return scales


def flowar_scale_pair(x: torch.Tensor, scales, k: int, t: torch.Tensor, noise: torch.Tensor):
    """The training pair of scale k (FlowAR ``FlowAR.forward`` + ``SILoss``, in the course's convention).

    x (N, C, H, H) images; scales, e.g. (1, 2, 4, 8, 16); k the scale's index; t (N,) in [0, 1];
    noise (N, C, s, s) with s = scales[k]. With x_k = area-downsample(x, s) (x itself when s = H):

        x_t = (1 - t) noise + t x_k,     v = x_k - noise,
        cond = area-downsample(bicubic-upsample(x_{k-1}, H), s)   (k >= 1; zeros for k = 0)

    Returns (x_t, v, cond), each (N, C, s, s).
    """
    scales = _check_pair_inputs(x, scales, k, t, noise)
    s, H = scales[k], x.shape[-1]
    x_k = area_down(x, s)                                                       # (N, C, s, s)
    if k == 0:
        cond = torch.zeros_like(x_k)                                            # nothing before scale 0
    else:
        cond = next_input(area_down(x, scales[k - 1]), s, H)                    # (N, C, s, s)
    tt = t.to(x.dtype)[:, None, None, None]                                     # (N, 1, 1, 1)
    return (1 - tt) * noise + tt * x_k, x_k - noise, cond


# ----------------------------------------------------------------------------- the networks

class _Embed(nn.Module):
    """The prompt (summed attribute embeddings, :class:`~course_lib.orders.prompt.PromptEmbedding`) and
    Fourier features of t, as one vector (N, embed)."""

    def __init__(self, embed: int):
        super().__init__()
        self.prompt = PromptEmbedding(embed)
        self.time = FourierTime(32, max_freq=100.0)
        self.mix = nn.Sequential(nn.Linear(embed + 32, embed), nn.SiLU())

    def forward(self, t, prompts, dtype):
        return self.mix(torch.cat([self.prompt(prompts).sum(1).to(dtype), self.time(t.to(dtype))], 1))


class CoarseNet(nn.Module):
    """v(x_t, t | cond, prompt) at a small scale (side <= 4): an MLP on the flattened x_t and cond
    maps, FiLM-modulated (Perez et al. 2018) by the prompt and time embedding; the layout of the
    whole map is decided here, which an MLP sees at once. The last layer starts at zero."""

    def __init__(self, channels: int, side: int, width: int = 128, embed: int = 64):
        super().__init__()
        self.embed = _Embed(embed)
        n = channels * side * side
        self.inp = nn.Linear(2 * n, width)
        self.hid = nn.Linear(width, width)
        self.film = nn.Linear(embed, 4 * width)
        self.out = nn.Linear(width, n)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t, t, cond, prompts):
        N = x_t.shape[0]
        g1, b1, g2, b2 = self.film(self.embed(t, prompts, x_t.dtype)).chunk(4, 1)   # (N, W) each
        h = F.silu(self.inp(torch.cat([x_t.flatten(1), cond.flatten(1)], 1)) * (1 + g1) + b1)   # (N, W)
        h = F.silu(self.hid(h) * (1 + g2) + b2)
        return self.out(h).view_as(x_t)                                          # (N, C, s, s)


class ScaleNet(nn.Module):
    """v(x_t, t | cond, prompt) at a larger scale of side s: x_t and the condition map (N, C, s, s) are
    cut into patches of ``patch`` x ``patch`` pixels (space-to-depth, so that the largest grid is 8x8
    and a step stays cheap on a CPU), joined with two coordinate channels and sent through ``depth``
    residual 3x3 convolutions of ``width`` channels, each FiLM-modulated (a scale and a shift per
    channel) by the prompt and time embedding. The last convolution starts at zero (v = 0 before
    training)."""

    def __init__(self, channels: int = 3, width: int = 32, depth: int = 3, embed: int = 64, patch: int = 1):
        super().__init__()
        self.patch = checks.positive_int(patch, "patch")
        c = channels * patch * patch                                            # channels of a patch
        self.embed = _Embed(embed)
        self.inp = nn.Conv2d(2 * c + 2, width, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.film = nn.Linear(embed, 2 * width * (depth + 1))
        self.out = nn.Conv2d(width, c, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t, t, cond, prompts):
        N, p = x_t.shape[0], self.patch
        x_t, cond = F.pixel_unshuffle(x_t, p), F.pixel_unshuffle(cond, p)       # (N, C p^2, s/p, s/p)
        g = x_t.shape[-1]
        grid = torch.linspace(-1, 1, g, device=x_t.device, dtype=x_t.dtype)
        yy, xx = torch.meshgrid(grid, grid, indexing="ij")                     # (g, g) each
        coords = torch.stack([yy, xx]).expand(N, 2, g, g)                       # (N, 2, g, g)
        film = self.film(self.embed(t, prompts, x_t.dtype))[:, :, None, None]  # (N, 2 W (depth + 1), 1, 1)
        film = film.chunk(2 * (len(self.convs) + 1), 1)                         # scale, shift per layer
        h = self.inp(torch.cat([x_t, cond, coords], 1)) * (1 + film[0]) + film[1]   # (N, W, g, g)
        for i, conv in enumerate(self.convs):
            h = h + conv(F.silu(h)) * (1 + film[2 * i + 2]) + film[2 * i + 3]
        return F.pixel_shuffle(self.out(F.silu(h)), p)                          # (N, C, s, s)


@dataclass(frozen=True)
class Config:
    """Size of a :class:`FlowAR`."""
    scales: tuple = SCALES   # sides of the scales, the last one the image's
    channels: int = 3        # image channels
    width: int = 32          # channels of each scale's conv net
    depth: int = 3           # its residual conv layers


class FlowAR(nn.Module):
    """One network per scale (:class:`CoarseNet` up to side 4, :class:`ScaleNet` above); :func:`loss` trains them all, :func:`generate` samples coarse to fine."""

    def __init__(self, config: Config = Config()):
        super().__init__()
        self.config = config
        self.scales = check_scales(config.scales)
        self.nets = nn.ModuleList(
            CoarseNet(config.channels, s, 4 * config.width) if s <= 4
            else ScaleNet(config.channels, config.width, config.depth, patch=max(1, s // 8)) for s in self.scales)


def to_model(images: torch.Tensor) -> torch.Tensor:
    """Shapes images (N, 3, 16, 16) in [0, 1] -> the model's pixels in [-1, 1]."""
    return evaluator.check_images(images, "images") * 2 - 1


def to_images(x: torch.Tensor) -> torch.Tensor:
    """The model's pixels -> images in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def loss(model: FlowAR, images: torch.Tensor, prompts: torch.Tensor, pair: Callable = flowar_scale_pair, *,
         p_null: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flow matching at every scale, averaged over the scales: mean over k of
    || v_k(x_t, t | cond, prompt) - v ||^2 with (x_t, v, cond) = ``pair(x, scales, k, t, noise)``,
    t ~ U(0, 1) per image, prompts dropped to the null prompt with probability ``p_null`` (for
    guidance). images (N, C, H, H) in [0, 1], prompts (N, 4). A 0-d tensor."""
    x = to_model(images)
    prompts = drop_prompts(prompts, p_null, generator)
    N, C = x.shape[:2]
    total = x.new_zeros(())
    for k, (s, net) in enumerate(zip(model.scales, model.nets)):
        t = torch.rand(N, generator=generator).to(x.device, x.dtype)            # (N,)
        noise = torch.randn(N, C, s, s, generator=generator).to(x.device, x.dtype)
        x_t, v, cond = pair(x, model.scales, k, t, noise)                       # (N, C, s, s) each
        total = total + (net(x_t, t, cond, prompts) - v).pow(2).mean()
    return total / len(model.scales)


@torch.no_grad()
def generate(model: FlowAR, prompts: torch.Tensor, *, steps: int = 8, cfg_scale: float = 1.0,
             seed: int = 0, every_scale: bool = False):
    """Images (N, C, H, H) in [0, 1] for ``prompts`` (N, 4): scale by scale, ``steps`` Euler steps
    from seeded noise at t = 0 to the scale's map at t = 1, conditioned on the previous scale's
    sample brought to this size (:func:`next_input`); guidance v_u + w (v_c - v_u) with w =
    ``cfg_scale`` (1: none, one pass per step). ``len(scales) * steps`` sequential steps. With
    ``every_scale`` it returns the list of every scale's sample in [0, 1], (N, C, s, s) each."""
    prompts = check_prompts(prompts)
    steps = checks.positive_int(steps, "steps")
    w = checks.number(cfg_scale, "cfg_scale")
    g = torch.Generator().manual_seed(seed)
    N, C, full = prompts.shape[0], model.config.channels, model.scales[-1]
    dev = next(model.parameters()).device
    prompts = prompts.to(dev)
    null = null_prompts(N, dev)
    prev, maps = None, []
    with runtime.evaluating(model):
        for k, (s, net) in enumerate(zip(model.scales, model.nets)):
            cond = torch.zeros(N, C, s, s, device=dev) if prev is None else next_input(prev, s, full)
            x = torch.randn(N, C, s, s, generator=g).to(dev)                    # t = 0: noise
            for i in range(steps):
                t = torch.full((N,), i / steps, device=dev)
                v = net(x, t, cond, prompts)
                if w != 1.0:
                    v_u = net(x, t, cond, null)
                    v = v_u + w * (v - v_u)
                x = x + v / steps
            prev = x                                                            # (N, C, s, s)
            maps.append(to_images(x))
    return maps if every_scale else maps[-1]


# ----------------------------------------------------------------------------- the starter demo

@dataclass(frozen=True)
class Budget:
    """Project D's budget in one mode."""
    mode: str               # the course mode this budget is for
    width: int              # channels of each scale's conv net
    depth: int              # its residual layers
    steps: int              # training steps
    batch: int              # images per step
    lr: float               # AdamW's peak learning rate (cosine decay)
    n_train: int            # training images (fresh shapes, drawn once)
    euler: int              # Euler steps per scale when sampling
    cfg: float              # guidance scale when sampling
    n_eval: int             # images scored by the evaluator


BUDGETS = {
    "quick": Budget("quick", width=32, depth=3, steps=200, batch=64, lr=2e-3, n_train=4096, euler=8, cfg=2.0,
                    n_eval=256),
    # lecture: trained once for the shipped weights (the notebook loads them). Prompt accuracy at 512 held-out
    # prompts: width 32, 1000 steps 0.27 (cfg 2; 96 s on a busy 2-core machine); width 48, 3000 steps 0.62 / 0.66 /
    # 0.63 / 0.58 at cfg 1 / 1.5 / 2 / 3 (195 s); width 32, 3000 steps 0.42 (cfg 2, 256 prompts)
    "lecture": Budget("lecture", width=48, depth=3, steps=3000, batch=96, lr=2e-3, n_train=16384, euler=8,
                      cfg=1.5, n_eval=512),
    "full": Budget("full", width=128, depth=4, steps=20000, batch=256, lr=1e-3, n_train=65536, euler=16, cfg=2.0,
                   n_eval=2048),
}


def budget(mode: str | None = None) -> Budget:
    """Project D's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def build(B: Budget, *, seed: int = 0) -> FlowAR:
    """Seed and build the :class:`FlowAR` of budget ``B`` on the course's device."""
    runtime.seed_everything(seed)
    return FlowAR(Config(width=B.width, depth=B.depth)).to(runtime.device())


def fit_shapes(model: FlowAR, B: Budget, pair: Callable = flowar_scale_pair, *, seed: int = 0,
               progress: bool = True):
    """Train ``model`` ``B.steps`` steps on ``B.n_train`` prompted 16x16 shapes (drawn once, seed
    ``seed + 1``) with :func:`loss` and ``pair`` (the learner's :func:`flowar_scale_pair`). Returns the History."""
    shapes = data.shapes(B.n_train, size=16, seed=seed + 1)

    def step_loss(i):
        g = torch.Generator().manual_seed(i)
        idx = torch.randint(0, B.n_train, (B.batch,), generator=g).to(shapes.images.device)
        return loss(model, shapes.images[idx], shapes.prompts[idx], pair, generator=g)
    return train.train(model, step_loss, B.steps, lr=B.lr, schedule="cosine", progress=progress, desc="FlowAR")


def train_shapes(B: Budget, pair: Callable = flowar_scale_pair, *, seed: int = 0, progress: bool = True):
    """:func:`build` then :func:`fit_shapes`. Not cached (notebook 11 goes through
    :func:`course_lib.recipes.capstone_projects.trained_flowar`, which is). Returns (model, History)."""
    model = build(B, seed=seed)
    return model, fit_shapes(model, B, pair, seed=seed, progress=progress)


def evaluate(model: FlowAR, B: Budget, seed: int = 0) -> dict:
    """Prompt accuracy of ``B.n_eval`` images generated for held-out prompts (:mod:`course_lib.evaluator`),
    with and without guidance, and the images."""
    ref = evaluator.reference(B.n_eval, seed)
    guided = generate(model, ref.prompts, steps=B.euler, cfg_scale=B.cfg, seed=seed)
    plain = generate(model, ref.prompts, steps=B.euler, cfg_scale=1.0, seed=seed)
    return dict(accuracy=evaluator.prompt_accuracy(guided, ref.prompts),
                accuracy_unguided=evaluator.prompt_accuracy(plain, ref.prompts),
                images=guided, prompts=ref.prompts)

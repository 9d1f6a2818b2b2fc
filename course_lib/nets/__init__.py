"""Shared building blocks: a time-conditioned MLP (``mlp``), a small transformer with causal,
bidirectional and block-causal masks (``transformer``), and sampling from logits with temperature
and top-k (``sampling``), which PixelCNN, WaveNet and the token models share."""
from course_lib.nets.mlp import FourierTime, MLPConfig, VelocityMLP, count_parameters  # noqa: F401
from course_lib.nets.sampling import sample_logits, top_k_filter  # noqa: F401

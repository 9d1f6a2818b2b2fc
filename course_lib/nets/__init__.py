"""Shared building blocks: a time-conditioned MLP (``mlp``) and a small transformer with causal,
bidirectional and block-causal masks (``transformer``)."""
from course_lib.nets.mlp import FourierTime, MLPConfig, VelocityMLP, count_parameters  # noqa: F401

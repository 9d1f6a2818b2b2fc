"""Benchmark of notebook 07: the limit of tokens and the MSE trap.

``python -m course_lib.bench limits --json [--mode lecture]`` prints:

* ``compression``: per tokenizer row of :func:`course_lib.recipes.limit_of_tokens.compare_compression`
  (the VQ tokenizer, the continuous one rounded to 1..6 bits per number, unrounded) its ``bits``
  per image, ``psnr``, ``prompt_accuracy`` and ``frechet``; ``compression_frechet_floor``;
* ``latents``: the continuous tokenizer alone (``LATENT_DIM``, reconstruction PSNR, prompt
  accuracy and Fréchet distance of its reconstructions);
* ``mse_trap``: :func:`~course_lib.recipes.limit_of_tokens.mse_trap` as numbers, flattened to
  ``<condition>_<model>_<figure>`` (conditions ``prompt`` and ``null``; models ``discrete_ce``,
  ``continuous_mse``, ``continuous_gaussian``, and ``real``, ``vq``, ``latents`` for real images);
* ``bars.trap_mse_clean_le_0.5x_ce``: the issue's bar, with no prompt the MSE model's share of clean
  shapes far below the cross-entropy model's (value ``null_continuous_mse_clean``, limit
  0.5 x ``null_discrete_ce_clean``).
"""
from __future__ import annotations

from course_lib import runtime
from course_lib.bench import at_most
from course_lib.recipes import limit_of_tokens as recipe
from course_lib.recipes import shape_latents


def run(args: list[str]) -> dict:
    if args:
        raise SystemExit(f"python -m course_lib.bench limits takes no arguments, got {args}")
    mode = runtime.mode()
    res: dict = {}
    comp = recipe.compare_compression(mode)
    res["compression"] = {r["name"]: {k: r[k] for k in ("bits", "psnr", "prompt_accuracy", "frechet")}
                          for r in comp["rows"]}
    res["compression_frechet_floor"] = comp["frechet_floor"]
    cont = next(r for r in comp["rows"] if r["kind"] == "continuous")
    res["latents"] = dict(latent_dim=shape_latents.LATENT_DIM, psnr=cont["psnr"],
                          prompt_accuracy=cont["prompt_accuracy"], frechet=cont["frechet"])
    trap = recipe.trap_figures(recipe.mse_trap(mode))
    res["mse_trap"] = trap
    ce, mse = trap["null_discrete_ce_clean"], trap["null_continuous_mse_clean"]
    res["bars"] = {"trap_mse_clean_le_0.5x_ce": at_most(mse, 0.5 * ce)}
    return res

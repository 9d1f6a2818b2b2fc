"""Part 3, orders of generation over tokens (notebooks 04-06).

An image is a grid of tokens (:mod:`course_lib.tokens`); in which order are they generated?

* :mod:`~course_lib.orders.prompt`: the prompt as condition tokens, null-prompt dropout and
  classifier-free guidance on logits, shared by every model of this part;
* :mod:`~course_lib.orders.gpt`: one token at a time in raster order, as text (notebook 04);
* ``maskgit``: many tokens at once, the most confident first (notebook 05);
* ``var`` and ``infinity``: coarse to fine, one whole scale per step, and Infinity's bits (notebook 06);
* ``discrete_flow`` (discrete flow matching with a mask source) and ``flowar`` (next-scale prediction
  with a flow at every scale): notebook 11's open projects B and D.

One calling convention for every model here and every head of :mod:`course_lib.heads`
(:mod:`~course_lib.orders.prompt` says it in full): ``model(x, prompts)``, a loss with the data
before the prompts, and ``generate(model, [parts,] prompts, *, cfg_scale=, temperature=,
generator=[, steps=])`` with keyword-only sampling arguments, ``cfg_scale = 1`` the plain
conditional model.
"""
from course_lib.orders.prompt import (PromptEmbedding, PromptedCausal, cfg_logits, check_prompts, drop_prompts,
                                     null_prompts, with_null)
from course_lib.orders.gpt import GPTConfig, TokenGPT
from course_lib.orders.continuous import ContinuousAR, ContinuousConfig
from course_lib.orders.maskgit import Decoded, MaskGIT, MaskGITConfig
from course_lib.orders.var import VAR, MultiScaleVQ
from course_lib.orders.infinity import Infinity, MultiScaleBSQ, self_correct

__all__ = [
    "PromptEmbedding", "PromptedCausal", "check_prompts", "null_prompts", "drop_prompts", "cfg_logits", "with_null",
    "GPTConfig", "TokenGPT",
    "ContinuousConfig", "ContinuousAR",
    "MaskGITConfig", "MaskGIT", "Decoded",
    "MultiScaleVQ", "VAR",
    "MultiScaleBSQ", "Infinity", "self_correct",
]

"""Part 3, orders of generation over tokens (notebooks 04-06).

An image is a grid of tokens (:mod:`course_lib.tokens`); in which order are they generated?

* :mod:`~course_lib.orders.prompt`: the prompt as condition tokens, null-prompt dropout and
  classifier-free guidance on logits, shared by every model of this part;
* :mod:`~course_lib.orders.gpt`: one token at a time in raster order, as text (notebook 04);
* ``maskgit``: many tokens at once, the most confident first (notebook 05);
* ``var`` and ``infinity``: coarse to fine, one whole scale per step, and Infinity's bits (notebook 06).
"""

"""One recipe per notebook: its budgets per mode and the experiments it runs (build, train,
evaluate). The notebook calls them to show the results and ``course_lib.bench`` calls the same
functions to measure them, so a benchmark figure is the figure the notebook shows.

A recipe's budget is a frozen dataclass ``Budget`` (each field commented, parts nested: ``B.latent.hidden``),
one instance per mode in ``BUDGETS``, read with ``budget(mode)``; where a recipe trains a model that
others share, the budget is the model's cache key (:func:`course_lib.train.cached`). ``shapes_task``
holds what the two shared tokenizers of the prompted shapes and the transformers over their tokens
have in common (the budgets' shared fields, the training images, the cached tokenizer).

| notebook | recipe |
| --- | --- |
| 00 welcome | ``welcome`` |
| 01 pixels and samples | ``pixels_and_samples`` |
| 02 tokens | ``tokens`` |
| 03 residual and bitwise tokens | ``residual_and_bitwise_tokens`` |
| 04 chaining tokens | ``shape_tokens`` (the shared VQ tokenizer), ``chaining_tokens`` |
| 05 MaskGIT | ``maskgit`` |
| 06 next-scale prediction | ``next_scale`` |
| 07 the limit of tokens | ``shape_latents`` (the shared continuous tokenizer), ``limit_of_tokens`` |
| 08 flow matching in 2-D | ``flow_matching_2d``, ``flow_matching_2d_quality`` (SWD and grid TV to the data, their floors) |
| 09 generation heads | ``generation_heads`` |
| 10 MeanFlow | ``meanflow``, ``meanflow_toy`` (the exactly solvable flow), ``meanflow_routes`` (one step: the control, α-Flow) |
| 11 capstone | ``capstone`` (every generator on one frontier), ``capstone_figures`` (its chart, table and reading), ``audio_tokens`` (codec tokens chained against continuous latents with a head), ``capstone_projects`` (the open projects' demo models); the one-step head's pairs are ``generation_heads``' |
"""

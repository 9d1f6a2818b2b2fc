"""One recipe per notebook: its budgets per mode and the experiments it runs (build, train,
evaluate). The notebook calls them to show the results and ``course_lib.bench`` calls the same
functions to measure them, so a benchmark figure is the figure the notebook shows.

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
| 08 flow matching in 2-D | ``flow_matching_2d`` |
| 09 generation heads | ``generation_heads`` |
| 10 MeanFlow | ``meanflow``, ``meanflow_toy`` (the exactly solvable flow), ``meanflow_routes`` (one step: the control, α-Flow) |
"""

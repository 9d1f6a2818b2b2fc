"""course_lib: the library of the Two World Lines course, in the shape of its syllabus.

Notebooks teach, the library keeps: a notebook shows the code a learner must understand and imports
the rest from here; a later notebook imports what an earlier one built. Imports run only downward:
the ground floor knows no topic, a part uses the ground floor and earlier parts, the recipes use the
parts, and the benchmarks use the recipes.

Ground floor (every notebook)
    runtime   device (cuda, mps, cpu), the mode switch quick / lecture / full, seeding, autocast
    checks    argument validation: errors that name the argument, what was expected, what came
    data      2-D toys, digits, captioned shapes, moving shapes, synthetic audio, two photos
    train     the one training loop (progress bar, history, EMA, AMP on a GPU, schedules)
    cache     trained models: shipped weights, then the disk cache, keyed by a recipe's budget (``train.cached``)
    record    what a training run returned (loss curve, figures), kept with the weights
    weights   the shipped weights (data/weights/): safetensors, a checksummed manifest, float16
    distributed  torchrun: ranks, data shards, gradients averaged over processes
    metrics   sliced Wasserstein, MMD, PSNR / SNR, codebook usage and perplexity
    viz       image and reconstruction grids, 2-D fields and paths, explorers, audio players

Building blocks
    nets/     mlp (time-conditioned velocity MLP), transformer (causal / bidirectional / block
              masks), sampling (temperature and top-k from logits, for every chaining model)

Part 1, chaining pixels and samples (notebook 01)
    pixels/   pixel_ar (masked convolutions, PixelCNN, raster sampling), wavenet (mu-law, WaveNet)

Part 2, tokens (notebooks 02, 03, 07)
    tokens/   vq (VQ, EMA, restarts, residual VQ), bitwise (FSQ, LFQ, BSQ), tokenizers (image,
              audio, video), titok (1-D tokens), losses (what "similar" means), rounding (scalar
              rounding of continuous tokens)

Part 3, orders of generation over tokens (notebooks 04-07)
    orders/   prompt (condition tokens, null prompt), gpt (raster order, KV cache), maskgit,
              var (next scale), infinity (bits, self-correction), continuous (an autoregressive
              transformer over continuous tokens, MSE and Gaussian heads)

The other world line, flowing from noise (notebooks 00, 08, 10)
    flow/     paths and the flow-matching loss, ODE solvers, guidance, reflow, minibatch OT,
              meanflow (average velocity, the JVP target, one-step sampling)

Where the world lines meet (notebook 09)
    heads/    generation heads on continuous tokens: MSE, flow matching (MAR / NextStep-1), energy
              score (SLED), and the raster / masked-order backbones that feed them

The course as a course
    course/   homework (checks with feedback and fallback), exercises (the registry), checking,
              assignments (student build, sync, grading), runner (headless execution)
    recipes/  one module per notebook: its budgets per mode and the experiments it runs
    bench/    ``python -m course_lib.bench NAME --json``: runs a notebook's recipe and measures it

The evaluator of the prompted-shapes task (``evaluator``, ground floor) scores notebooks 04-07, 09 and 10.
"""
__version__ = "0.1.0"

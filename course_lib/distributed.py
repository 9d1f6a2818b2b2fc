"""Data-parallel training over several processes, started by torchrun (PyTorch's launcher)::

    torchrun --nproc_per_node=4 -m course_lib.pretrain --mode full token-gpt

Each process (a *rank*) holds a full copy of the model. :func:`course_lib.train.train` starts by
broadcasting rank 0's weights, and after every backward pass averages the gradients over the ranks
(:func:`average_gradients`: one all-reduce of all gradients, then a division by the world size, what
``DistributedDataParallel``'s reducer does), so every rank takes the same optimizer step and all
ranks end with identical weights. The gradients are averaged explicitly, after ``backward()``, rather
than by wrapping the model in ``DistributedDataParallel``: a course ``loss_fn(step)`` calls the bare
model it closes over (the wrapper's forward would never run), and MeanFlow's target takes a
``torch.func.jvp`` through the network, which DDP's gradient hooks do not see. One explicit
all-reduce covers every path.

The data: a recipe draws its global batch of the budget's size from its seeded stream, as in a single
process, and keeps its rank's share with :func:`shard` (rows ``rank::world``); the per-rank losses are
means over equal shares, so their average is the global batch's mean and the step is the single
process's step, up to the order of float additions. Per-row randomness (noise, times, dropped
prompts) is drawn for the global batch too and sharded the same way; drawn per shard from one seeded
generator, every rank would reuse the same draws for different rows. A recipe that does not shard
trains every rank on the same global batch: the same result as one process, bit for bit (the mean of
equal gradients is exact), without the speed-up. Only rank 0 writes files
(:func:`is_main`). Without torchrun (no ``WORLD_SIZE`` in the environment) world size is 1 and every
function here is a no-op: one process is the same code.

The backend: ``nccl`` on CUDA (each rank on GPU ``LOCAL_RANK``), ``gloo`` on the CPU.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init() -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...) once;
    returns whether this process trains with others. Without torchrun: False, nothing happens."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    # torch's compiler stack (torch._dynamo, which an optimizer's step() imports on first use) keeps a
    # process group created before its import alive past destroy_process_group: the group's gloo worker
    # threads then outlive the interpreter and abort the rank at exit ("terminate called without an
    # active exception", SIGABRT, now and then on a busy CPU). Imported first, it holds no group.
    try:
        import torch._dynamo  # noqa: F401
    except (ImportError, RuntimeError):          # a build or Python without the compiler: nothing to hold it
        pass
    cuda = torch.cuda.is_available() and os.environ.get("COURSE_DEVICE", "").strip() != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))   # "cuda" means this rank's GPU
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_world_size() > 1


def close() -> None:
    """Wait for every rank, then end the process group: its worker threads stop here, while Python is
    still alive (a gloo thread that outlives the interpreter aborts the rank at exit: "terminate called
    without an active exception"; see :func:`init`). Nothing in one process."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one of several ranks of a started process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that writes files and prints."""
    return rank() == 0


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's share of a global batch (rows ``rank::world``); the whole batch in one process.
    The global batch's size must be a multiple of the world size (equal shares keep the mean)."""
    n = world()
    if n == 1:
        return batch
    if len(batch) % n:
        raise ValueError(f"batch: a global batch of {len(batch)} rows cannot be split evenly over {n} "
                         f"processes: use a batch that is a multiple of {n}, or --nproc_per_node dividing it")
    return batch[rank()::n]


def broadcast_module(model: torch.nn.Module, parameters: bool = True) -> None:
    """Copy rank 0's buffers, and its parameters unless ``parameters=False``, to every rank: the same
    start everywhere, and before each step the same buffers (a VQ codebook's moving averages, batch
    norm's statistics), as ``DistributedDataParallel(broadcast_buffers=True)`` does."""
    if active():
        with torch.no_grad():
            for t in [*(model.parameters() if parameters else ()), *model.buffers()]:
                dist.broadcast(t.data, src=0)


def average_gradients(params) -> None:
    """Replace each gradient by its mean over the ranks: one all-reduce of all of them flattened
    (DDP's reducer in one bucket). A parameter without a gradient on a rank counts as zero there."""
    if not active():
        return
    params = [p for p in params if p.requires_grad]
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    if dist.get_backend() == "nccl":
        present = present.cuda()
    dist.all_reduce(present, op=dist.ReduceOp.MAX)             # has a gradient on some rank
    params = [p for p, here in zip(params, present.tolist()) if here]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def mean(value: float) -> float:
    """The mean of a Python number over the ranks (a logged loss); ``value`` itself in one process."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.item() / world()

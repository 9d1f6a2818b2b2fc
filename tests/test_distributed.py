"""Data-parallel training (course_lib.distributed, train.train under torchrun) with the gloo backend
on the CPU: 2 processes of 1 thread each, small models, a few steps. Both ranks end with identical
weights, equal to one process trained on the same global batches (up to float rounding), also for
MeanFlow's loss, whose torch.func.jvp target DDP's gradient hooks would not see; and
``torchrun -m course_lib.pretrain`` writes one file, from rank 0."""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from course_lib import distributed, train
from course_lib.flow import meanflow

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_BATCH, STEPS = 8, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(kind: str) -> nn.Module:
    """``kind`` = "mse" (an MLP regression) or "meanflow" (MeanFlow's JVP loss on a MeanFlowNet), each
    rank taking its shard of the same global batches (x1, and for MeanFlow x0, a, b)."""
    torch.manual_seed(0)
    if kind == "mse":
        model = nn.Sequential(nn.Linear(2, 32), nn.GELU(), nn.Linear(32, 2))
    else:
        model = meanflow.MeanFlowNet()
    g = torch.Generator().manual_seed(1)

    def loss_fn(step):
        x1 = torch.randn(GLOBAL_BATCH, 2, generator=g)                          # the global batch
        if kind == "mse":
            return (model(distributed.shard(x1)) - distributed.shard(x1.flip(1))).pow(2).mean()
        x0 = torch.randn(GLOBAL_BATCH, 2, generator=g)
        a, b = meanflow.sample_times(GLOBAL_BATCH, 0.25, generator=g)
        s = distributed.shard
        return meanflow.loss(model, s(x1), x0=s(x0), a=s(a), b=s(b), p=0.0)   # p = 0: a plain mean
    # SGD: Adam divides by the root of each gradient's square, so a gradient near 0 turns float
    # rounding (the sum over 2 shards against over 1 batch) into a step of up to lr
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train.train(model, loss_fn, STEPS, optimizer=opt, progress=False, grad_clip=1.0)
    return model


KINDS = ("mse", "meanflow")


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: the shard checks, then each kind of training; results saved for the test to compare."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), COURSE_DEVICE="cpu")
    torch.set_num_threads(1)
    got = {"init": distributed.init(), "rank": distributed.rank(), "world": distributed.world()}
    try:
        got["shard"] = distributed.shard(torch.arange(6)).tolist()
        try:
            distributed.shard(torch.arange(5))
        except ValueError as e:
            got["uneven"] = str(e)
        got["mean"] = distributed.mean(float(rank))
        for kind in KINDS:
            got[kind] = _train(kind).state_dict()
    finally:
        distributed.close()
    got["threads_left"] = _gloo_threads()
    torch.save(got, f"{out}/rank{rank}.pt")


def _gloo_threads() -> list[str]:
    """The names of this process's gloo threads (Linux); a process group that outlives close() keeps
    them, and they abort the process at exit. [] where /proc is missing."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []
    names = []
    for t in tasks.iterdir():
        try:
            names.append((t / "comm").read_text().strip())
        except OSError:                                 # a thread that ended meanwhile
            pass
    return [n for n in names if "gloo" in n]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of 2 gloo ranks (spawned once for every test here) saw and trained."""
    out = tmp_path_factory.mktemp("ranks")
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_two_ranks_end_identical_and_equal_to_one_process(kind, ranks):
    r0, r1 = ranks[0][kind], ranks[1][kind]
    one = _train(kind).state_dict()                                             # world size 1, same batches
    for k in one:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between the ranks"
        torch.testing.assert_close(r0[k], one[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
    torch.manual_seed(0)
    untrained = (nn.Sequential(nn.Linear(2, 32), nn.GELU(), nn.Linear(32, 2)) if kind == "mse"
                 else meanflow.MeanFlowNet()).state_dict()
    assert all(not torch.equal(untrained[k], one[k]) for k in one if k.endswith("weight"))   # it trained


def test_shards_are_disjoint_and_an_uneven_batch_is_named(ranks):
    assert [(r["init"], r["rank"], r["world"]) for r in ranks] == [(True, 0, 2), (True, 1, 2)]
    assert (ranks[0]["shard"], ranks[1]["shard"]) == ([0, 2, 4], [1, 3, 5])
    assert ranks[0]["mean"] == ranks[1]["mean"] == 0.5
    assert "batch: a global batch of 5 rows cannot be split evenly over 2 processes" in ranks[0]["uneven"]


def test_close_leaves_no_gloo_thread_behind(ranks):
    """close() ends the process group for good: its gloo worker threads, left running past the
    interpreter's end, abort the rank at exit now and then (SIGABRT on a busy CPU). Training imports
    torch's compiler stack (an optimizer's step()), which kept the group alive unless imported first."""
    assert [r["threads_left"] for r in ranks] == [[], []]


def test_without_torchrun_everything_is_one_process():
    assert not distributed.init() and not distributed.active()
    distributed.close()                                                         # nothing to leave
    assert (distributed.rank(), distributed.world(), distributed.is_main()) == (0, 1, True)
    x = torch.arange(6)
    assert distributed.shard(x) is x and distributed.mean(2.5) == 2.5


TORCHRUN = r"""
import sys
sys.path.insert(0, sys.argv[2])
from course_lib import pretrain
from test_pretrain import make_toy
pretrain.MODELS["toy-mlp"] = pretrain.Model("toy-mlp", ("04",), make_toy)
pretrain.main(["--mode", "lecture", "--out", sys.argv[1], "toy-mlp"])
from test_distributed import _gloo_threads
sys.stdout.write(f"gloo threads left: {len(_gloo_threads())}\n")   # one write: the ranks share the pipe
sys.stdout.flush()
"""


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_pretrain_writes_once_from_rank_0(tmp_path, monkeypatch):
    """A recipe that does not shard trains every rank on the same batches: the averaged gradient is
    each rank's own, so the file is bit-identical to one process's (same thread count: 1)."""
    script = tmp_path / "run.py"
    script.write_text(TORCHRUN)
    env = {**os.environ, "COURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "COURSE_DEVICE": "cpu"}
    env.pop("COURSE_WEIGHTS_DIR", None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                        str(_free_port()), str(script), str(tmp_path / "two"), str(ROOT / "tests")], env=env,
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("toy-mlp: ready in") == 1                            # rank 0 alone speaks
    assert r.stdout.count("gloo threads left: 0") == 2, r.stdout[-2000:]       # see test_close_leaves_...
    from course_lib import pretrain, runtime, weights
    from tests.test_pretrain import make_toy
    monkeypatch.setitem(pretrain.MODELS, "toy-mlp", pretrain.Model("toy-mlp", ("04",), make_toy))
    monkeypatch.setitem(runtime._state, "mode", runtime._state["mode"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain.main(["--mode", "lecture", "--out", str(tmp_path / "one"), "toy-mlp"])
    finally:
        torch.set_num_threads(threads)
    two, one = weights.read_manifest(tmp_path / "two"), weights.read_manifest(tmp_path / "one")
    assert len(two) == 1 and list(two) == list(one) and len([f for f in (tmp_path / "two").iterdir() if not f.name.startswith(".")]) == 2   # file + manifest (+ .manifest.lock)
    assert two[next(iter(two))]["sha256"] == one[next(iter(one))]["sha256"]

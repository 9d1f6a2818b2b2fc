import contextlib
import dataclasses
import warnings

import pytest
import torch

from course_lib import runtime


def test_mode_from_env_and_override(monkeypatch):
    monkeypatch.setattr(runtime, "_state", {"mode": None, "device": None})
    monkeypatch.setenv("COURSE_MODE", "full")
    assert runtime.mode() == "full"
    monkeypatch.delenv("COURSE_MODE")
    assert runtime.mode() == "lecture"          # the default
    assert runtime.set_mode("QUICK") == "quick"
    assert runtime.mode() == "quick"


def test_unknown_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(runtime, "_state", {"mode": None, "device": None})
    with pytest.raises(ValueError, match="unknown course mode 'fast'.*quick, lecture, full"):
        runtime.set_mode("fast")
    monkeypatch.setenv("COURSE_MODE", "slow")
    with pytest.raises(ValueError, match="'slow'"):
        runtime.mode()


def _recipes():
    import importlib
    import pkgutil

    from course_lib import recipes
    return {m.name: importlib.import_module(f"course_lib.recipes.{m.name}")
            for m in pkgutil.iter_modules(recipes.__path__)}


def test_every_recipe_budget_is_one_frozen_dataclass_per_mode():
    found = {name: mod for name, mod in _recipes().items() if hasattr(mod, "budget")}
    assert {"welcome", "pixels_and_samples", "flow_matching_2d", "meanflow", "shape_tokens"} <= set(found)
    for name, mod in found.items():
        assert set(mod.BUDGETS) == set(runtime.MODES), name
        types = {type(mod.budget(m)) for m in runtime.MODES}
        assert len(types) == 1, f"{name}: {types}"
        for m in runtime.MODES:
            B = mod.budget(m)
            assert dataclasses.is_dataclass(B) and B.mode == m, name
            with pytest.raises(dataclasses.FrozenInstanceError):
                B.mode = "other"
            hash(B)                                     # a cache key, an lru_cache argument


def test_a_recipe_with_parts_nests_them():
    from course_lib.recipes import meanflow
    B = meanflow.budget("lecture")
    assert B.latent.hidden == 384 and not hasattr(B, "latent_hidden")


@dataclasses.dataclass(frozen=True)
class _Budget:
    mode: str
    steps: int


def test_pick_reads_the_current_mode(monkeypatch):
    budgets = {m: _Budget(m, k) for k, m in enumerate(runtime.MODES, 1)}
    assert runtime.pick(budgets, "full").steps == 3
    monkeypatch.setenv("COURSE_MODE", "quick")
    b = runtime.pick(budgets)
    assert b.mode == "quick" and b.steps == 1
    with pytest.raises(KeyError, match="missing \\['full'\\]"):
        runtime.pick({"quick": budgets["quick"], "lecture": budgets["lecture"]})
    with pytest.raises(TypeError, match="budgets\\['full'\\].*mode='full'"):
        runtime.pick({**budgets, "full": _Budget("lecture", 3)}, "full")
    with pytest.raises(TypeError, match="dataclass"):
        runtime.pick({**budgets, "full": dict(steps=3)}, "full")

    @dataclasses.dataclass(frozen=True)
    class WithPart:
        mode: str
        part: _Budget
    with pytest.raises(TypeError, match=r"budgets\['quick'\].part: a budget of mode 'full' inside the 'quick'"):
        runtime.pick({**budgets, "quick": WithPart("quick", budgets["full"])}, "quick")


def test_device_override(monkeypatch):
    monkeypatch.setattr(runtime, "_state", {"mode": None, "device": None})
    assert runtime.set_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        runtime.set_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            runtime.set_device("cuda")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    runtime.set_device(None)
    assert runtime.device().type == "cpu"


def test_seeding_is_deterministic():
    runtime.seed_everything(3)
    a = torch.randn(4)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(TypeError):
        runtime.seed_everything(1.5)


def test_describe_prints_device_mode_torch_threads(capsys):
    info = runtime.describe()
    out = capsys.readouterr().out
    for key in ("device", "mode", "torch", "threads"):
        assert key in info
    assert info["torch"] in out and info["mode"] in out
    assert info["threads"] == torch.get_num_threads() and f"{info['threads']} CPU threads" in out


def test_autocast_is_a_no_op_on_cpu(monkeypatch):
    monkeypatch.setattr(runtime, "_state", {"mode": None, "device": torch.device("cpu")})
    ctx = runtime.autocast()
    assert type(ctx) is contextlib.nullcontext, type(ctx)
    with ctx:
        assert not torch.is_autocast_enabled("cpu") and not torch.is_autocast_enabled("cuda")
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_autocast_is_cuda_bf16_on_a_cuda_device(monkeypatch):
    # no GPU needed: the context is built, not entered
    monkeypatch.setattr(runtime, "_state", {"mode": None, "device": torch.device("cuda")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # "CUDA is not available" on a CPU machine
        ctx = runtime.autocast()
        off = runtime.autocast(enabled=False)
    assert isinstance(ctx, torch.autocast), type(ctx)
    assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    assert type(off) is contextlib.nullcontext, type(off)


def test_validate_device_names_the_argument():
    assert runtime.validate_device("cpu") == torch.device("cpu")
    assert runtime.validate_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="^device: unknown device 'gpu0'"):
        runtime.validate_device("gpu0")
    with pytest.raises(ValueError, match="^where: unknown device"):
        runtime.validate_device("gpu0", "where")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^device: device 'cuda' asked for, but torch sees no CUDA GPU"):
            runtime.validate_device("cuda")


def _fresh(code: str, **env) -> str:
    """Run ``code`` in a new interpreter (OpenMP and torch threads are set once per process)."""
    import os
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "COURSE_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    return out.stdout.strip() + out.stderr.strip()


def test_threads_are_set_once_on_import_and_openmp_waits_briefly():
    code = ("import os\nfrom course_lib import runtime\nimport torch\n"
            "print(os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'], torch.get_num_threads())")
    spin, block, threads = _fresh(code).split()
    assert (spin, block) == ("1000", "1")
    assert int(threads) >= 1
    assert _fresh(code, COURSE_THREADS="1").split()[2] == "1"
    assert _fresh(code, GOMP_SPINCOUNT="5").split()[0] == "5"          # a learner's own setting wins
    assert "COURSE_THREADS must be a positive integer, got 'two'" in _fresh(code, COURSE_THREADS="two")


def test_set_threads_validates_and_sets():
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(ValueError, match="threads must be a positive int"):
                runtime.set_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_evaluating_restores_every_submodule_even_when_the_block_raises():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    frozen = torch.nn.Sequential(torch.nn.Dropout(0.5)).eval()        # a part kept in eval mode
    model.append(frozen)
    other = torch.nn.Linear(2, 2)
    with runtime.evaluating(model, other) as (m, o):
        assert m is model and o is other and not model.training and not model[1].training and not other.training
    assert model.training and model[1].training and not frozen.training and other.training
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.evaluating(model):
            raise RuntimeError("boom")
    assert model.training and not frozen.training
    model.eval()
    with runtime.evaluating(model) as m:
        assert m is model
    assert not model.training                                         # eval before, eval after
    with pytest.raises(TypeError, match="evaluating: argument 1 must be an nn.Module, got Tensor"):
        with runtime.evaluating(model, torch.zeros(1)):
            pass


def test_seconds_per_step_times_the_calls_after_the_warmup():
    import time
    calls = []

    def step(k):
        calls.append(k)
        time.sleep(0.02 if k >= 2 else 0.2)                 # slow warm-up calls are not counted
    s = runtime.seconds_per_step(step, 3, warmup=2)
    assert calls == [0, 1, 2, 3, 4] and 0.015 < s < 0.15
    out, seconds = runtime.timed(lambda: time.sleep(0.02) or "done")
    assert out == "done" and seconds >= 0.015
    with pytest.raises(ValueError, match="n: expected a positive int"):
        runtime.seconds_per_step(step, 0)
    with pytest.raises(ValueError, match="warmup: expected a non-negative int"):
        runtime.seconds_per_step(step, 1, warmup=-1)

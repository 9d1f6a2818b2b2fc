"""Trained weights a course ships, so that a learner never waits for a model another notebook trains.

``data/weights/`` in the course folder holds one safetensors file per trained model (a format that
stores tensors and loads no code: nothing is unpickled) and ``manifest.json``, which says per file::

    "token-gpt-1a2b3c4d5e6f7a8b.safetensors": {
        "sha256": "...",                       # of the file's bytes, checked at every load
        "name": "token-gpt", "mode": "lecture",
        "budget": {...},                       # the recipe's budget (dataclasses.asdict), the cache key
        "budget_type": "course_lib.recipes.chaining_tokens.Budget",
        "dtype": "float32",                    # or "float16" (stored half, loaded into the model's dtype)
        "steps": 1500, "seconds": 61.2,        # optimizer steps and training seconds of this model alone
        "machine": {...}, "torch": "2.13.0",   # where it was trained: platform, cpu count, threads, device
        "figures": {...}                       # optional: the bench figures these weights reach
    }

:func:`course_lib.cache.cached` looks here first (:func:`find`): a file whose manifest entry matches
the model's name and budget is checked (sha256) and loaded; a missing file, a wrong hash, keys that do
not fit, or a shipped entry of the same model and mode whose budget differs from the recipe's (stale)
stop with a :class:`WeightsError` that names the file, what was expected and found, and the command
that rebuilds it. Nothing here downloads, and nothing here overwrites a file: only
``python -m course_lib.pretrain`` (``make pretrain``) writes this folder, through :func:`exporting`.

Where the folder is (:func:`folder`): ``$COURSE_WEIGHTS_DIR`` if set, else ``data/weights`` in the
course folder (the nearest folder at or above the current directory that holds ``solutions/``); none
found (e.g. the package installed from a wheel, run elsewhere): nothing is shipped, models train.
Whether shipped weights are used at all is :func:`course_lib.runtime.weights` (``"load"``/``"train"``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from course_lib import runtime
from course_lib.data import sha256  # noqa: F401  (weights.sha256: the files' checksum)

MANIFEST = "manifest.json"
FORMAT = 1                                  # the manifest's layout version
SUFFIX = ".safetensors"
_state = {"export": None, "fp16": frozenset(), "frames": []}


class WeightsError(RuntimeError):
    """A shipped weights file that cannot be used as it is: missing, corrupted, stale or not this model's."""


def plain(config):
    """``config`` as JSON-ready values: a dataclass as the dict of its fields (nested parts too),
    tuples as lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {k: plain(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [plain(v) for v in config]
    return config


def _qualname(x) -> str:
    return f"{type(x).__module__}.{type(x).__qualname__}"


def describe_config(config) -> dict:
    """What the manifest records of a model's ``config``: ``budget`` (its fields), ``budget_type`` (the
    dataclass's qualified name, or for a dict {key: qualified name} of its dataclass entries), ``mode``
    (the budget's, None for a model that is the same in every mode) and ``settings`` (a dict config's
    entries that are not budgets, e.g. a seed: they tell variants of one model apart)."""
    if dataclasses.is_dataclass(config):
        return dict(budget=plain(config), budget_type=_qualname(config), mode=getattr(config, "mode", None), settings={})
    parts = {k: v for k, v in config.items() if dataclasses.is_dataclass(v)}
    modes = {getattr(v, "mode", None) for v in parts.values()} - {None}
    mode = modes.pop() if len(modes) == 1 else config.get("mode")
    settings = {k: plain(v) for k, v in config.items() if k not in parts} if parts else {}
    return dict(budget=plain(config), budget_type={k: _qualname(v) for k, v in parts.items()} or "dict",
                mode=mode, settings=settings)


def rebuild_command(name: str, mode: str | None) -> str:
    return f"make pretrain (or: python -m course_lib.pretrain --mode {mode or 'lecture'} {name})"


def course_root(start: Path | None = None) -> Path | None:
    """The nearest of ``start`` (default: the current directory) and its parents holding
    ``solutions/`` (course_lib.course.folder's rule), or None."""
    start = Path(start if start is not None else Path.cwd()).resolve()
    for f in (start, *start.parents):
        if (f / "solutions").is_dir():
            return f
    return None


def folder() -> Path | None:
    """The shipped weights' folder: ``$COURSE_WEIGHTS_DIR``, else ``<course folder>/data/weights`` if it
    exists, else None (nothing shipped: every model trains, or comes from the disk cache)."""
    where = os.environ.get("COURSE_WEIGHTS_DIR", "").strip()
    if where:
        return Path(where).expanduser()
    root = course_root()
    return root / "data" / "weights" if root is not None and (root / "data" / "weights").is_dir() else None


def read_manifest(where) -> dict:
    """``{file name: entry}`` of ``where/manifest.json`` ({} if there is none); a manifest that is not
    the course's JSON is a :class:`WeightsError` naming it."""
    path = Path(where) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        assert data.get("format") == FORMAT and isinstance(files, dict)
    except Exception as e:
        raise WeightsError(f"{path} is not a weights manifest of format {FORMAT} ({type(e).__name__}: {e}); "
                           f"restore it from the repository (git checkout -- {path}) or rebuild it with "
                           "make pretrain") from e
    return files


def _write_manifest(where: Path, files: dict) -> None:
    text = json.dumps({"format": FORMAT, "files": dict(sorted(files.items()))}, indent=1, sort_keys=True) + "\n"
    _atomic_write(where / MANIFEST, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _differences(a, b, prefix="") -> list[str]:
    """Fields where the plain budgets ``a`` (shipped) and ``b`` (the recipe's) differ, as text."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: shipped {a!r}, the recipe's {b!r}"]


def find(stem: str, name: str, config) -> Path | None:
    """The checked path of the shipped weights of model ``name`` trained with ``config`` (file
    ``<stem>.safetensors``), or None when none are shipped for it (or shipped weights are switched
    off: quick mode, ``runtime.set_weights("train")``). A :class:`WeightsError` when the manifest
    lists the file but it is missing or its sha256 differs, or when the manifest has this model in
    this mode with the same settings but another budget (the recipe changed since the file was made).
    While :func:`exporting`, the export folder is searched and a stale entry is left for replacing."""
    where = _state["export"] or (folder() if runtime.weights() == "load" else None)
    if where is None:
        return None
    files = read_manifest(where)
    me = describe_config(config)
    entry = files.get(stem + SUFFIX)
    if entry is None:
        for file, e in files.items():
            if (e.get("name"), e.get("mode"), e.get("settings")) == (name, me["mode"], me["settings"]) \
                    and _state["export"] is None:
                diff = _differences(e.get("budget"), me["budget"])
                if e.get("budget_type") != me["budget_type"]:
                    diff.insert(0, f"budget type: shipped {e.get('budget_type')}, the recipe's {me['budget_type']}")
                why = (f"they were trained with another budget than the recipe's ({'; '.join(diff[:4])})" if diff
                       else f"the budget is the same, but the cache key is not ({stem}): the course's code "
                            "changed what training produces since (course_lib.cache.CODE_VERSION)")
                raise WeightsError(
                    f"{name}: the shipped weights {Path(where) / file} are stale: {why}. Rebuild them with "
                    f"{rebuild_command(name, me['mode'])}, or train in the notebook: WEIGHTS = \"train\" "
                    "(runtime.set_weights(\"train\"), or COURSE_WEIGHTS=train)")
        return None
    path = Path(where) / (stem + SUFFIX)
    if entry.get("name") != name or entry.get("budget") != me["budget"]:
        raise WeightsError(f"{name}: the manifest entry of {path} is for {entry.get('name')!r} with another "
                           f"budget; the file name and the manifest disagree: rebuild with "
                           f"{rebuild_command(name, me['mode'])}")
    if not path.is_file():
        raise WeightsError(f"{name}: the manifest lists {path}, but the file is missing. Restore it "
                           f"(git checkout -- {path}) or rebuild it with {rebuild_command(name, me['mode'])}")
    found = sha256(path)
    if found != entry.get("sha256"):
        raise WeightsError(f"{name}: {path} is corrupted or was changed: sha256 expected {entry.get('sha256')}, "
                           f"found {found}. Nothing was loaded or overwritten; restore it (git checkout -- "
                           f"{path}) or rebuild it with {rebuild_command(name, me['mode'])}")
    return path


def load_into(model: nn.Module, path):
    """Load the safetensors file ``path`` into ``model`` (strict: the same keys and shapes; tensors
    stored as float16 are cast to the model's dtype). Tied parameters are stored once. Returns what
    training returned (:mod:`course_lib.record`: a History, a dict of figures; None if nothing)."""
    from course_lib import record
    from safetensors import safe_open
    path = Path(path)
    want = model.state_dict()
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            course = json.loads((f.metadata() or {}).get("course", "{}"))
            aliases, text = course.get("aliases", {}), course.get("record")
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:                      # not a safetensors file: never parsed any other way
        raise WeightsError(f"{path} is not a safetensors file ({type(e).__name__}: {e}); rebuild it with "
                           "make pretrain") from e
    state.update({k: state[v] for k, v in aliases.items() if v in state})
    wrong = ([f"missing {k}" for k in want if k not in state] + [f"unexpected {k}" for k in state if k not in want]
             + [f"{k} of shape {tuple(state[k].shape)}, the model's {tuple(v.shape)}"
                for k, v in want.items() if k in state and state[k].shape != v.shape])
    if wrong:
        raise WeightsError(f"{path} does not fit the model ({'; '.join(wrong[:4])}): the file is not this "
                           "model's; rebuild it with make pretrain")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in want.items()})
    try:
        return record.loads(text)
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path}: the training record in its metadata is not readable ({e}); rebuild it "
                           "with make pretrain") from e


def _storable(model: nn.Module, fp16: bool) -> tuple[dict, dict]:
    """(tensors to store, {alias: stored name}): each storage once (tied weights), contiguous, on the CPU,
    floating tensors in float16 if ``fp16``."""
    state, seen, aliases = {}, {}, {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride(), v.dtype)
        if v.numel() and key in seen:
            aliases[k] = seen[key]
            continue
        seen[key] = k
        v = v.detach().to("cpu").contiguous()
        state[k] = _half(v) if fp16 else v.clone()
    return state, aliases


def _half(v: torch.Tensor) -> torch.Tensor:
    """``v`` in float16 if it is floating and float16 holds its values (|v| <= 65504: a count
    buffer, an EMA cluster size can be larger), else ``v`` unchanged."""
    fits = v.is_floating_point() and (v.numel() == 0 or v.abs().max().item() <= torch.finfo(torch.float16).max)
    return v.half() if fits else v.clone()


def halve(where, file: str) -> int:
    """Store the shipped file ``where/file`` in float16 (each floating tensor float16 can hold, see
    :func:`_half`; the training record kept), and update its manifest entry (sha256, dtype, bytes).
    The weights are not retrained: it is the same model rounded. Returns the bytes saved."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    where = Path(where)
    with _manifest_lock(where):
        files = read_manifest(where)
        if file not in files:
            raise WeightsError(f"file: {file!r} is not in {where / MANIFEST}")
        path, entry = where / file, files[file]
        if entry.get("sha256") != sha256(path):
            raise WeightsError(f"{path}: sha256 differs from the manifest's; not changed")
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata, state = f.metadata() or {}, {k: _half(f.get_tensor(k)) for k in f.keys()}
        before = path.stat().st_size
        _atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
        entry.update(sha256=sha256(path), dtype="float16", bytes=path.stat().st_size)
        _write_manifest(where, files)
        return before - entry["bytes"]


def machine() -> dict:
    """Where weights were trained: platform, CPU count, torch threads, device."""
    dev = runtime.device()
    return dict(platform=platform.platform(), python=platform.python_version(), cpu_count=os.cpu_count(),
                threads=torch.get_num_threads(), device=str(dev),
                device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type)


@contextlib.contextmanager
def _manifest_lock(where: Path):
    """Hold ``where/.manifest.lock`` (flock) while the manifest is read, changed and written: two
    pretrain processes (or torchrun jobs) writing models into one folder never lose each other's entries."""
    import fcntl
    with open(where / ".manifest.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def save(model: nn.Module, where, stem: str, name: str, config, *, steps: int, seconds: float,
         fp16: bool = False, figures: dict | None = None, record: str | None = None) -> Path:
    """Write ``model``'s weights to ``where/<stem>.safetensors`` and its manifest entry; ``record``:
    what training returned, as :func:`course_lib.record.dumps` wrote it (kept in the file's metadata).
    Refuses (a :class:`WeightsError`) a file that is already there: only an entry of the same model,
    mode and settings with another budget (stale) is replaced, and that is said."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    with _manifest_lock(where):
        return _save(model, where, stem, name, config, steps=steps, seconds=seconds, fp16=fp16,
                     figures=figures, record=record)


def _save(model, where: Path, stem, name, config, *, steps, seconds, fp16, figures, record) -> Path:
    from safetensors.torch import save_file
    path = where / (stem + SUFFIX)
    files = read_manifest(where)
    if path.exists():
        raise WeightsError(f"{path} already exists ({'listed' if path.name in files else 'not listed'} in the "
                           "manifest): it is never overwritten; move or delete it first")
    me = describe_config(config)
    for file in [f for f, e in files.items() if (e.get("name"), e.get("mode"), e.get("settings"))
                 == (name, me["mode"], me["settings"])]:
        print(f"{name}: replacing the stale {where / file} (trained with another budget or code version)")
        files.pop(file)
        if (where / file).exists():
            os.remove(where / file)
    state, aliases = _storable(model, fp16)
    # one metadata key: safetensors keeps metadata in a hash map, whose order (so the file's bytes and
    # sha256) would change from one process to the next with two
    course = json.dumps({"aliases": aliases, "record": record}, sort_keys=True)
    _atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"course": course}))
    files[path.name] = dict(sha256=sha256(path), name=name, mode=me["mode"], budget=me["budget"],
                            budget_type=me["budget_type"], settings=me["settings"],
                            dtype="float16" if fp16 else "float32", bytes=path.stat().st_size, steps=int(steps),
                            seconds=round(float(seconds), 2), machine=machine(), torch=torch.__version__,
                            command=rebuild_command(name, me["mode"]).split("or: ")[-1].rstrip(")"),
                            figures=figures or {})
    _write_manifest(where, files)
    return path


def set_figures(where, file: str, figures: dict) -> None:
    """Record the bench ``figures`` the weights ``file`` (a name in ``where``'s manifest) reach."""
    with _manifest_lock(Path(where)):
        files = read_manifest(where)
        if file not in files:
            raise WeightsError(f"file: {file!r} is not in {Path(where) / MANIFEST}")
        files[file]["figures"] = {**files[file].get("figures", {}), **json.loads(json.dumps(figures))}
        _write_manifest(Path(where), files)


@contextlib.contextmanager
def exporting(where, fp16=()):
    """Inside the block, :func:`course_lib.cache.cached` trains every model it does not find in ``where``
    (shipped weights only: the disk cache is neither read nor written) and saves it there with its
    manifest entry; ``fp16``: names of models stored in float16. Used by ``course_lib.pretrain``."""
    before = _state["export"], _state["fp16"]
    _state["export"], _state["fp16"] = Path(where), frozenset(fp16)
    try:
        yield Path(where)
    finally:
        _state["export"], _state["fp16"] = before


def export_folder() -> Path | None:
    return _state["export"]


def stores_fp16(name: str) -> bool:
    return name in _state["fp16"]


@contextlib.contextmanager
def recording():
    """Count the optimizer steps (:func:`count_steps`, called by ``train.train``) and wall seconds of
    one model's training: ``rec["steps"]``, ``rec["seconds"]``, without those of a model trained inside
    it (a tokenizer a transformer's fit asks for)."""
    rec = {"steps": 0, "seconds": 0.0, "nested": 0.0}
    _state["frames"].append(rec)
    t0 = time.perf_counter()
    try:
        yield rec
    finally:
        _state["frames"].pop()
        elapsed = time.perf_counter() - t0
        rec["seconds"] = elapsed - rec["nested"]
        if _state["frames"]:
            _state["frames"][-1]["nested"] += elapsed


def count_steps(n: int) -> None:
    """Add ``n`` optimizer steps to the model being recorded (if any)."""
    if _state["frames"]:
        _state["frames"][-1]["steps"] += n

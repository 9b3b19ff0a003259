"""Fault-injection trials against an llmrec checkout (issue 18): kill it, damage its files, crowd it, fill its disk.

    python scripts/fault_trials.py --repo PATH [--per-kind N] [--kinds K,K] [--work DIR] [--keep] [--results F]
    python scripts/fault_trials.py --repo PATH --report F [F ...]     # the table of earlier --results files

Every trial runs the checkout at PATH from outside: `python -c CODE` with PYTHONPATH=PATH, where CODE wraps one
named callable (e.g. `llmrec.llm.train.save_checkpoint`, `accelerate.Accelerator.save_state`, `os.rename`) so
that its Nth call sends the process SIGKILL / SIGINT / SIGTERM, raises, or fails as a full disk does, and then
calls `llmrec.cli.main(argv)`. Nothing in the product is changed. Recipes are tiny synthetic ones (the test
suite's SMALL_OVERRIDES), so a trial takes seconds. The script prints one Markdown table,
`kind | item | trials | ended cleanly | failed`, then one line per trial.

A trial ENDED CLEANLY when every check that applies to it holds:

1. The faulted run ended in one of these ways:
   - exit 0 and its output is complete and correct (what "correct" means is checked per trial: the weights an
     uninterrupted run writes, the forget users asked for, the data the original was trained on, ...);
   - a refusal: exit 2 (bad input, damaged file, full disk, a busy output), 130 (SIGINT) or 143 (SIGTERM), and
     ONE LINE: stderr holds no Python traceback and its last line starts with `llmrec:` (and, where a trial
     says so, names the file or setting at fault);
   - SIGKILL: the process died of it (nothing can be said), and the next run recovers (check 4);
   - an injected RuntimeError (`raise`): any non-zero exit (it stands for a bug below llmrec; only what it
     leaves on disk is judged).
2. The original model (and every shard of an ensemble) has the same `llmrec.store.model_hash` after the
   trial as before, and is still there.
3. No stale output is trusted: after a run that did not exit 0, no output claims success (no
   `unlearning_manifest.json`, `train_metrics.json` or `results.json` that was not there before, and an earlier
   complete output is byte-identical); no run exits 0 on damaged or other data or with an inverted answer.
4. No temporary litter: after a run that exited by itself (anything but SIGKILL), and after the next run
   in any case, no hidden `.NAME.tmp-*` / `.NAME.old-*` / `.NAME.swap-*` / `*partial*` / `*incomplete*` entry
   is left anywhere under the trial's folder (`*.lock` files are not litter). After a kill, rerunning the same command exits 0
   (training: resuming where a checkpoint allows, to weights byte-identical to an uninterrupted run's).

A trial that fails gets the first failing check's reason, one word: nofire (the named call never happened:
the phase moved), notarget (no such callable), timeout, exitcode, traceback, silent (died of a signal or
printed no `llmrec:` line), swallowed (exit 0 after SIGINT/SIGTERM/an injected error), message (the line does
not name what it should), accepted (a bad setting or input ran), trusted (damaged, swapped or other data used with exit 0), original, stale, litter, rerun (the next run
failed), weights, restarted (a resumable run started over), crash (a concurrent run crashed), bothwon (two
writers of one output both succeeded), recipe, config, hardlink, threads (torch ran more threads than free
cores), unrecorded (the thread count not printed or recorded), setup (a shared fixture could not be built),
harness (a bug in this script).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path



def _small_overrides() -> list[str]:
    """tests/conftest.py's SMALL_OVERRIDES, the test suite's tiny recipe (read, not imported: importing it would
    import the llmrec this script runs from, not the checkout under test)."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "tests" / "conftest.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", None) == "SMALL_OVERRIDES")


SMALL = _small_overrides()  # a run trains in seconds
DATA = [o for o in SMALL if o.startswith("data.")]
QUICK = ["e2urec.augment.epochs=0.2", "e2urec.warmup_epochs=0.1", "e2urec.joint_epochs=0.2", "e2urec.lora.r=4",
         "e2urec.batch_size=8"]
SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM", "raise")
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"  # what torch.save raises
LITTER = re.compile(r"^\..*(tmp|old|swap)|partial|incomplete|[._-](tmp|old)[._-]\d+", re.IGNORECASE)

# The code each trial process runs: observers and one fault wrapped around named callables, then the CLI.
PRELUDE = r'''
import errno, functools, hashlib, importlib, json, os, signal, sys, time
SPEC = json.loads(%r)
# A process started in the background inherits SIGINT ignored; a user's Ctrl-C reaches a foreground one.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)

def _note(**record):
    with open(SPEC["notes"], "a") as handle:
        handle.write(json.dumps(record, default=str) + "\n")

def _owner(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:-1]:
                owner = getattr(owner, part)
            getattr(owner, parts[-1])
        except AttributeError:
            break
        return owner, parts[-1]
    _note(event="notarget", target=dotted)
    print(f"fault_trials: no callable {dotted}", file=sys.stderr)
    sys.exit(97)

def _wrap(dotted, make):
    owner, name = _owner(dotted)
    setattr(owner, name, make(getattr(owner, name)))

if SPEC.get("cpus"):
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:SPEC["cpus"]]))

if SPEC.get("observe"):  # record what data the run really used (a digest of every split's rows)
    def _observe(original):
        def prepare_splits(*args, **kwargs):
            splits = original(*args, **kwargs)
            digest = hashlib.sha256()
            for name in sorted(splits):
                digest.update(name.encode() + b"\0" + splits[name].to_pandas().to_csv(index=False).encode())
            forget = sorted(set(map(str, splits["forget"]["user_id"]))) if "forget" in splits else None
            _note(event="splits", rows=digest.hexdigest(), forget_users=forget)
            return splits
        return prepare_splits
    _wrap("llmrec.data.samples.prepare_splits", _observe)

FAULT = SPEC.get("fault")

def _partial(path, keep):
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        os.truncate(path, int(os.path.getsize(path) * keep))

def _disk_full(original, target, args, kwargs):
    """Write part of the file, then fail as that writer fails on a full disk."""
    if target == "torch.save":
        original(*args, **kwargs)
        _partial(args[1], 0.5)
        raise RuntimeError(FAULT_TORCH)
    if target == "safetensors.torch.serialize_file":
        from safetensors import SafetensorError
        original(*args, **kwargs)
        _partial(args[1], 0.5)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    if target == "pathlib.Path.write_text":
        original(args[0], args[1][: len(args[1]) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

def _fire(target):
    _note(event="fired", target=target, action=FAULT["action"], nth=FAULT["nth"])
    action = FAULT["action"]
    if action in ("SIGKILL", "SIGINT", "SIGTERM"):
        os.kill(os.getpid(), getattr(signal, action))  # SIGINT: KeyboardInterrupt surfaces right here
        time.sleep(0.5)
    elif action == "raise":
        raise RuntimeError(f"fault_trials: injected failure in {target}")
    elif action == "sleep":
        time.sleep(FAULT["seconds"])

def _matches(args):
    match = FAULT.get("match")
    if not match:
        return True
    source, target = (os.path.basename(os.fspath(a)) for a in args[:2])
    return source.startswith(".") and target == match  # the rename that commits a temp dir as `match`

if FAULT:
    _calls = [0]
    def _make(target):
        def make(original):
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                if _matches(args):
                    _calls[0] += 1
                    if _calls[0] == FAULT["nth"]:
                        if FAULT["action"] == "diskfull":
                            _note(event="fired", target=target, action="diskfull", nth=FAULT["nth"])
                            return _disk_full(original, target, args, kwargs)
                        if FAULT["when"] == "before":
                            _fire(target)
                            return original(*args, **kwargs)
                        result = original(*args, **kwargs)
                        _fire(target)
                        return result
                return original(*args, **kwargs)
            return wrapper
        return make
    for _target in FAULT["targets"]:
        _wrap(_target, _make(_target))

import llmrec.cli
_code = llmrec.cli.main(SPEC["argv"])
_torch = sys.modules.get("torch")
_note(event="returned", code=_code, threads=_torch.get_num_threads() if _torch else None)
sys.exit(_code)
'''.replace("FAULT_TORCH", repr(TORCH_DISK_FULL))


@dataclass
class Fault:
    """Wrap `targets` (dotted names; several share one call counter) so that their `nth` matching call fires."""

    targets: list[str] | str
    action: str  # SIGKILL | SIGINT | SIGTERM | raise | diskfull | sleep
    nth: int = 1
    when: str = "before"  # fire before or after the real call runs
    match: str | None = None  # os.rename/os.replace: count only renames of a hidden temp dir onto this name
    seconds: float = 0.0  # sleep

    def spec(self) -> dict:
        targets = [self.targets] if isinstance(self.targets, str) else list(self.targets)
        return {"targets": targets, "action": self.action, "nth": self.nth, "when": self.when, "match": self.match,
                "seconds": self.seconds}


COMMIT = ["os.rename", "os.replace"]  # the call that swaps a finished temp dir into place


@dataclass
class Run:
    argv: list[str]
    rc: int | None
    out: str
    err: str
    notes: list[dict]
    seconds: float

    @property
    def fired(self) -> bool:
        return any(n.get("event") == "fired" for n in self.notes)

    @property
    def last_line(self) -> str:
        lines = [line.strip() for line in re.split(r"[\r\n]+", self.err) if line.strip()]
        return lines[-1] if lines else ""

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    @property
    def one_line(self) -> bool:
        return not self.traceback and self.last_line.startswith("llmrec:")

    def observed(self, key: str):
        return [n[key] for n in self.notes if key in n]

    def tail(self, chars: int = 160) -> str:
        return (self.last_line or self.out.strip()[-chars:])[:chars]


class Fail(Exception):
    """A trial did not end cleanly: `reason` is one word (see the module docstring)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


class SetupError(Exception):
    pass


class Harness:
    """Runs the checkout at `repo` in subprocesses, inside `work`."""

    def __init__(self, repo: Path, work: Path, python: str = sys.executable, timeout: int = 300):
        self.repo, self.work, self.python, self.timeout = Path(repo).resolve(), Path(work), python, timeout
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH",)}
        self.env.update(PYTHONPATH=str(self.repo), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                        HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
                        PYTHONUNBUFFERED="1")
        self._count = 0
        self._fixtures: dict[str, Path] = {}
        self._hash = None

    # ---- running ----
    def _code(self, argv, fault, observe, cpus, notes) -> str:
        spec = {"argv": [str(a) for a in argv], "notes": str(notes), "observe": observe, "cpus": cpus,
                "fault": fault.spec() if fault else None}
        return PRELUDE % json.dumps(spec)

    def start(self, argv, fault: Fault | None = None, observe: bool = False, cwd: Path | None = None,
              cpus: int | None = None, env: dict | None = None):
        """Start one CLI run; `finish` waits for it."""
        self._count += 1
        notes = self.work / "notes" / f"{self._count}.jsonl"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.unlink(missing_ok=True)  # a work folder used again
        run_env = {**self.env, **(env or {})}
        run_env = {k: v for k, v in run_env.items() if v is not None}
        proc = subprocess.Popen([self.python, "-c", self._code(argv, fault, observe, cpus, notes)], env=run_env,
                                cwd=cwd or self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        return proc, notes, list(argv), time.perf_counter()

    def finish(self, started) -> Run:
        proc, notes, argv, t0 = started
        try:
            out, err = proc.communicate(timeout=self.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            rc = None
        records = [json.loads(line) for line in notes.read_text().splitlines()] if notes.is_file() else []
        return Run(argv, rc, out, err, records, time.perf_counter() - t0)

    def cli(self, argv, fault: Fault | None = None, **kwargs) -> Run:
        run = self.finish(self.start(argv, fault, **kwargs))
        if run.rc is None:
            raise Fail("timeout", " ".join(run.argv[:2]))
        if run.rc == 97 and any(n.get("event") == "notarget" for n in run.notes):
            raise Fail("notarget", run.last_line)
        if fault is not None and not run.fired:
            raise Fail("nofire", f"{fault.targets} call {fault.nth} never came (rc {run.rc}: {run.tail()})")
        return run

    # ---- what a trial checks ----
    def model_hash(self, model_dir: Path) -> str:
        """llmrec.store.model_hash of the checkout under test (an ensemble's shards included)."""
        if self._hash is None:
            sys.path.insert(0, str(self.repo))
            from llmrec.store import model_hash

            self._hash = model_hash
        return self._hash(Path(model_dir))

    # ---- shared fixtures, built once by the checkout under test ----
    def fixture(self, name: str) -> Path:
        if name not in self._fixtures:
            builders = {"original": self._original, "unlearned": self._unlearned, "classic": self._classic,
                        "classic_unlearned": self._classic_unlearned, "sisa": self._sisa, "bench": self._bench}
            try:
                self._fixtures[name] = builders[name](self.work / "fixtures")
            except Fail as fail:
                self._fixtures[name] = SetupError(f"fixture {name}: {fail.reason} {fail.detail}")
        value = self._fixtures[name]
        if isinstance(value, Exception):
            raise Fail("setup", str(value))
        return value

    def _build(self, argv, **kwargs) -> Run:
        run = self.cli(argv, **kwargs)
        if run.rc != 0:
            raise Fail("setup", f"{argv[0]} exit {run.rc}: {run.tail()}")
        return run

    def _original(self, fx: Path) -> Path:
        run = self._build(train_argv(fx / "original", fx / "cache"), observe=True)
        seen = next(n for n in run.notes if n.get("event") == "splits")
        (fx / "original" / "splits.json").write_text(json.dumps(seen))
        return fx / "original"

    def _unlearned(self, fx: Path) -> Path:
        original = self.fixture("original")
        self._build(unlearn_argv(original / "model", fx / "unlearned", fx / "cache"))
        return fx / "unlearned"

    def _classic(self, fx: Path) -> Path:
        self.fixture("original")  # the cache
        self._build(classic_train_argv(fx / "classic", fx / "cache"))
        return fx / "classic"

    def _classic_unlearned(self, fx: Path) -> Path:
        classic = self.fixture("classic")
        self._build(classic_unlearn_argv(classic / "model", fx / "classic-unlearned", fx / "cache"))
        return fx / "classic-unlearned"

    def _sisa(self, fx: Path) -> Path:
        self.fixture("original")
        self._build(train_argv(fx / "sisa", fx / "cache", "train.shards=2", "train.epochs=1"))
        return fx / "sisa"

    def _bench(self, fx: Path) -> Path:
        self.fixture("original")
        self._build(bench_argv(fx / "bench", fx / "cache"))
        return fx / "bench"

    def pristine(self, key: str = "rows"):
        """What the original's training run read: `rows` (digest of every split's rows), `forget_users`."""
        return json.loads((self.fixture("original") / "splits.json").read_text())[key]

    def copy(self, name: str, target: Path) -> Path:
        """A trial's own copy of a fixture (runs keep their files; nothing is shared between trials)."""
        shutil.copytree(self.fixture(name), target, symlinks=True)
        return target

    def copy_cache(self, target: Path) -> Path:
        self.fixture("original")
        shutil.copytree(self.work / "fixtures" / "cache", target)
        return target


# ---- recipes ----
def train_argv(out, cache, *extra):
    return ["train", f"output_dir={out}", f"data.cache_dir={cache}", *SMALL, "train.epochs=2",
            "train.checkpoint_every=12", *extra]


def unlearn_argv(model, out, cache, *extra):
    return ["unlearn", f"model={model}", f"output_dir={out}", f"data.cache_dir={cache}", *DATA, *QUICK,
            "mixed_precision=no", *extra]


def classic_train_argv(out, cache, *extra):
    return ["train", "model.family=mf", f"output_dir={out}", f"data.cache_dir={cache}", *DATA, "model.dim=16",
            "train.epochs=15", "train.batch_size=128", *extra]


def classic_unlearn_argv(model, out, cache, *extra):
    return ["unlearn", f"model={model}", f"output_dir={out}", f"data.cache_dir={cache}", *DATA, *extra]


def bench_argv(out, cache, *extra):
    return ["benchmark", f"output_dir={out}", f"data.cache_dir={cache}", *SMALL, "train.max_steps=15",
            "methods=[finetune]", "finetune.epochs=0.3", "finetune.batch_size=8", *extra]


def evaluate_argv(model_dir, out, cache, *extra):
    return ["evaluate", f"output_dir={out}", f"eval.model_dir={model_dir}", f"data.cache_dir={cache}", *SMALL,
            "eval.splits=[valid]", *extra]


def data_argv(cache, *extra):
    return ["data", f"data.cache_dir={cache}", *DATA, *extra]


# ---- checks ----
def litter(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if LITTER.search(p.name)
                  and not p.name.endswith(".lock"))


def check_litter(root: Path, when: str) -> None:
    found = litter(root)
    if found:
        raise Fail("litter", f"{when}: {', '.join(found[:3])}")


def check_refused(run: Run, code: int = 2, accepted: str = "accepted", names: tuple[str, ...] = ()) -> None:
    """One line naming what is at fault, exit `code`."""
    if run.rc == code and run.one_line:
        if names and not any(name in run.last_line for name in names):
            raise Fail("message", f"{run.last_line[:150]} (expected one of {names})")
        return
    if run.rc == 0:
        raise Fail(accepted, f"exit 0: {run.out.strip().splitlines()[-1][:150] if run.out.strip() else ''}")
    if run.traceback:
        raise Fail("traceback", run.last_line[:150])
    if run.rc is not None and run.rc < 0:
        raise Fail("silent", f"died of signal {-run.rc}, {run.last_line[:100]}")
    raise Fail("exitcode" if run.rc != code else "silent", f"exit {run.rc}: {run.last_line[:150]}")


def check_fault_end(run: Run, action: str) -> None:
    """How a run must end after `action` hit it (check 1 of the docstring)."""
    if action == "SIGKILL":
        if run.rc != -9:
            raise Fail("exitcode", f"exit {run.rc} after SIGKILL")
    elif action in SIGNAL_EXIT:
        check_refused(run, SIGNAL_EXIT[action], accepted="swallowed")
    elif run.rc == 0:
        raise Fail("swallowed", "exit 0 after an injected error")


def check_original(harness: Harness, model_dir: Path, before: str) -> None:
    if not Path(model_dir).is_dir():
        raise Fail("original", f"{model_dir} is gone")
    if harness.model_hash(model_dir) != before:
        raise Fail("original", f"{model_dir} changed")


def tree_digest(folder: Path) -> str | None:
    import hashlib

    if not Path(folder).exists():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def same_bytes(a: Path, b: Path) -> bool:
    return Path(a).is_file() and Path(b).is_file() and Path(a).read_bytes() == Path(b).read_bytes()


def flip_bytes(path: Path, at: float = 0.6, count: int = 8) -> None:
    """Invert `count` bytes at a relative offset (past a safetensors/arrow header, in the data)."""
    data = bytearray(Path(path).read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))


# ---- trial registry ----
@dataclass
class Trial:
    kind: str
    item: str  # issue 18 item(s) the kind belongs to
    name: str
    run: object  # (harness, folder) -> None; raises Fail
    reason: str | None = None
    detail: str = ""
    seconds: float = 0.0


TRIALS: list[Trial] = []
KIND_ITEMS: dict[str, str] = {}


def trial(kind: str, item: str, name: str):
    def register(function):
        KIND_ITEMS.setdefault(kind, item)
        TRIALS.append(Trial(kind, item, name, function))
        return function

    return register


def add(kind: str, item: str, name: str, function) -> None:
    KIND_ITEMS.setdefault(kind, item)
    TRIALS.append(Trial(kind, item, name, function))


# ---- kills at named phases: training, unlearning (LLM, classic), benchmark ----
@dataclass
class Phase:
    name: str
    target: str | list[str]
    nth: int = 1
    when: str = "before"
    match: str | None = None


TRAIN_PHASES = [
    Phase("checkpoint write", "accelerate.Accelerator.save_state", 2, "after"),
    Phase("best-model save", "llmrec.llm.train.save_model", 1),
    Phase("epoch-1 checkpoint done", "llmrec.llm.train.save_checkpoint", 3, "after"),
    Phase("validation", "llmrec.llm.train.score_split", 2),
    Phase("backbone build", "llmrec.llm.train.build_tiny_backbone", 1),
]
UNLEARN_PHASES = [
    Phase("original hashed", "llmrec.unlearn.run.model_hash", 1, "after"),
    Phase("training step", "torch.optim.AdamW.step", 3),
    Phase("adapter save", "llmrec.unlearn.run.write_model_card", 1),
    Phase("original re-hashed", "llmrec.unlearn.run.model_hash", 2),
    Phase("manifest", "llmrec.unlearn.run.unlearning_manifest", 1, "after"),
]
CLASSIC_PHASES = [
    Phase("data prepared", "llmrec.classic.unlearn.prepare_work", 1, "after"),
    Phase("model save", "llmrec.classic.unlearn.save_classic", 1, "after"),
    Phase("manifest", "llmrec.classic.unlearn.unlearning_manifest", 1, "after"),
    Phase("manifest write", "llmrec.classic.unlearn.write_json", 1),
]
BENCH_PHASES = [
    Phase("reference training", "llmrec.bench.run.ensure_trained", 2),
    Phase("method run", "llmrec.bench.run.run_unlearning", 1),
    Phase("stage checkpoint", "llmrec.llm.train.save_checkpoint", 2),
    Phase("scoring", "llmrec.bench.run.score_model", 2),
    Phase("report", "llmrec.bench.run.plot_report", 1),
]


def spread(phases: list[Phase], offset: int) -> list[tuple[Phase, str]]:
    """Every (phase, signal) pair, ordered so that the first few differ in both phase and signal."""
    return [(phases[i % len(phases)], SIGNALS[(i // len(phases) + i + offset) % len(SIGNALS)])
            for i in range(len(phases) * len(SIGNALS))]


def kill_train(harness: Harness, d: Path, phase: Phase, action: str) -> None:
    reference = harness.fixture("original") / "model" / "model.safetensors"
    argv = train_argv(d / "run", harness.copy_cache(d / "cache"))
    fault = Fault(phase.target, action, phase.nth, phase.when, phase.match)
    run = harness.cli(argv, fault)
    check_fault_end(run, action)
    if (d / "run" / "train_metrics.json").exists():
        raise Fail("stale", "train_metrics.json written by a run that did not finish")
    if action != "SIGKILL":
        check_litter(d, "after the faulted run")
    rerun = harness.cli(argv)
    if rerun.rc != 0:
        raise Fail("rerun", f"exit {rerun.rc}: {rerun.tail()}")
    if not same_bytes(d / "run" / "model" / "model.safetensors", reference):
        raise Fail("weights", "resumed weights differ from an uninterrupted run's")
    if phase.match == "last" and "resumed" not in rerun.out:
        raise Fail("restarted", "the rerun did not resume from the checkpoint")
    check_litter(d, "after the rerun")


def kill_output_run(harness: Harness, d: Path, argv, original: Path, out: Path, fault: Fault, claims: str,
                    reference: Path | None, compare: str | None) -> None:
    """A verb that writes `out` from `original`: fault it, check nothing stale, rerun, compare with `reference`."""
    before, previous = harness.model_hash(original), tree_digest(out)
    run = harness.cli(argv, fault)
    check_fault_end(run, fault.action)
    check_original(harness, original, before)
    if previous is None and (out / claims).exists() and run.rc != 0:
        raise Fail("stale", f"{claims} written by a run that failed")
    if previous is not None and fault.action != "SIGKILL" and tree_digest(out) != previous:
        # A fault at the swap itself may be finished forward: then the output is this run's, complete.
        finished = fault.match is not None and (out / claims).is_file() and json.loads(
            (out / claims).read_text()).get("original_model_sha256") == before
        if not finished:
            raise Fail("stale", "the earlier output changed, though the run failed")
    if fault.action != "SIGKILL":
        check_litter(d, "after the faulted run")
    rerun = harness.cli(argv)
    if rerun.rc != 0:
        raise Fail("rerun", f"exit {rerun.rc}: {rerun.tail()}")
    if not (out / claims).is_file():
        raise Fail("rerun", f"no {claims} after the rerun")
    manifest = json.loads((out / claims).read_text())
    if manifest.get("original_model_sha256") != before:
        raise Fail("original", "the manifest names another original hash")
    if compare and not same_bytes(out / compare, reference / compare):
        raise Fail("weights", f"{compare} differs from an uninterrupted run's")
    check_litter(d, "after the rerun")
    check_original(harness, original, before)


UNLEARNING = {  # verb: (fixture original, argv, fixture of an uninterrupted output, file compared with it)
    "unlearn": ("original", lambda *a: unlearn_argv(*a), "unlearned", "adapter_model.safetensors"),
    "classic-unlearn": ("classic", lambda *a: classic_unlearn_argv(*a), "classic_unlearned", "model.safetensors"),
}


def kill_unlearning(harness: Harness, d: Path, verb: str, phase: Phase, action: str,
                    over_previous: bool = False) -> None:
    """Fault an unlearning run (into an earlier complete output when `over_previous`), then rerun it."""
    source, make, reference, compared = UNLEARNING[verb]
    original = harness.copy(source, d / "original") / "model"
    out = d / "unlearned"
    if over_previous:
        harness.copy(reference, out)
    argv = make(original, out, harness.copy_cache(d / "cache"))
    match = out.name if phase.match == "OUT" else phase.match
    kill_output_run(harness, d, argv, original, out, Fault(phase.target, action, phase.nth, phase.when, match),
                    "unlearning_manifest.json", harness.fixture(reference), compared)


def kill_bench(harness: Harness, d: Path, phase: Phase, action: str) -> None:
    out = d / "bench"
    argv = bench_argv(out, harness.copy_cache(d / "cache"))
    run = harness.cli(argv, Fault(phase.target, action, phase.nth, phase.when, phase.match))
    check_fault_end(run, action)
    if (out / "results.json").exists():
        raise Fail("stale", "results.json written by a run that failed")
    if action != "SIGKILL":
        check_litter(d, "after the faulted run")
    stages = {p.parent.name: tree_digest(p.parent / "model") for p in out.glob("*/bench_record.json")}
    rerun = harness.cli(argv)
    if rerun.rc != 0:
        raise Fail("rerun", f"exit {rerun.rc}: {rerun.tail()}")
    methods = [r["method"] for r in json.loads((out / "results.json").read_text())["records"]]
    if methods[:2] != ["original", "retrain"] or "finetune" not in methods:
        raise Fail("rerun", f"results.json rows {methods}")
    for stage, digest in stages.items():  # a finished stage is reused as it was, or retrained to the same bytes
        if tree_digest(out / stage / "model") != digest:
            raise Fail("stale", f"stage {stage} changed on reuse")
    check_litter(d, "after the rerun")


for _phase, _action in spread(TRAIN_PHASES, 0):
    add("kill: train", "8, 10", f"{_action} at {_phase.name}",
        lambda h, d, p=_phase, a=_action: kill_train(h, d, p, a))
for _phase, _action in spread(UNLEARN_PHASES, 2):
    add("kill: unlearn", "8, 10", f"{_action} at {_phase.name}",
        lambda h, d, p=_phase, a=_action: kill_unlearning(h, d, "unlearn", p, a))
for _phase, _action in spread(CLASSIC_PHASES, 1):
    add("kill: classic-unlearn", "8, 10", f"{_action} at {_phase.name}",
        lambda h, d, p=_phase, a=_action: kill_unlearning(h, d, "classic-unlearn", p, a))
for _phase, _action in spread(BENCH_PHASES, 0):
    add("kill: benchmark", "8, 10", f"{_action} at {_phase.name}",
        lambda h, d, p=_phase, a=_action: kill_bench(h, d, p, a))

# ---- item 8: a kill between atomic_dir's two renames ----
add("kill between renames", "8", "train: SIGKILL as checkpoints/last is swapped",
    lambda h, d: kill_train(h, d, Phase("last swap", COMMIT, 2, match="last"), "SIGKILL"))
add("kill between renames", "8", "unlearn over an earlier output: SIGKILL at the swap",
    lambda h, d: kill_unlearning(h, d, "unlearn", Phase("output swap", COMMIT, 1, match="OUT"), "SIGKILL", True))
add("kill between renames", "8", "classic-unlearn over an earlier output: SIGKILL at the swap",
    lambda h, d: kill_unlearning(h, d, "classic-unlearn", Phase("output swap", COMMIT, 1, match="OUT"), "SIGKILL", True))
add("kill between renames", "8", "unlearn over an earlier output: SIGTERM at the swap",
    lambda h, d: kill_unlearning(h, d, "unlearn", Phase("output swap", COMMIT, 1, match="OUT"), "SIGTERM", True))


# ---- item 1: output_dir on, above or inside the original ----
def output_over_original(harness: Harness, d: Path, verb: str, where: str) -> None:
    if verb == "unlearn":
        run_dir = harness.copy("original", d / "X")
        make = unlearn_argv
    else:
        run_dir = harness.copy("classic", d / "X")
        make = classic_unlearn_argv
    original = run_dir / "model"
    out = {"above": run_dir, "on": original, "inside": original / "sub"}[where]
    before = harness.model_hash(original)
    run = harness.cli(make(original, out, harness.copy_cache(d / "cache")))
    check_original(harness, original, before)
    check_refused(run, accepted="accepted", names=("output_dir",))
    check_litter(d, "after the refusal")


for _verb, _where in [("unlearn", "above"), ("classic-unlearn", "on"), ("unlearn", "on"), ("unlearn", "inside"),
                      ("classic-unlearn", "above")]:
    add("output_dir over the original", "1", f"{_verb} output_dir {_where} the original",
        lambda h, d, v=_verb, w=_where: output_over_original(h, d, v, w))


# ---- item 2: swapped answer ids, an adapter on another base ----
def swapped_ids(harness: Harness, d: Path, verb: str) -> None:
    model = harness.copy("original", d / "original") / "model"
    card_path = model / "llmrec_model.json"
    card = json.loads(card_path.read_text())
    card["answer"]["yes_id"], card["answer"]["no_id"] = card["answer"]["no_id"], card["answer"]["yes_id"]
    card_path.write_text(json.dumps(card, indent=2))
    cache = harness.copy_cache(d / "cache")
    argv = (evaluate_argv(model, d / "eval", cache) if verb == "evaluate"
            else unlearn_argv(model, d / "unlearned", cache))
    run = harness.cli(argv)
    check_refused(run, accepted="trusted", names=("llmrec_model.json", "answer", "yes", "id"))
    if (d / "unlearned" / "unlearning_manifest.json").exists():
        raise Fail("stale", "an unlearned output from swapped answers")


def adapter_on_changed_base(harness: Harness, d: Path) -> None:
    model = harness.copy("original", d / "original") / "model"
    cache = harness.copy_cache(d / "cache")
    made = harness.cli(unlearn_argv(model, d / "unlearned", cache))
    if made.rc != 0:
        raise Fail("setup", f"unlearn exit {made.rc}: {made.tail()}")
    backbone = d / "original" / "backbone" / "model.safetensors"  # same shapes, untrained: "retrained in place"
    shutil.copyfile(backbone, model / "model.safetensors")
    run = harness.cli(evaluate_argv(d / "unlearned", d / "eval", cache))
    check_refused(run, accepted="trusted", names=("sha256", "not the model", "original", "base"))


add("swapped answer ids, adapter base", "2", "evaluate with yes/no ids swapped in the card",
    lambda h, d: swapped_ids(h, d, "evaluate"))
add("swapped answer ids, adapter base", "2", "unlearn with yes/no ids swapped in the card",
    lambda h, d: swapped_ids(h, d, "unlearn"))
add("swapped answer ids, adapter base", "2", "evaluate an adapter whose original was retrained in place",
    adapter_on_changed_base)


# ---- item 3: other data than the original's ----
def other_data(harness: Harness, d: Path, verb: str) -> None:
    cache = harness.copy_cache(d / "cache")
    other = "data.synthetic.num_users=80"
    if verb == "classic-unlearn":
        model = harness.copy("classic", d / "classic") / "model"
        argv = classic_unlearn_argv(model, d / "out", cache, other)
    else:
        model = harness.copy("original", d / "original") / "model"
        argv = (unlearn_argv(model, d / "out", cache, other) if verb == "unlearn"
                else evaluate_argv(model, d / "out", cache, other))
    before = harness.model_hash(model)
    run = harness.cli(argv)
    check_original(harness, model, before)
    check_refused(run, accepted="trusted", names=("data", "fingerprint"))
    if (d / "out" / "unlearning_manifest.json").exists():
        raise Fail("stale", "a manifest for other data")


for _verb in ("unlearn", "evaluate", "classic-unlearn"):
    add("other data", "3", f"{_verb} on 80 users, original trained on 60", lambda h, d, v=_verb: other_data(h, d, v))


# ---- item 4: settings out of range ----
def bad_setting(harness: Harness, d: Path, verb: str, settings: list[str]) -> None:
    cache = harness.copy_cache(d / "cache")
    model = before = None
    if verb == "train":
        argv = train_argv(d / "out", cache, "train.max_steps=4", *settings)
    else:
        model = harness.copy("original", d / "original") / "model"
        before = harness.model_hash(model)
        argv = unlearn_argv(model, d / "out", cache, *settings)
    run = harness.cli(argv)
    if model is not None:
        check_original(harness, model, before)
    check_refused(run, accepted="accepted", names=(settings[-1].split("=")[0],))
    if (d / "out").exists():
        raise Fail("stale", f"{d / 'out'} written before the setting was refused")


for _verb, _settings in [("unlearn", ["e2urec.alpha=-5"]), ("train", ["data.min_history=-1"]),
                         ("unlearn", ["method=finetune", "finetune.epochs=0"]), ("train", ["train.learning_rate=0"]),
                         ("train", ["train.batch_size=0"]), ("unlearn", ["e2urec.remember_weight=1.5"])]:
    add("bad settings", "4", f"{_verb} {' '.join(_settings)}", lambda h, d, v=_verb, s=_settings: bad_setting(h, d, v, s))


# ---- items 5 and 10: damaged files ----
def damaged_checkpoint(harness: Harness, d: Path, how: str) -> None:
    run_dir = harness.copy("original", d / "run")
    last = run_dir / "checkpoints" / "last"
    if how == "weights":
        flip_bytes(last / "model.safetensors")
    else:
        state = json.loads((last / "trainer_state.json").read_text())
        state["global_step"] += 5
        (last / "trainer_state.json").write_text(json.dumps(state))
    model_before = tree_digest(run_dir / "model")
    run = harness.cli(train_argv(run_dir, harness.copy_cache(d / "cache")))
    check_refused(run, accepted="trusted", names=("resume=false",))
    if tree_digest(run_dir / "model") != model_before:
        raise Fail("stale", "model/ rewritten from a damaged checkpoint")


def damaged_cache(harness: Harness, d: Path, how: str) -> None:
    cache = harness.copy_cache(d / "cache")
    folder = next(cache.glob("samples-*"))
    if how == "flip":
        flip_bytes(folder / "train" / "data-00000-of-00001.arrow", at=0.5, count=64)
    elif how == "truncate":
        arrow = folder / "valid" / "data-00000-of-00001.arrow"
        os.truncate(arrow, arrow.stat().st_size // 3)
    else:
        (folder / "metadata.json").write_text("{\"format_")
    for attempt in ("first run", "second run"):  # damage must be mended (or refused) every time, not once
        run = harness.cli(data_argv(cache), observe=True)
        if run.rc != 0:  # a refusal must name the cache
            check_refused(run, names=("cache", str(folder)))
            continue
        if run.observed("rows") != [harness.pristine("rows")]:
            raise Fail("trusted", f"{attempt}: the damaged cache's rows were used")
    check_litter(d, "after the runs")


def damaged_model(harness: Harness, d: Path, how: str) -> None:
    model = harness.copy("original", d / "original") / "model"
    if how == "truncated weights":
        os.truncate(model / "model.safetensors", (model / "model.safetensors").stat().st_size // 2)
        names = ("model.safetensors",)
    elif how == "damaged card":
        (model / "llmrec_model.json").write_text((model / "llmrec_model.json").read_text()[:40])
        names = ("llmrec_model.json",)
    else:
        model = d / "nowhere" / "model"
        names = ("does not exist", "no such", "not found", "missing")
    run = harness.cli(evaluate_argv(model, d / "eval", harness.copy_cache(d / "cache")))
    check_refused(run, accepted="trusted", names=names)


for _how in ("weights", "global_step"):
    add("damaged checkpoint", "5", f"train resumes a checkpoint with edited {_how}",
        lambda h, d, w=_how: damaged_checkpoint(h, d, w))
for _how in ("flip", "truncate", "metadata"):
    add("damaged data cache", "5", f"data cache: {_how}", lambda h, d, w=_how: damaged_cache(h, d, w))
for _how in ("truncated weights", "damaged card", "missing folder"):
    add("damaged model files", "10", f"evaluate a model with {_how}", lambda h, d, w=_how: damaged_model(h, d, w))


def damaged_bench_stage(harness: Harness, d: Path, how: str) -> None:
    """A finished benchmark whose stored stage is damaged: the rerun must train it again (to the same weights,
    the training is seeded) or refuse in one line, never score the damaged model."""
    out = harness.copy("bench", d / "bench")
    stage = out / ("original" if how == "flipped weights" else "retrain") / "model"
    weights = (stage / "model.safetensors").read_bytes()
    if how == "flipped weights":
        flip_bytes(stage / "model.safetensors")
    else:
        (stage / "llmrec_model.json").write_text((stage / "llmrec_model.json").read_text()[:40])
    run = harness.cli(bench_argv(out, harness.copy_cache(d / "cache")))
    if run.rc != 0:
        check_refused(run, names=(str(stage), "llmrec_model.json", "model.safetensors"))
        return
    try:
        json.loads((stage / "llmrec_model.json").read_text())
    except ValueError:
        raise Fail("trusted", f"the {stage.parent.name} stage with a damaged card was reused") from None
    if (stage / "model.safetensors").read_bytes() != weights:
        raise Fail("trusted", f"the damaged {stage.parent.name} stage was reused")
    check_litter(d, "after the rerun")


for _how in ("flipped weights", "damaged card"):
    add("damaged benchmark stage", "10", f"benchmark rerun over a stage with {_how}",
        lambda h, d, w=_how: damaged_bench_stage(h, d, w))


# ---- item 6: config.yaml describes model/ ----
def config_after_kill(harness: Harness, d: Path, retrain: bool) -> None:
    run_dir = harness.copy("original", d / "X")
    config_before = (run_dir / "config.yaml").read_bytes()
    cache = harness.copy_cache(d / "cache")
    argv = train_argv(run_dir, cache, "train.resume=false", "train.epochs=4", "train.learning_rate=0.02")
    run = harness.cli(argv, Fault("llmrec.llm.train.save_checkpoint", "SIGKILL", 1))
    check_fault_end(run, "SIGKILL")
    if not retrain:
        if (run_dir / "config.yaml").read_bytes() != config_before:
            raise Fail("config", "config.yaml no longer describes model/ after a killed run")
        return
    made = harness.cli(unlearn_argv(run_dir / "model", d / "retrained", cache, "method=retrain"))
    if made.rc != 0:
        raise Fail("rerun", f"retrain exit {made.rc}: {made.tail()}")
    epochs = json.loads((d / "retrained" / "unlearning_manifest.json").read_text())["steps"].get("epochs")
    if epochs != 2:
        raise Fail("recipe", f"retrained {epochs} epochs, the original was trained 2")


add("config.yaml", "6", "a killed train.resume=false run keeps config.yaml", lambda h, d: config_after_kill(h, d, False))
add("config.yaml", "6", "retrain after a killed run uses the original's recipe",
    lambda h, d: config_after_kill(h, d, True))


# ---- items 7 and 8: concurrent writers ----
def concurrent_cache(harness: Harness, d: Path, builders: int) -> None:
    cache = d / "cache"
    started = [harness.start(data_argv(cache)) for _ in range(builders)]
    runs = [harness.finish(s) for s in started]
    crashed = [r for r in runs if r.rc != 0]
    if crashed:
        raise Fail("crash", f"{len(crashed)} of {builders} builders: {crashed[0].tail()}")
    run = harness.cli(data_argv(cache), observe=True)
    if run.rc != 0:
        raise Fail("rerun", f"exit {run.rc}: {run.tail()}")
    if run.observed("rows") != [harness.pristine("rows")]:
        raise Fail("trusted", "the cache the builders left holds other rows")
    check_litter(d, "after the builders")


def concurrent_outputs(harness: Harness, d: Path, verb: str) -> None:
    cache = harness.copy_cache(d / "cache")
    if verb == "unlearn":
        model = harness.copy("original", d / "original") / "model"
        make, stall = unlearn_argv, "llmrec.unlearn.run.unlearning_manifest"
    else:
        model = harness.copy("classic", d / "classic") / "model"
        make, stall = classic_unlearn_argv, "llmrec.classic.unlearn.unlearning_manifest"
    out = d / "out"
    before = harness.model_hash(model)
    started = [harness.start(make(model, out, cache, f"forget.seed={seed}"), Fault(stall, "sleep", seconds=4),
                             cwd=d) for seed in (1, 2)]
    runs = [harness.finish(s) for s in started]
    check_original(harness, model, before)
    winners = [r for r in runs if r.rc == 0]
    if len(winners) == 2:
        raise Fail("bothwon", "both runs into one output_dir exited 0")
    if not winners:
        raise Fail("crash", f"neither run succeeded: {runs[0].tail()} / {runs[1].tail()}")
    loser = next(r for r in runs if r.rc != 0)
    check_refused(loser, names=("output_dir", "lock", "busy", "another"))
    manifest = json.loads((out / "unlearning_manifest.json").read_text())
    if manifest["recipe"]["forget"]["seed"] != int(winners[0].argv[-1].split("=")[1]):
        raise Fail("stale", "the output is not the successful run's")
    check_litter(d, "after both runs")


add("concurrent writers", "7", "3 builders of one data cache", lambda h, d: concurrent_cache(h, d, 3))
add("concurrent writers", "8", "two unlearns into one output_dir", lambda h, d: concurrent_outputs(h, d, "unlearn"))
add("concurrent writers", "7", "4 builders of one data cache", lambda h, d: concurrent_cache(h, d, 4))
add("concurrent writers", "8", "two classic-unlearns into one output_dir",
    lambda h, d: concurrent_outputs(h, d, "classic-unlearn"))


# ---- item 9: SISA outputs never share inodes with the original ----
def sisa_inodes(harness: Harness, d: Path, edit: bool) -> None:
    run_dir = harness.copy("sisa", d / "sisa")
    model = run_dir / "model"
    spec = json.loads((model / "sisa.json").read_text())
    users = d / "forget.txt"
    users.write_text(spec["shards"][0]["users"][0] + "\n")  # one user: the other shard stays untouched
    before = harness.model_hash(model)
    run = harness.cli(unlearn_argv(model, d / "out", harness.copy_cache(d / "cache"), "method=sisa",
                                   f"forget.users={users}"))
    if run.rc != 0:
        raise Fail("rerun", f"sisa exit {run.rc}: {run.tail()}")
    inodes = {(p.stat().st_dev, p.stat().st_ino) for p in run_dir.rglob("*") if p.is_file()}
    shared = [p for p in (d / "out").rglob("*") if p.is_file() and (p.stat().st_dev, p.stat().st_ino) in inodes]
    if not edit:
        if shared:
            raise Fail("hardlink", f"{len(shared)} output files share an inode with the original's")
        return
    for path in (d / "out").rglob("model.safetensors"):
        with open(path, "r+b") as handle:  # an in-place edit of the output
            handle.seek(-8, os.SEEK_END)
            handle.write(b"\xff" * 8)
    check_original(harness, model, before)


add("SISA shard copies", "9", "no output file shares an inode with the original", lambda h, d: sisa_inodes(h, d, False))
add("SISA shard copies", "9", "editing the output in place leaves the original's hash",
    lambda h, d: sisa_inodes(h, d, True))


# ---- item 10: disk full ----
def disk_full(harness: Harness, d: Path, verb: str, target: str, nth: int) -> None:
    cache = harness.copy_cache(d / "cache")
    fault = Fault(target, "diskfull", nth)
    if verb == "train":
        run = harness.cli(train_argv(d / "out", cache), fault)
        model, before, claims = None, None, d / "out" / "train_metrics.json"
    else:
        name, make = ("original", unlearn_argv) if verb == "unlearn" else ("classic", classic_unlearn_argv)
        model = harness.copy(name, d / "original") / "model"
        before = harness.model_hash(model)
        run = harness.cli(make(model, d / "out", cache), fault)
        claims = d / "out" / "unlearning_manifest.json"
    if model is not None:
        check_original(harness, model, before)
    check_refused(run, accepted="swallowed", names=("space", "disk", "full", "write"))
    if claims.exists():
        raise Fail("stale", f"{claims.name} after a failed write")
    check_litter(d, "after the failed write")


add("disk full", "10", "train: torch.save of the first checkpoint", lambda h, d: disk_full(h, d, "train", "torch.save", 1))
add("disk full", "10", "unlearn: safetensors write of the adapter",
    lambda h, d: disk_full(h, d, "unlearn", "safetensors.torch.serialize_file", 1))
add("disk full", "10", "classic-unlearn: writing config.yaml / manifest",
    lambda h, d: disk_full(h, d, "classic-unlearn", "pathlib.Path.write_text", 1))
add("disk full", "10", "train: safetensors write of the best model",
    lambda h, d: disk_full(h, d, "train", "safetensors.torch.serialize_file", 2))


# ---- item 10: bad input files ----
def write_ml100k(folder: Path, bad_rating: bool) -> None:
    rng = random.Random(0)
    folder.mkdir(parents=True)
    (folder / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join("0" * 19) + "\n"
                                           for i in range(1, 51)))
    rows = [f"{u}\t{rng.randint(1, 50)}\t{rng.randint(1, 5)}\t{880000000 + 1000 * u + 10 * k}"
            for u in range(1, 41) for k in range(15)]
    if bad_rating:
        rows[100] = rows[100].split("\t")[0] + "\t7\t1000\t" + rows[100].split("\t")[3]
    (folder / "u.data").write_text("\n".join(rows) + "\n")


def bad_input(harness: Harness, d: Path, how: str) -> None:
    cache = d / "cache"
    if how in ("BOM", "NUL"):
        cache = harness.copy_cache(d / "cache")
        users = harness.pristine("forget_users")[:2]
        path = d / "forget.txt"
        path.write_bytes(("\ufeff" if how == "BOM" else "").encode() + (
            users[0] + ("\0" if how == "NUL" else "") + "\n" + users[1] + "\n").encode())
        run = harness.cli(data_argv(cache, f"forget.users={path}"), observe=True)
        if run.rc == 0:
            if run.observed("forget_users") != [sorted(users)]:
                raise Fail("trusted", f"forgot {run.observed('forget_users')}, asked {users}")
            return
        check_refused(run, names=(str(path), "forget.txt"))
        if "unknown user" in run.last_line:
            raise Fail("message", run.last_line[:150])
        return
    folder = d / "ml100k"
    write_ml100k(folder, bad_rating=True)
    run = harness.cli(["data", f"data.cache_dir={cache}", f"data.path={folder}", "data.format=ml-100k"])
    check_refused(run, accepted="accepted", names=("u.data",))


for _how in ("BOM", "NUL", "ML-100K rating 1000"):
    add("bad input files", "10", f"{_how} in the input", lambda h, d, w=_how: bad_input(h, d, w))


# ---- item 11: threads chosen, printed and recorded ----
def threads(harness: Harness, d: Path, verb: str) -> None:
    cache = harness.copy_cache(d / "cache")
    if verb == "train":
        argv, record = train_argv(d / "out", cache, "train.epochs=1"), d / "out" / "train_metrics.json"
    else:
        model = harness.copy("original", d / "original") / "model"
        argv, record = unlearn_argv(model, d / "out", cache), d / "out" / "unlearning_manifest.json"
    run = harness.cli(argv, cpus=1, env={"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None})
    if run.rc != 0:
        raise Fail("rerun", f"exit {run.rc}: {run.tail()}")
    if run.observed("threads") != [1]:
        raise Fail("threads", f"torch ran {run.observed('threads')} threads on 1 free core")
    if not re.search(r"threads?[ :=]+1\b|\b1 threads?\b", run.out, re.IGNORECASE):
        raise Fail("unrecorded", "the run header does not say it runs 1 thread")
    if not any("thread" in key.lower() and value == 1 for key, value in json_items(json.loads(record.read_text()))):
        raise Fail("unrecorded", f"{record.name} does not record the thread count")


def json_items(tree):
    """Every (key, value) pair of a JSON tree, at any depth."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key, value
            yield from json_items(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from json_items(value)


add("threads", "11", "train on one free core", lambda h, d: threads(h, d, "train"))
add("threads", "11", "unlearn on one free core", lambda h, d: threads(h, d, "unlearn"))


# ---- running the matrix ----
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def run_trial(harness: Harness, trial_: Trial, folder: Path) -> Trial:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    try:
        trial_.run(harness, folder)
        trial_.reason, trial_.detail = None, ""
    except Fail as fail:
        trial_.reason, trial_.detail = fail.reason, fail.detail
    except Exception as exc:  # a harness bug must not hide the other trials
        trial_.reason, trial_.detail = "harness", f"{type(exc).__name__}: {exc}"
    trial_.seconds = time.perf_counter() - started
    return trial_


def select(kinds: list[str] | None, per_kind: int) -> list[Trial]:
    chosen, counts = [], Counter()
    for trial_ in TRIALS:
        if kinds and not any(k in trial_.kind for k in kinds):
            continue
        if per_kind and counts[trial_.kind] >= per_kind:
            continue
        counts[trial_.kind] += 1
        chosen.append(trial_)
    return chosen


def table(trials: list[Trial]) -> str:
    lines = ["| kind | item | trials | ended cleanly | failed (reason) |", "|---|---|---|---|---|"]
    for kind in dict.fromkeys(t.kind for t in trials):
        group = [t for t in trials if t.kind == kind]
        failed = Counter(t.reason for t in group if t.reason)
        reasons = ", ".join(f"{n} {reason}" for reason, n in failed.most_common())
        lines.append(f"| {kind} | {KIND_ITEMS[kind]} | {len(group)} | {len(group) - sum(failed.values())} | "
                     f"{reasons or '0'} |")
    total = sum(1 for t in trials if not t.reason)
    lines.append(f"| **all** | | {len(trials)} | {total} | {len(trials) - total} |")
    return "\n".join(lines)


def details(trials: list[Trial]) -> str:
    return "\n".join(f"- {t.kind} / {t.name}: {'clean' if not t.reason else t.reason} ({t.seconds:.0f}s)"
                     + (f" — {t.detail}" if t.detail else "") for t in trials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="llmrec checkout to run (PYTHONPATH of every trial)")
    parser.add_argument("--per-kind", type=int, default=2, help="trials per kind (0: every trial)")
    parser.add_argument("--kinds", default="", help="comma-separated substrings of the kinds to run")
    parser.add_argument("--work", default=None, help="folder for fixtures and trials (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one CLI run may take")
    parser.add_argument("--list", action="store_true", help="list the trials and exit")
    parser.add_argument("--results", default=None, help="append each trial's outcome to this JSON-lines file")
    parser.add_argument("--report", nargs="+", default=None, metavar="RESULTS",
                        help="print the table of earlier --results files (later lines win) and exit")
    args = parser.parse_args(argv)
    if args.report:
        done = {}
        for path in args.report:
            for line in Path(path).read_text().splitlines():
                record = json.loads(line)
                done[(record["kind"], record["name"])] = Trial(**record, run=None)
        trials = sorted(done.values(), key=lambda t: list(KIND_ITEMS).index(t.kind) if t.kind in KIND_ITEMS else 99)
        print(table(trials) + "\n\n" + details(trials))
        return 0
    chosen = select([k for k in args.kinds.split(",") if k], args.per_kind)
    if args.list:
        print("\n".join(f"{t.kind} | {t.item} | {t.name}" for t in chosen))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="fault-trials-"))
    harness = Harness(Path(args.repo), work, timeout=args.timeout)
    started = time.perf_counter()
    try:
        for n, trial_ in enumerate(chosen, start=1):
            run_trial(harness, trial_, work / "trials" / f"{n:03d}-{slug(trial_.kind)}-{slug(trial_.name)}")
            print(f"[{n}/{len(chosen)}] {trial_.kind} / {trial_.name}: {trial_.reason or 'clean'} "
                  f"({trial_.seconds:.0f}s) {trial_.detail}", file=sys.stderr, flush=True)
            if args.results:
                with open(args.results, "a") as handle:
                    handle.write(json.dumps({key: getattr(trial_, key) for key in
                                             ("kind", "item", "name", "reason", "detail", "seconds")}) + "\n")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"Fault trials against {harness.repo} ({len(chosen)} trials, {time.perf_counter() - started:.0f}s)\n")
    print(table(chosen))
    print()
    print(details(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())

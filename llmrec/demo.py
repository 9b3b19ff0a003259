"""`python -m llmrec.demo [key=value ...]` (what `scripts/demo.sh` runs): the main job end to end, on the embedded
synthetic data, as the `llmrec` commands a user would type — each printed before it runs:

1. train the original recommender (`llmrec train recipes/demo/train.yaml`);
2. choose the users to forget and write them to a file, one id a line (`forget_users.txt`);
3. unlearn them with E2URec (`llmrec unlearn recipes/demo/unlearn.yaml forget.users=FILE`);
4. retrain without them, the reference an unlearned model is judged against and timed against (the same recipe with
   `method=retrain`);
5. evaluate the original, the retrain and the unlearned model (`llmrec evaluate`): test and forget AUC, and for the
   unlearned model the forgetting metrics against the retrain and the membership-inference audit (forget users
   against holdout users no model trained on, calibrated by the retrain);
6. print one short table (also written to `summary.md`): utility before/after, the forgetting verdict, unlearning
   time against the retrain's, where each artefact lies, and what to run next.

Each stage is skipped when its record (`demo_stage.json` in its folder) shows the same fingerprint — the stage's
resolved recipe and the bytes of every model and file it reads — and its outputs still hash to what it wrote, so a
second run only re-prints the table. A stage that fails stops the demo with its exit code; nothing of a failed stage
is kept as reusable (its record is written only after it succeeded).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmrec.config import THREADS_HELP, MixedPrecision, load_recipe, option, to_dict
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import write_json, write_text

RECIPES = Path("recipes/demo")
STAGE_RECORD = "demo_stage.json"


@dataclass
class DemoConfig:
    """The demo's own settings (`python -m llmrec.demo key=value ...`); the models' settings are in recipes/demo/."""

    output_dir: str = option("runs/demo", "where every stage writes its folder, and summary.md")
    method: str = option("e2urec", "the unlearning method (see llmrec.unlearn.registry); its settings come from "
                         "recipes/demo/unlearn.yaml")
    forget_users: int = option(30, "how many training users to forget (drawn with forget.seed of the recipe)", ge=10)
    mixed_precision: MixedPrecision = option("auto", "auto | no | bf16 | fp16 for every stage")
    threads: int = option(0, THREADS_HELP, ge=0)
    recipes: str = option(str(RECIPES), "the folder holding train.yaml and unlearn.yaml")
    level: Literal["user", "sample"] = option("sample", "the audit's headline level (30 forget users are too few "
                                              "for a user-level AUC to resolve a ±0.05 band)")


@dataclass
class Stage:
    """One `llmrec` command: its verb and arguments, the folder it writes, the models and files it reads."""

    name: str
    argv: list[str]
    out: Path
    reads: list[Path]


def tree_hash(path: Path, skip: str = STAGE_RECORD) -> str:
    """`store.directory_hash` of a folder (`skip` left out), or the sha256 of a file's bytes.
    Raises OSError when `path` is missing or unreadable."""
    from llmrec.store import directory_hash

    path = Path(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing")
    return directory_hash(path, exclude=(skip,))


def stage_fingerprint(stage: Stage) -> str:
    """What decides a stage's outputs, as 16 hex digits: its verb, its resolved recipe (the recipe file's contents
    with the overrides applied, output folder and other methods' sections left out, `mixed_precision` as this machine
    resolves it), the data's sha256 (`data_fingerprint`) and the bytes of what it reads."""
    from llmrec.cli import verb_recipe
    from llmrec.data.samples import data_fingerprint
    from llmrec.llm.accel import resolve_mixed_precision

    verb, recipe_path, *overrides = stage.argv
    recipe = load_recipe(recipe_path, overrides, cls=verb_recipe(verb))
    resolved = to_dict(recipe)
    resolved.pop("output_dir", None)
    if isinstance(resolved.get("model"), dict) and resolved["model"].get("family") == "llm":
        del resolved["model"]["family"]  # always llm here: fingerprints from before the key existed stay valid
    # what the run computes with on this machine ('auto' may mean bf16 here and fp32 there) and the data's bytes
    section = resolved["train"] if "train" in resolved else resolved
    section["mixed_precision"] = resolve_mixed_precision(section["mixed_precision"])
    resolved["data_sha256"] = data_fingerprint(recipe.data)["sha256"]
    if verb == "unlearn":  # other methods' sections do not shape this one's output (a retrain ignores e2urec.alpha)
        from llmrec.unlearn.registry import method_names

        for method in method_names():
            if method != resolved["method"]:
                resolved.pop(method, None)
    payload = {"verb": verb, "recipe": resolved, "reads": {str(p): tree_hash(p) for p in stage.reads}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reusable(stage: Stage, fingerprint: str) -> dict | None:
    """The stage's record when its folder holds a finished run with this fingerprint and unchanged outputs."""
    try:
        record = json.loads((stage.out / STAGE_RECORD).read_text())
        if record["fingerprint"] == fingerprint and record["outputs_sha256"] == tree_hash(stage.out):
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def run_stage(stage: Stage) -> dict:
    """Run `llmrec <argv> output_dir=<out>` in this process unless `reusable`; returns its record (wall seconds,
    reused or not). Raises LlmrecError with the command's exit code when it fails."""
    from llmrec.cli import main

    fingerprint = stage_fingerprint(stage)
    record = reusable(stage, fingerprint)
    command = "llmrec " + " ".join(shlex.quote(a) for a in [*stage.argv, f"output_dir={stage.out}"])
    if record is not None:
        print(f"\n[{stage.name}] reusing {stage.out} (fingerprint {fingerprint}, outputs unchanged; "
              f"it took {record['seconds']:.0f} s): {command}", flush=True)
        return {**record, "reused": True}
    print(f"\n[{stage.name}] $ {command}", flush=True)
    shutil.rmtree(stage.out, ignore_errors=True)  # another fingerprint or a damaged run: start clean
    started = time.perf_counter()
    code = main([*stage.argv, f"output_dir={stage.out}"])
    seconds = time.perf_counter() - started
    if code != 0:
        raise StageFailed(stage.name, code)
    record = {"fingerprint": fingerprint, "command": command, "seconds": seconds,
              "outputs_sha256": tree_hash(stage.out)}
    write_json(stage.out / STAGE_RECORD, record)
    return {**record, "reused": False}


class StageFailed(LlmrecError):
    def __init__(self, stage: str, code: int):
        super().__init__(f"the demo stopped at its '{stage}' stage (exit code {code}; its own error line is above)")
        self.code = code


def choose_forget_users(train_recipe: Path, overrides: list[str], count: int) -> list[str]:
    """`count` training users (never holdout users), drawn with the recipe's forget.seed, sorted.
    Raises ConfigError when the data have fewer training users."""
    import numpy as np

    from llmrec.data.samples import holdout_users, prepare_splits
    from llmrec.eval.audit import MIN_PER_SIDE

    recipe = load_recipe(train_recipe, overrides)
    splits = prepare_splits(recipe.data, recipe.forget)
    pool = sorted(set(splits["train"]["user_id"]) - holdout_users(splits))
    if count > len(pool) // 2:
        raise ConfigError(f"forget_users={count}: the demo data have {len(pool)} training users; forget at most half")
    if len(holdout_users(splits)) < MIN_PER_SIDE:
        raise ConfigError(f"{train_recipe}: the audit needs at least {MIN_PER_SIDE} holdout users, the data give "
                          f"{len(holdout_users(splits))}: raise data.holdout")
    chosen = np.random.default_rng(recipe.forget.seed).choice(len(pool), size=count, replace=False)
    return sorted((pool[i] for i in chosen), key=lambda user: (not user.isdigit(), int(user) if user.isdigit() else 0,
                                                                user))


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "evaluation.json").read_text())


def summary(out: Path, config: DemoConfig, records: dict, users: list[str]) -> str:
    """The demo's table in Markdown: utility before/after, forgetting, verdict, time, artefacts, next steps."""
    from llmrec.llm.accel import resolve_mixed_precision

    original, retrain, unlearned = (_metrics(out / "evaluation" / name) for name in ("original", "retrain",
                                                                                    config.method))
    forgetting = unlearned["metrics"]["forgetting"]
    audit = unlearned["audit"]
    verdict, models = audit["verdicts"][config.level], audit["models"]
    manifests = {name: json.loads((out / name / "unlearning_manifest.json").read_text())
                 for name in (config.method, "retrain")}
    seconds = {name: manifest["timings"]["wall_seconds"] for name, manifest in manifests.items()}
    precision = resolve_mixed_precision(config.mixed_precision)
    precision = "no (fp32)" if precision == "no" else precision

    def auc(metrics, split):
        return f"{metrics['metrics'][split]['auc']:.4f}"

    rows = [
        ("test AUC (utility)", auc(original, "test"), auc(unlearned, "test"), auc(retrain, "test")),
        ("forget-set AUC", auc(original, "forget"), auc(unlearned, "forget"), auc(retrain, "forget")),
        (f"audit AUC, {config.level} level (0.5: like never-seen users)",
         _cell(models["original"][config.level]["auc"]), _cell(models["unlearned"][config.level]["auc"]),
         "(the attack's calibration)"),
        ("wall time", f"{records['train']['seconds']:.0f} s (training)", f"{seconds[config.method]:.0f} s",
         f"{seconds['retrain']:.0f} s"),
    ]
    table = "\n".join(["| | original | " + f"{config.method} (unlearned) | retrain |", "|---|---|---|---|",
                       *(f"| {' | '.join(row)} |" for row in rows)])
    sd = models["unlearned"][config.level].get("auc_null_sd")
    verdict = (f"**forgotten?** {verdict['verdict']}" + (f" — {verdict['reason']}" if verdict.get("reason") else "")
               + (f" (the audit AUC's noise: null SD {sd:.4f})" if sd is not None else ""))
    lines = [
        f"# llmrec demo: forgetting {len(users)} users", "",
        f"Users forgotten ({out / 'forget_users.txt'}): {', '.join(users)}", "",
        table, "",
        verdict, "",
        f"Forget-gap closure (AUC): {_cell(forgetting.get('forget_gap_closure_auc'))} (0 = the original's forget AUC, "
        f"1 = the retrain's, above 1 = past it); JS divergence to the retrain on the forget set: "
        f"{_cell(forgetting.get('js_divergence'))} "
        f"(the original's: {_cell(forgetting.get('original_js_divergence'))}).", "",
        f"Unlearning took {seconds[config.method]:.0f} s, {seconds[config.method] / seconds['retrain']:.2f}x the "
        f"retrain's {seconds['retrain']:.0f} s (mixed precision: {precision}).", "",
        "Artefacts:", "",
        f"- original model: {out / 'original' / 'model'}",
        f"- unlearned model, with its unlearning_manifest.json: {out / config.method}",
        f"- retrain: {out / 'retrain'}",
        f"- evaluations and audit (evaluation.md, audit.md, audit.png): {out / 'evaluation'}",
        f"- this summary: {out / 'summary.md'}", "",
        "Next:", "",
        "- real data: llmrec train recipes/train/ml100k.yaml data.path=../shared/data/ml-100k (README, 'The three "
        "jobs')",
        "- another method: bash scripts/demo.sh method=neggrad (or bad_t, bad_teacher, finetune)",
        "- every method side by side: llmrec benchmark recipes/bench/demo.yaml",
    ]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    """4 decimals; a small nonzero value in 3 significant digits instead of 0.0000."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def stages(config: DemoConfig, out: Path, forget_file: Path) -> list[Stage]:
    train_yaml, unlearn_yaml = str(Path(config.recipes) / "train.yaml"), str(Path(config.recipes) / "unlearn.yaml")
    run = [f"threads={config.threads}"]
    train_run = [f"train.mixed_precision={config.mixed_precision}", *run]
    unlearn_run = [f"mixed_precision={config.mixed_precision}", *run, f"forget.users={forget_file}",
                   f"model={out / 'original' / 'model'}"]
    evaluation = out / "evaluation"

    def evaluate(name: str, model: Path, *extra: str, reads: tuple[Path, ...] = ()) -> Stage:
        return Stage(f"evaluate {name}", ["evaluate", train_yaml, *train_run, f"eval.model_dir={model}",
                                          f"forget.users={forget_file}", "eval.splits=[test,forget]", *extra],
                     evaluation / name, [model, forget_file, *reads])

    retrain_model = out / "retrain"  # method=retrain writes the recommender itself into its output_dir
    return [
        Stage("unlearn", ["unlearn", unlearn_yaml, *unlearn_run, f"method={config.method}"], out / config.method,
              [out / "original" / "model", forget_file]),
        Stage("retrain", ["unlearn", unlearn_yaml, *unlearn_run, "method=retrain"], out / "retrain",
              [out / "original" / "model", forget_file]),
        evaluate("original", out / "original" / "model"),
        evaluate("retrain", retrain_model),
        evaluate(config.method, out / config.method, f"eval.reference_dir={retrain_model}",
                 f"audit.reference={retrain_model}", f"audit.level={config.level}", reads=(retrain_model,)),
    ]


MARK = "llmrec_demo.json"  # claims output_dir for the demo before its first stage writes anything
NOT_DEMO_METHODS = {"retrain": "is the demo's reference, trained beside every method",
                    "sisa": "needs an original trained as a SISA ensemble (llmrec train ... train.shards=N)",
                    "apa": "needs an original trained as an APA ensemble (llmrec train ... train.shards=N "
                           "train.partition=apa)"}


def check_settings(config: DemoConfig) -> None:
    """Everything that can be checked before anything is trained or written; ConfigError naming the problem.

    The method must be a registered one the demo can run (its name is also a folder name: `method=..` must never
    reach the file system); the two recipes must exist and describe the same data; output_dir must be a folder that
    is empty, new, or a demo's."""
    from llmrec.data.samples import data_fingerprint
    from llmrec.unlearn.registry import method_names
    from llmrec.unlearn.run import UnlearnRecipe

    known = method_names("llm")
    if config.method not in known:
        raise ConfigError(f"method={config.method}: not an unlearning method for an LLM (known: {', '.join(known)})")
    if config.method in NOT_DEMO_METHODS:
        raise ConfigError(f"method={config.method} {NOT_DEMO_METHODS[config.method]}; the demo runs "
                          f"{', '.join(sorted(set(known) - set(NOT_DEMO_METHODS)))}")
    folder = Path(config.recipes)
    train = load_recipe(folder / "train.yaml")
    unlearn = load_recipe(folder / "unlearn.yaml", cls=UnlearnRecipe)
    if data_fingerprint(train.data)["sha256"] != data_fingerprint(unlearn.data)["sha256"]:
        raise ConfigError(f"{folder / 'unlearn.yaml'}: its data section describes other data than "
                          f"{folder / 'train.yaml'}'s; give both the same data section")
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir={out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).is_file():
        raise ConfigError(f"output_dir={out} holds files but is not a demo's folder (no {MARK}); the demo replaces "
                          "its stages' folders, so give an empty or new folder")


def run_demo(config: DemoConfig) -> str:
    """Run every stage (reusing what is unchanged) and return the summary it also writes to summary.md."""
    from llmrec.progress import configure_library_bars
    from llmrec.quiet import silence_library_warnings

    silence_library_warnings()
    configure_library_bars()  # choosing the forget users may build the data before any llmrec command runs
    out = Path(config.output_dir)
    train_yaml = str(Path(config.recipes) / "train.yaml")
    train_run = [f"train.mixed_precision={config.mixed_precision}", f"threads={config.threads}"]
    users = choose_forget_users(Path(train_yaml), [], config.forget_users)  # before anything is trained or written
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARK, {"demo": "python -m llmrec.demo", "settings": to_dict(config)})
    (out / "summary.md").unlink(missing_ok=True)  # a run that stops early leaves no summary of another run
    records = {"train": run_stage(Stage("train", ["train", train_yaml, *train_run], out / "original", []))}
    forget_file = out / "forget_users.txt"
    text = "\n".join(users) + "\n"
    if not forget_file.is_file() or forget_file.read_text() != text:
        write_text(forget_file, text)
    print(f"\n[forget set] {len(users)} training users to forget, written to {forget_file}: {', '.join(users)}")
    for stage in stages(config, out, forget_file):
        records[stage.name] = run_stage(stage)
    report = summary(out, config, records, users)
    write_text(out / "summary.md", report)
    return report


def main(argv: list[str] | None = None) -> int:
    """Exit codes as `llmrec`'s: 0 done, 2 a one-line error (or the failed stage's own code)."""
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help", "--help-config"} & set(argv):
        from llmrec.config import describe

        print("bash scripts/demo.sh [key=value ...] (python -m llmrec.demo): train, forget, unlearn, retrain, "
              "evaluate and audit on the embedded data; keys:")
        for key, default, help_text in describe(DemoConfig):
            print(f"  {key:16} {default:14} {help_text}")
        return 0
    started = time.perf_counter()
    try:
        config = load_recipe(None, argv, cls=DemoConfig)
        check_settings(config)
        report = run_demo(config)
    except StageFailed as exc:
        print(f"llmrec demo: {exc}", file=sys.stderr)
        return exc.code
    except LlmrecError as exc:
        print(f"llmrec demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # between stages (a stage's own Ctrl-C is its exit code 130)
        print("llmrec demo: interrupted (SIGINT); rerun the same command to go on (finished stages are reused)",
              file=sys.stderr)
        return 130
    print("\n" + report + f"\n(demo wall time {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The classic rows of `llmrec benchmark`: MF / LightGCN originals, their own retrains, and the classic methods.

Each backbone is a family judged against its own retrain (and second-seed retrain as the noise floor): an
MF's forget-set predictions are compared with an MF retrained without the forgotten users, never with the
LLM. Unlearn-ALS forgets from an ALS-trained MF, so it brings its own family ("mf-als"); SISA and RecEraser
forget from shard ensembles of the backbone, rows "<backbone>/original (sisa|receraser)". IFRU runs once per
`ifru_gradients` value: row "ifru" for the removed-data gradient (the reference), "ifru (retained_objective)".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args, get_type_hints

from llmrec.bench.memory import PeakMemory
from llmrec.classic.loop import classic_schedule
from llmrec.classic.methods.ifru import IfruConfig
from llmrec.classic.train import ClassicModelConfig, ClassicRecipe, ClassicTrainConfig, EnsembleConfig, train_classic
from llmrec.classic.unlearn import ClassicUnlearnRecipe, run_classic_unlearning
from llmrec.config import option
from llmrec.errors import ConfigError
from llmrec.unlearn.registry import get_method, with_method_sections

CLASSIC_METHODS = ["retrain", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec", "ifru", "alteraser",
                   "unlearn_als", "sisa", "receraser"]
MF_ONLY = {"alteraser", "unlearn_als"}
IFRU_GRADIENTS = get_args(get_type_hints(IfruConfig)["gradient"])
ENSEMBLES = {"sisa": EnsembleConfig(shards=4), "receraser": EnsembleConfig(shards=4, partition="kmeans",
                                                                            aggregation="attention")}


@dataclass
class ClassicBenchConfig:
    backbones: list[str] = option([], "classic backbones to add: mf, lightgcn (empty: LLM rows only)")
    methods: list[str] = option(CLASSIC_METHODS, "classic methods; alteraser and unlearn_als run on mf only")
    model: ClassicModelConfig = option(ClassicModelConfig(), "classic backbone shape (its family comes from backbones)")
    train: ClassicTrainConfig = option(ClassicTrainConfig(), "classic training (the ALS family uses train.als)")
    als_sweeps: int = option(15, "ALS sweeps of the mf-als original and retrains", ge=1)
    shards: int = option(4, "shards of the SISA and RecEraser ensembles", ge=2)
    ifru_gradients: list[str] = option(["removed", "retained_objective"],
                                       "ifru.gradient values to run, a row each: 'ifru' (removed) and "
                                       "'ifru (retained_objective)'")


ClassicBenchConfig = with_method_sections(ClassicBenchConfig, "mf", default=classic_schedule)


def check_classic(config: ClassicBenchConfig) -> None:
    for backbone in config.backbones:
        if backbone not in ("mf", "lightgcn"):
            raise ConfigError(f"classic.backbones: unknown backbone '{backbone}' (known: mf, lightgcn)")
    for method in config.methods:
        get_method(method, "mf")  # unknown names fail before any training (every classic method runs on MF)
    for gradient in config.ifru_gradients:
        if gradient not in IFRU_GRADIENTS:
            raise ConfigError(f"classic.ifru_gradients: unknown gradient '{gradient}' "
                              f"(known: {', '.join(IFRU_GRADIENTS)})")
    if "ifru" in config.methods and not config.ifru_gradients:
        raise ConfigError("classic.ifru_gradients: empty, but classic.methods lists ifru")
    if config.ifru.gradient != "removed":
        raise ConfigError("classic.ifru.gradient: the benchmark runs each of classic.ifru_gradients as its own row; "
                          "set that list instead")


def method_rows(config: ClassicBenchConfig, method: str) -> list[tuple[str, str, object]]:
    """(row name, output folder name, method settings or None) for one classic method."""
    if method != "ifru":
        return [(method, method, getattr(config, method, None))]
    return [("ifru" if g == "removed" else f"ifru ({g})", "ifru" if g == "removed" else f"ifru-{g}",
             replace(config.ifru, gradient=g)) for g in dict.fromkeys(config.ifru_gradients)]


@dataclass
class Family:
    """One backbone's rows: model dirs, costs, and which original each method starts from."""

    name: str
    model_dirs: dict
    costs: dict
    originals: dict


def classic_recipe(bench, config: ClassicBenchConfig, output: Path, kind: str, **train_changes) -> ClassicRecipe:
    return ClassicRecipe(output_dir=str(output), data=bench.data, forget=bench.forget,
                         model=replace(config.model, family=kind), train=replace(config.train, **train_changes))


def family_plan(config: ClassicBenchConfig) -> dict[str, dict]:
    """{family: {"kind", "train_changes", "methods"}} for the backbones and methods asked for."""
    plan = {}
    for backbone in config.backbones:
        methods = [m for m in config.methods if m != "retrain" and (backbone == "mf" or m not in MF_ONLY)]
        plan[backbone] = {"kind": backbone, "train_changes": {}, "methods": [m for m in methods if m != "unlearn_als"]}
    if "mf" in config.backbones and "unlearn_als" in config.methods:
        plan["mf-als"] = {"kind": "mf", "train_changes": {"optimizer": "als", "epochs": config.als_sweeps},
                          "methods": ["unlearn_als"]}
    return plan


def run_classic(bench, ensure_trained, out: Path) -> list[Family]:
    """Every family: originals and references (reused when fingerprints match), then its methods."""
    return [run_family(bench, name, plan, ensure_trained, out / "classic" / name)
            for name, plan in family_plan(bench.classic).items()]


def run_family(bench, name: str, plan: dict, ensure_trained, folder: Path) -> Family:
    config = bench.classic

    def recipe(sub: str, **more) -> ClassicRecipe:
        return classic_recipe(bench, config, folder / sub, plan["kind"], **{**plan["train_changes"], **more})

    rows = {"original": recipe("original"), "retrain": recipe("retrain", train_on="retained"),
            "retrain (seed 2)": recipe("retrain-seed2", train_on="retained", seed=config.train.seed + 1)}
    originals = {}
    for method in plan["methods"]:
        originals[method] = "original"
        if method in ENSEMBLES:
            rows[f"original ({method})"] = recipe(f"original-{method}",
                                                  ensemble=replace(ENSEMBLES[method], shards=config.shards))
            originals[method] = originals[f"original ({method})"] = f"original ({method})"
    costs = {row: ensure_trained(r, f"{name}/{row}", train_classic) for row, r in rows.items()}
    model_dirs = {row: Path(r.output_dir) / "model" for row, r in rows.items()}
    for method in plan["methods"]:
        for row, folder_name, settings in method_rows(config, method):
            print(f"[{name}/{row}] unlearning")
            output = folder / "methods" / folder_name
            unlearn = ClassicUnlearnRecipe(model=str(model_dirs[originals[method]]), output_dir=str(output),
                                           method=method, data=bench.data, forget=bench.forget,
                                           seed=config.train.seed)
            if hasattr(unlearn, method):
                unlearn = replace(unlearn, **{method: settings})
            if method == "unlearn_als" and unlearn.unlearn_als.reference is None:  # record the gap per sweep
                unlearn = replace(unlearn, unlearn_als=replace(unlearn.unlearn_als,
                                                               reference=str(model_dirs["retrain"])))
            with PeakMemory() as memory:
                started = time.perf_counter()
                manifest = run_classic_unlearning(unlearn)
                wall = time.perf_counter() - started
            model_dirs[row] = output
            originals.setdefault(row, originals[method])
            costs[row] = {"wall_seconds": wall, "compute_seconds": manifest["timings"]["wall_seconds"],
                          "peak_memory_mb": memory.peak_mb, "trainable_percent": manifest["trainable_percent"],
                          "unlearning_steps": manifest["steps"]}
    return Family(name, model_dirs, costs, originals)

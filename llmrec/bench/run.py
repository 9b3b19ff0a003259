"""`llmrec benchmark RECIPE`: every unlearning method on the same data, forget set and machine, side by side.

Stages: train the original → retrain a reference on the retained data → retrain it again with
another seed (the noise floor) → run every listed method → score all of them with the same metrics.
Robustness is measured, not hoped for: with `original_seeds` the stages run once per original seed (its
train.seed), and with `seeds` every method runs once per unlearning seed on each of them; results.md then shows
per method the median [min–max] of every column over its runs, and a table of every run.
Trained models are reused only when their fingerprint (data bytes + every setting that shapes them + the
samples' FORMAT_VERSION) matches and their files still hash to what was recorded when they were trained;
otherwise they are trained again, and the log says why. Outputs in output_dir:
`results.json`, `results.md`, `results.png`, `config.yaml`, and each model under its own name.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from llmrec.bench.audit import BenchAuditConfig, audit_on, row_audit
from llmrec.bench.classic import ClassicBenchConfig, check_classic, run_classic
from llmrec.bench.memory import PeakMemory
from llmrec.bench.report import aggregate, markdown_report, plot_report
from llmrec.config import QUANT_HELP, Quantization, Recipe, option, to_dict, to_yaml
from llmrec.data.samples import prepare_splits, require_user_forgetting
from llmrec.errors import ConfigError
from llmrec.eval.evaluate import forgetting_metrics, without_probe_users
from llmrec.eval.score import score_model
from llmrec.eval.metrics import utility_metrics
from llmrec.io import write_json, write_text
from llmrec.llm.accel import make_accelerator
from llmrec.unlearn.registry import get_method, with_method_sections
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from llmrec.stages import ensure_trained
from llmrec.unlearn.stopping import StopConfig

RETRAIN = "retrain"  # the reference itself: trained from scratch on the retained data
FLOOR = f"{RETRAIN} (seed 2)"
SISA_ORIGINAL = "original (sisa)"  # SISA forgets from its own original: an ensemble of shard models
APA_ORIGINAL = "original (apa)"  # APA too: one frozen base with an adapter per shard


@dataclass
class BenchRecipe(Recipe):
    """A training recipe (for the original and the retrains) plus the methods to compare and their settings."""

    output_dir: str = option("runs/bench", "where every model, results.json/.md/.png and config.yaml go")
    methods: list[str] = option(
        [RETRAIN, "sisa", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec"], "methods to compare, in table order"
    )
    requests: int = option(1, "split the forget set into this many successive deletion requests")
    seeds: list[int] = option(
        [0], "unlearning seeds: every method runs once per seed on each original (the seed of its unlearning run, "
        "and of the split into requests); several: results.md shows median [min–max] over the runs", ge=0)
    original_seeds: list[int] | None = option(
        None, "train.seed of each original and of its retrain, second-seed retrain (that seed + 1) and SISA "
        "ensemble, each trained once and reused by every unlearning seed | null: [train.seed]", ge=0)
    quant: Quantization = option("none", QUANT_HELP)
    stop: StopConfig = option(StopConfig(), "one stopping rule for every gradient method, so they are compared at equal "
                              "forgetting (llmrec.unlearn.stopping)")
    audit: BenchAuditConfig = option(BenchAuditConfig(), "the membership-inference audit of every LLM row, "
                                     "calibrated by the second-seed retrain (llmrec.bench.audit)")
    classic: ClassicBenchConfig = option(ClassicBenchConfig(), "MF / LightGCN rows (none unless classic.backbones)")


BenchRecipe = with_method_sections(BenchRecipe, "llm", skip=(RETRAIN,))  # the retrain is the benchmark's own


def base_recipe(bench: BenchRecipe, output_dir: Path, **train_changes) -> Recipe:
    """The training recipe inside the benchmark, writing to `output_dir`."""
    return Recipe(output_dir=str(output_dir), data=bench.data, forget=bench.forget, prompt=bench.prompt,
                  model=bench.model, train=replace(bench.train, checkpoint_every=0, **train_changes), eval=bench.eval)


@dataclass
class Request:
    users: Path  # ids erased by this request
    before: Path | None  # ids erased by earlier requests (kept out of the retained data)
    through: Path  # ids erased by this and all earlier requests


def request_files(bench: BenchRecipe, forget_users: list[str], folder: Path, seed: int) -> list[Request]:
    """`requests` near-equal chunks of the forget set drawn with the unlearning `seed`, as the user files each
    request needs."""
    order = torch.randperm(len(forget_users), generator=torch.Generator().manual_seed(seed)).tolist()
    chunks = [sorted(forget_users[i] for i in order[k::bench.requests]) for k in range(bench.requests)]

    def write(name: str, users: list[str]) -> Path:
        write_text(folder / name, "\n".join(sorted(users)) + "\n")
        return folder / name

    return [Request(users=write(f"request-{k}.txt", chunk),
                    before=write(f"forgotten-before-{k}.txt", sum(chunks[:k - 1], [])) if k > 1 else None,
                    through=write(f"forgotten-through-{k}.txt", sum(chunks[:k], [])))
            for k, chunk in enumerate(chunks, start=1)]


def run_method(bench: BenchRecipe, method: str, original_dir: Path, requests: list[Request], folder: Path,
               accelerator, seed: int) -> tuple[Path, dict, list[dict], dict | None, list[str]]:
    """Apply `method` once per request, each on the previous request's output, with unlearning seed `seed`.

    With several requests, each one is scored right after it ran: test AUC (utility must not collapse) and
    forget AUC on everything erased so far (forgetting must hold as requests accumulate). Returns the final
    model dir, its cost, the per-request history and, when requests were scored, the last scores (after the
    last request everything has been erased, so they are the final model's test and forget scores), and the
    forget users a stopping rule probed (over all requests): they are left out when the run is graded.
    """
    model_dir, wall, peak, history, scored, probes = original_dir, 0.0, 0.0, [], None, []
    sequential = len(requests) > 1
    for k, request in enumerate(requests, start=1):
        out = folder / (f"request-{k}" if sequential else "model")
        forget = replace(bench.forget, users=str(request.users),
                         already_forgotten=str(request.before) if request.before else None) if sequential \
            else bench.forget
        recipe = UnlearnRecipe(model=str(model_dir), output_dir=str(out), method=method, data=bench.data,
                               forget=forget, seed=seed, merge=sequential, quant=bench.quant,
                               mixed_precision=bench.train.mixed_precision, stop=bench.stop,
                               **{method: getattr(bench, method)})
        with PeakMemory() as memory:
            started = time.perf_counter()
            manifest = run_unlearning(recipe)
            wall += time.perf_counter() - started
        peak = max(peak, memory.peak_mb or 0.0)
        probes += (manifest.get("stopping") or {}).get("probe_user_ids") or []
        model_dir = out / "merged" if (out / "merged").is_dir() else out
        step = {"request": k, "counts": manifest["counts"], "wall_seconds": manifest["timings"]["wall_seconds"]}
        if sequential:
            splits = prepare_splits(bench.data, replace(bench.forget, users=str(request.through)))
            scored = score_model(model_dir, ["test", "forget"], splits, bench.eval.batch_size, accelerator)
            step["test_auc"] = utility_metrics(*scored["test"])["auc"]
            step["forgotten_so_far_auc"] = utility_metrics(*scored["forget"])["auc"]
            print(f"[{method}] request {k}/{len(requests)}: test AUC {step['test_auc']:.4f}, forget AUC on the "
                  f"{manifest['counts']['forget_users']}+earlier users {step['forgotten_so_far_auc']:.4f}")
        history.append(step)
    cost = {"wall_seconds": wall, "peak_memory_mb": peak or None, "trainable_percent": manifest["trainable_percent"],
            "unlearning_steps": manifest["steps"]}  # the last request's (SISA, APA: which shards were retrained)
    return model_dir, cost, history, scored, sorted(set(probes))


def check_seed_list(seeds: list[int] | None, key: str) -> None:
    """ConfigError, one line, unless `seeds` is None or a non-empty list of distinct integers ≥ 0."""
    if seeds is None:
        return
    if not seeds:
        raise ConfigError(f"{key}: list at least one seed" + (", or null for [train.seed]"
                                                              if key == "original_seeds" else " (default: [0])"))
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{key}[{i}] must be an integer, 0 or more, got {seed!r}")
    repeated = [seed for i, seed in enumerate(seeds) if seed in seeds[:i]]
    if repeated:
        raise ConfigError(f"{key}: seed {repeated[0]} is listed twice (each seed is one run; list it once)")


def original_seed_list(bench: BenchRecipe) -> list[int]:
    """train.seed of each original the benchmark trains: `original_seeds`, or just the recipe's train.seed."""
    return [bench.train.seed] if bench.original_seeds is None else bench.original_seeds


def original_suffix(bench: BenchRecipe, original_seed: int) -> str:
    """'' for the recipe's own train.seed, so a one-original benchmark keeps (and reuses) the folders it always
    had; '-trainseed<N>' for the others."""
    return "" if original_seed == bench.train.seed else f"-trainseed{original_seed}"


def seed_suffix(seed: int) -> str:
    return "" if seed == 0 else f"-seed{seed}"


SEED_FREE = {"sisa", "apa"}  # retrain the affected shards with the original's own train.seed: the unlearning seed is unused


def seed_free(bench: BenchRecipe, method: str) -> bool:
    """Whether `method`'s result does not depend on the unlearning seed, so it runs once per original. With
    several requests it does: the seed draws how the forget set is split into them."""
    return method in SEED_FREE and bench.requests == 1


def check_methods(bench: BenchRecipe) -> None:
    check_seed_list(bench.seeds, "seeds")
    check_seed_list(bench.original_seeds, "original_seeds")
    if not bench.methods and not bench.classic.backbones:
        raise ConfigError("methods: list at least one method (or classic.backbones for classic rows only)")
    for method in bench.methods:
        if method != RETRAIN:
            get_method(method)  # unknown names fail here, before any training
    if bench.requests < 1:
        raise ConfigError(f"requests must be at least 1, got {bench.requests}")
    check_classic(bench.classic)
    if bench.methods:
        require_user_forgetting(bench.forget, "the LLM rows (methods)")
    if bench.audit.enabled and not bench.data.holdout:
        raise ConfigError("audit.enabled=true needs holdout users, the audit's non-members: set data.holdout (e.g. "
                          "0.05) or leave audit.enabled unset")
    if bench.classic.backbones and bench.requests > 1:
        raise ConfigError("classic rows run one deletion request: set requests: 1 or classic.backbones: []")


def machine_info(accelerator) -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def family_records(family: str, rows: list[str], scored: dict, costs: dict, model_dirs: dict, originals: dict,
                   history: dict, seeds: dict | None = None, probes: dict | None = None, splits=None,
                   audit: BenchAuditConfig | None = None) -> list[dict]:
    """One record per row, every one scored against the family's own retrain and noise floor.

    `seeds`: {row: (original seed, unlearning seed or None)}, kept in each record as `original_seed` and `seed`
    (None: the row does not depend on it); rows not in it (the classic ones) get neither. `probes`: {row: the
    forget users its stopping rule probed}: that row's forget-set columns (and every model it is compared with)
    are graded on the other users only, the report half, as the stopping rule never saw them (needs `splits`).
    `audit`: also audit each row but the second-seed retrain (`row_audit`; the scores hold "holdout")."""
    prefix = "" if family == "llm" else f"{family}/"
    retrain_wall, retrain_compute = costs[RETRAIN]["wall_seconds"], costs[RETRAIN].get("compute_seconds")
    records = []
    for name in rows:
        before = scored[originals.get(name, "original")]  # closure is measured from the method's own starting point
        probed = (probes or {}).get(name) or []
        users = splits["forget"]["user_id"] if probed else None
        model, reference, before_, floor = (without_probe_users(s, users, probed) if probed else s
                                            for s in (scored[name], scored[RETRAIN], before, scored[FLOOR]))
        graded = {"forget_users": len(set(users) - set(probed)), "probe_users_excluded": len(set(users) & set(probed))
                  } if probed else None
        audited = row_audit(audit, scored[name], before, scored[RETRAIN], scored[FLOOR], splits["forget"]["user_id"],
                            splits["holdout"]["user_id"], probed) if audit is not None and name != FLOOR else None
        records.append({
            "method": prefix + name,
            "family": family,
            **({"original_seed": seeds[name][0], "seed": seeds[name][1]} if seeds and name in seeds else {}),
            "test": utility_metrics(*scored[name]["test"]),
            "forget": utility_metrics(*model["forget"]),
            "forgetting": forgetting_metrics(model, reference, before_, floor),
            **({"graded_on": graded} if graded else {}),
            **({"audit": audited} if audited is not None else {}),
            **costs[name],
            "wall_vs_retrain": costs[name]["wall_seconds"] / retrain_wall,
            "compute_vs_retrain": (costs[name]["compute_seconds"] / retrain_compute
                                   if retrain_compute and costs[name].get("compute_seconds") is not None else None),
            "model_dir": str(model_dirs[name]),
            "requests": history.get(name, []),
        })
    return records


def run_llm_rows(bench: BenchRecipe, splits, out: Path, accelerator) -> list[dict]:
    """The LLM family, for each original seed in turn (`original_rows`); records in that order."""
    forget_users = sorted(set(splits["forget"]["user_id"]))
    requests = {seed: request_files(bench, forget_users, out / f"requests{seed_suffix(seed)}", seed)
                for seed in bench.seeds}
    return [record for original_seed in original_seed_list(bench)
            for record in original_rows(bench, original_seed, splits, out, requests, accelerator)]


def original_rows(bench: BenchRecipe, original_seed: int, splits, out: Path, requests: dict[int, list[Request]],
                  accelerator) -> list[dict]:
    """One original seed: original, retrain, second-seed retrain (and SISA, APA ensembles), each trained once (or
    reused), then every listed method once per unlearning seed on them (a `seed_free` one once).

    Records: the reference rows (seed None), then the methods of each unlearning seed, all scored against this
    original's retrain and noise floor; each keeps `original_seed` and `seed`."""
    tag = original_suffix(bench, original_seed)
    trained = replace(bench, train=replace(bench.train, seed=original_seed))
    original = base_recipe(trained, out / f"original{tag}")
    reference = base_recipe(trained, out / f"{RETRAIN}{tag}", train_on="retained")
    floor_model = replace(bench.model, tiny=replace(bench.model.tiny, seed=bench.model.tiny.seed + 1))
    floor = replace(base_recipe(trained, out / f"{RETRAIN}-seed2{tag}", train_on="retained", seed=original_seed + 1),
                    model=floor_model)
    stages = {"original": (original, "original"), RETRAIN: (reference, "reference"), FLOOR: (floor, "floor")}
    originals = {method: "original" for method in bench.methods}
    if "sisa" in bench.methods:
        stages[SISA_ORIGINAL] = (base_recipe(trained, out / f"original-sisa{tag}", shards=bench.sisa.shards),
                                 SISA_ORIGINAL)
        originals["sisa"] = originals[SISA_ORIGINAL] = SISA_ORIGINAL
    if "apa" in bench.methods:
        stages[APA_ORIGINAL] = (base_recipe(trained, out / f"original-apa{tag}", shards=bench.apa.shards,
                                            partition="apa"), APA_ORIGINAL)
        originals["apa"] = originals[APA_ORIGINAL] = APA_ORIGINAL
    suffix = f", train.seed {original_seed}" if tag else ""
    costs = {row: ensure_trained(recipe, label + suffix) for row, (recipe, label) in stages.items()}
    model_dirs = {row: Path(recipe.output_dir) / "model" for row, (recipe, _) in stages.items()}
    audit = bench.audit if audit_on(bench.audit, bench.data.holdout) else None
    names = ["test", "forget", *(["holdout"] if audit else [])]
    scored = {row: score_model(path, names, splits, bench.eval.batch_size, accelerator)
              for row, path in model_dirs.items()}
    records = family_records("llm", list(stages), scored, costs, model_dirs, originals, {},
                             {row: (original_seed, None) for row in stages}, splits=splits, audit=audit)
    several = len(bench.seeds) > 1 or len(original_seed_list(bench)) > 1
    for seed in bench.seeds:
        methods = [m for m in bench.methods if m != RETRAIN and (seed == bench.seeds[0] or not seed_free(bench, m))]
        run_scored, run_costs, run_dirs, history, probes = dict(scored), dict(costs), dict(model_dirs), {}, {}
        for method in methods:
            run = f" (train.seed {original_seed}, seed {seed})" if several else ""
            print(f"[{method}] unlearning {len(splits['forget'])} samples in {bench.requests} request(s){run}")
            run_dirs[method], run_costs[method], history[method], result, probes[method] = run_method(
                bench, method, model_dirs[originals[method]], requests[seed],
                out / "methods" / f"{method}{tag}{seed_suffix(seed)}", accelerator, seed)
            run_scored[method] = result if result is not None and not audit else score_model(
                run_dirs[method], names, splits, bench.eval.batch_size, accelerator)
        records += family_records("llm", methods, run_scored, run_costs, run_dirs, originals, history,
                                  {m: (original_seed, None if seed_free(bench, m) else seed) for m in methods},
                                  probes, splits, audit)
    return records


def run_benchmark(bench: BenchRecipe) -> list[dict]:
    check_methods(bench)
    out = Path(bench.output_dir)
    splits = prepare_splits(bench.data, bench.forget)  # bad data or forget settings stop here
    print(f"resolved config:\n{to_yaml(bench)}")

    accelerator = make_accelerator(bench.train.mixed_precision)
    records = run_llm_rows(bench, splits, out, accelerator) if bench.methods else []
    for family in run_classic(bench, ensure_trained, out):
        family_scored = {name: score_model(Path(path), ["test", "forget"], splits, bench.eval.batch_size, accelerator)
                         for name, path in family.model_dirs.items()}
        records += family_records(family.name, list(family.model_dirs), family_scored, family.costs,
                                  family.model_dirs, family.originals, {})
    payload = {"records": records, "aggregate": aggregate(records), "recipe": to_dict(bench),
               "machine": machine_info(accelerator)}
    # results.json is the mark of a finished run, so it goes last: a run killed while writing its reports leaves
    # none (the previous run's is removed first), never a finished-looking one beside half-new reports
    (out / "results.json").unlink(missing_ok=True)
    table = markdown_report(records, requests=bench.requests)
    plot_report(records, out / "results.png")
    write_text(out / "results.md", table)
    write_text(out / "config.yaml", to_yaml(bench))  # describes the results beside it
    write_json(out / "results.json", payload)
    print(table)
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return records

"""Stop unlearning when the forgotten users look like users the model never saw (issue 19 item 3).

A fixed number of passes forgets unreliably: the same E2URec schedule closed 0.51 to 1.64 of the forget-AUC gap
across four random draws. What a deletion should reach is *parity*: afterwards a forgotten user's samples should
fit the model no better than those of a holdout user (data.holdout: users whose training-period samples no model
ever trained on). So every `every` optimizer steps the student scores

- the *probe* half of the forget users (a seeded `probe_fraction` of them), and
- the holdout users,

each a seeded subsample of at most `max_samples` samples fixed for the run, and the statistic is

    gap = mean holdout loss − mean probe-forget loss   (nats; the loss is −ln P(true answer) under the
                                                        recommender's [yes, no] softmax, what the audit attacks)

> 0 while the forget users still fit better than never-seen users; ≈ 0 at a retrain. The run stops at the first
check (after at least one update) where gap ≤ `tolerance`, or at the budget of `max_epochs` passes over the forget
set. The *report* half of the forget users is never scored here: the run's effect is graded on it (its ids are in
the result's `stopping` record), so the stopping rule is not graded on the data it stopped on.

Where the settings live: in `UnlearningData.stop`, handed to every gradient method's runner (E2URec, NegGrad,
Bad-T, Bad-Teacher, fine-tune) with the data. The rule belongs to the deletion request, not to a method: one value
per run means every method of a benchmark stops by the same rule, at the same tolerance, on the same probe half
(the split depends only on the forget users and `stop.seed`), which is what comparing methods at equal forgetting
needs; a per-method copy could silently differ between methods. A recipe sets it as one top-level `stop:` block
(`UnlearnRecipe.stop`, passed as `UnlearningData(..., stop=recipe.stop)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from llmrec.config import option
from llmrec.errors import ConfigError

if TYPE_CHECKING:
    from datasets import Dataset

    from llmrec.unlearn.data import UnlearningData

NO_HOLDOUT = ("stop.rule=parity needs holdout users (data.holdout > 0); set stop.rule=fixed for the fixed "
              "schedule")


@dataclass
class StopConfig:
    """When a gradient unlearning method stops: at parity with never-seen users, or after its fixed schedule."""

    rule: Literal["auto", "parity", "fixed"] = option(
        "auto", "parity: stop at the first check where the probe forget users fit no better than the holdout users "
        "(budget: max_epochs) | fixed: each method's own epochs | auto: parity when the data has holdout users, "
        "else fixed (said in one printed line; data.holdout: 0 recipes keep their schedules)")
    every: int = option(50, "check the parity gap every this many optimizer steps (and once before the first)",
                        ge=1)
    probe_fraction: float = option(
        0.5, "share of the forget users the rule looks at (the probe half); the rest (the report half) is never "
        "looked at and grades the run", gt=0, lt=1)
    seed: int = option(0, "seed of the probe/report split and of the samples scored at each check", ge=0)
    max_samples: int = option(512, "at most this many probe-forget and this many holdout samples per check (a "
                                   "seeded subsample, the same at every check)", ge=1)
    tolerance: float = option(0.0, "stop when mean holdout loss − mean probe-forget loss ≤ this (nats); ≥ 0 (a "
                              "negative one would ask to forget past parity: over-unlearning)", ge=0)
    max_epochs: float = option(6.0, "rule=parity: the budget in passes over the forget set (E2URec's fixed schedule "
                                    "is 4 passes; the baselines' 1)", gt=0)


def split_probe(forget_user_ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(probe ids, report ids), both sorted: a seeded `fraction` of the distinct forget users (rounded to whole
    users) and the rest. The draw depends only on the set of ids, the fraction and the seed, not on their order.

    Raises ConfigError when either half would be empty (fewer than two forget users, or a fraction that rounds
    to none or all of them): the rule needs users to stop on and users to be graded on."""
    users = sorted(set(forget_user_ids))
    count = round(fraction * len(users))
    if not 0 < count < len(users):
        raise ConfigError(f"stop.probe_fraction={fraction} of {len(users)} forget users leaves an empty probe or "
                          "report half; stop.rule=parity needs both (more forget users, another probe_fraction, or "
                          "stop.rule=fixed)")
    order = np.random.default_rng([seed, 19]).permutation(len(users))
    probe = sorted(users[i] for i in order[:count])
    return probe, sorted(set(users) - set(probe))


def parity_gap(forget_losses, holdout_losses) -> float:
    """mean(holdout_losses) − mean(forget_losses), in the losses' unit (nats for llmrec's per-sample answer loss).

    Shapes: two 1-D sequences of per-sample losses, of any lengths ≥ 1. > 0: the forget samples still fit better
    than never-seen users' samples (remembered); ≈ 0 at a model that never trained on them; < 0: pushed past a
    never-seen user (over-forgotten, which a membership attack spots too). ValueError when a side is empty."""
    forget, holdout = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (forget_losses, holdout_losses))
    if not len(forget) or not len(holdout):
        raise ValueError("parity_gap needs at least one forget and one holdout loss")
    return float(holdout.mean() - forget.mean())


def reached(gap: float | None, tolerance: float) -> bool:
    """Whether a parity gap (nats) is at parity: gap ≤ tolerance. An unmeasured or non-finite gap (None, NaN: a
    diverged student) is not parity."""
    return gap is not None and math.isfinite(gap) and gap <= tolerance


def resolve_rule(config: StopConfig, holdout_users: int) -> str:
    """'parity' or 'fixed' for a run whose data has `holdout_users` holdout users; ConfigError (one line) for an
    explicit parity without any."""
    if config.rule == "parity" and not holdout_users:
        raise ConfigError(NO_HOLDOUT)
    if config.rule == "auto":
        return "parity" if holdout_users else "fixed"
    return config.rule


def planned_probe_users(config: StopConfig, forget_user_ids: Sequence[str], holdout_users: int) -> list[str]:
    """The probe users a gradient method's `Stopping` will draw (sorted; [] under the fixed schedule), known before
    it runs: the unlearning audit uses it to skip itself before training a shadow it could not use."""
    if resolve_rule(config, holdout_users) == "fixed":
        return []
    return split_probe(forget_user_ids, config.probe_fraction, config.seed)[0]


@torch.no_grad()
def sample_losses(model, data: UnlearningData, dataset: Dataset, batch_size: int) -> torch.Tensor:
    """[len(dataset)] float32 −ln P(true answer) under the [yes, no] softmax, nats, in `teacher_mode` (eval mode,
    no autocast), in the dataset's row order."""
    from llmrec.llm.scoring import answer_logits
    from llmrec.unlearn.losses import answer_nats
    from llmrec.unlearn.teachers import pair_logits, teacher_mode

    losses = torch.empty(len(dataset))
    with teacher_mode(model):
        for batch in data.all_rows(dataset, batch_size):
            pair = pair_logits(answer_logits(model, batch["input_ids"], batch["attention_mask"]), data.answer)
            losses[batch["row"].cpu()] = answer_nats(pair, batch["labels"]).cpu()
    return losses


def _reduced_sums(values: list[torch.Tensor], device) -> list[float]:
    """[sum, count] of each tensor, summed over every process (one all-reduce), so every rank gets the same floats."""
    sums = torch.tensor([x for v in values for x in (float(v.double().sum()), float(len(v)))], dtype=torch.float64,
                        device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
    return sums.tolist()


class Stopping:
    """One run's stopping rule: the resolved rule, its step budget, the probe/report split and the checks taken.

    `fixed_steps`: the method's own schedule (what rule=fixed runs); `rows`, `batch_size`: what one pass is, for
    the parity budget `stop.max_epochs` passes. Prints the rule (main process) when auto fell back to fixed."""

    def __init__(self, data: UnlearningData, fixed_steps: int, rows: int, batch_size: int):
        config, self.data = data.stop, data
        self.config, self.batch_size = config, batch_size
        self.forget_users = sorted(set(data.forget["user_id"]))
        self.rule = resolve_rule(config, len(data.holdout_users))
        self.checks: list[dict] = []
        self.stopped_at: int | None = None
        if self.rule == "fixed":
            if config.rule == "auto" and data.shard[0] == 0:
                print("stop.rule=auto: the data has no holdout users (data.holdout: 0), so the fixed schedule runs "
                      "and nothing checks that the users were forgotten", flush=True)
            self.budget_steps, self.probe, self.report = fixed_steps, [], self.forget_users
            self.every = config.every
            return
        self.budget_steps = steps_for(config.max_epochs, rows, batch_size)
        self.every = check_interval(config.every, self.budget_steps)
        self.probe, self.report = split_probe(self.forget_users, config.probe_fraction, config.seed)
        probe = set(self.probe)
        rows_of_probe = [i for i, user in enumerate(data.forget["user_id"]) if user in probe]
        self.forget_probe = data.forget.select(_subsample(rows_of_probe, config.max_samples, config.seed))
        self.holdout = data.holdout_sample(config.max_samples, config.seed)
        process, processes = data.shard  # each process scores its slice; the sums are all-reduced
        self._mine = [renumbered(d.select(range(process, len(d), processes))) for d in (self.forget_probe,
                                                                                       self.holdout)]

    @property
    def parity(self) -> bool:
        return self.rule == "parity"

    def measure(self, model) -> tuple[float, float, float]:
        """(gap, mean probe-forget loss, mean holdout loss) in nats, the same floats on every process."""
        device = next(model.parameters()).device
        forget, holdout = (sample_losses(model, self.data, d, 2 * self.batch_size) for d in self._mine)
        forget_sum, forget_n, holdout_sum, holdout_n = _reduced_sums([forget, holdout], device)
        forget_mean, holdout_mean = forget_sum / forget_n, holdout_sum / holdout_n
        return holdout_mean - forget_mean, forget_mean, holdout_mean

    def check(self, model) -> Callable[[int], bool] | None:
        """The callback `optimize_until` calls with the number of updates taken: records the gap, and says stop
        at parity; at step 0 (θ₀) it only records (the run takes at least one update). None under rule=fixed."""
        if not self.parity:
            return None

        def callback(step: int) -> bool:
            gap, forget, holdout = self.measure(model)
            finite = all(math.isfinite(x) for x in (gap, forget, holdout))
            self.checks.append({"step": step, "gap_nats": gap if finite else None,
                                "forget_loss_nats": forget if finite else None,
                                "holdout_loss_nats": holdout if finite else None})
            return step > 0 and reached(gap, self.config.tolerance)

        return callback

    def record(self, steps_taken: int) -> dict:
        """The result's `stopping` entry (strict-JSON-safe): what the rule looked at, when it stopped and why."""
        last = self.checks[-1]["gap_nats"] if self.checks else None
        common = {"rule": self.rule, "requested_rule": self.config.rule, "budget_steps": self.budget_steps,
                  "stopped_at_step": steps_taken, "probe_user_ids": self.probe, "report_user_ids": self.report,
                  "checks": self.checks}
        if not self.parity:
            return {**common, "reached": None}
        done = reached(last, self.config.tolerance)
        if self.data.shard[0] == 0:
            gap = "undefined" if last is None else f"{last:+.4f} nats"
            print(f"stop (parity): {'reached at step' if done else 'not reached in'} {steps_taken} of "
                  f"{self.budget_steps} steps (probe-forget vs holdout loss gap {gap}, tolerance "
                  f"{self.config.tolerance}; checked every {self.every} steps)", flush=True)
        return {**common, "reached": done, "tolerance_nats": self.config.tolerance,
                "every": self.every, "max_epochs": self.config.max_epochs,
                "probe_samples": len(self.forget_probe), "holdout_samples": len(self.holdout),
                "holdout_user_count": len(self.data.holdout_users)}


MIN_CHECKS = 10  # a parity run is checked at least this often over its budget, whatever stop.every says


def check_interval(every: int, budget_steps: int, min_checks: int = MIN_CHECKS) -> int:
    """Steps between parity checks: `every`, but at most budget_steps // min_checks (at least 1), so a small forget
    set, whose whole budget is shorter than `every`, is still checked as it goes instead of only at θ₀ and at the
    end (found on a 41-step budget under every=50: it ran 6x the fixed schedule and overshot to -0.72 nats)."""
    return max(1, min(every, budget_steps // min_checks))


def renumbered(dataset: Dataset) -> Dataset:
    """The dataset with its `row` column (the index `sample_losses` writes by) renumbered 0..n-1."""
    return with_rows(dataset.remove_columns("row") if "row" in dataset.column_names else dataset)


def _subsample(rows: list[int], count: int, seed: int) -> list[int]:
    """At most `count` of `rows` (sorted), a seeded draw; all of them when there are no more."""
    if len(rows) <= count:
        return rows
    picked = np.random.default_rng([seed, 20]).choice(len(rows), size=count, replace=False)
    return sorted(rows[i] for i in picked)


def steps_for(epochs: float, rows: int, batch_size: int) -> int:
    """Optimizer steps for `epochs` passes over `rows` samples (at least one step when epochs > 0)."""
    return max(1, math.ceil(epochs * rows / batch_size)) if epochs > 0 else 0


def with_rows(dataset: Dataset) -> Dataset:
    return dataset.add_column("row", list(range(len(dataset))))

"""`llmrec unlearn RECIPE` of a classic model: forget users from it; the same artefacts as the LLM path.

output_dir/ = the unlearned model (weights + llmrec_model.json naming the original in `unlearned_from`),
the resolved config.yaml and unlearning_manifest.json. It appears only when the run succeeded, and the
original is checked byte for byte to be unchanged, before the output is put in place and after. An output_dir
that is, contains or lies inside the original (or a reference model the method reads), or that is or contains
a data or user file the run reads, is refused before anything is written (`llmrec.paths`).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from llmrec.classic.data import Index, Triples
from llmrec.classic.loop import ClassicSchedule, LowRankStudent, batch_bce, classic_schedule, two_class
from llmrec.classic.mf import MatrixFactorization
from llmrec.classic.store import load_classic, save_classic
from llmrec.classic.train import ClassicRecipe, new_model
from llmrec.config import THREADS_HELP, DataConfig, ForgetConfig, LoraSettings, from_dict, option, to_yaml
from llmrec.data.samples import prepare_splits
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import atomic_dir, write_json
from llmrec.recommender import check_model_card, model_family
from llmrec.store import confirm_unchanged, directory_hash, original_card, parameter_counts, read_model_card
from llmrec.paths import model_paths, recipe_inputs, refuse_overlap
from llmrec.unlearn.loop import StudentConfig, module_changed, require_change
from llmrec.unlearn.registry import get_method, with_method_sections
from llmrec.unlearn.teachers import teacher_mode
from llmrec.unlearn.run import unlearning_manifest


@dataclass
class ClassicUnlearnRecipe:
    """`llmrec unlearn` of an MF / LightGCN; one section per method that runs on them follows, with a classic
    model's schedule defaults (`with_method_sections`, `classic_schedule`)."""

    model: str = option("runs/classic/model", "the trained classic model directory (never modified)")
    output_dir: str = option("runs/classic-unlearn", "where the unlearned model, manifest and config go")
    method: str = option("ifru", "classic unlearning method (see llmrec.unlearn.registry)")
    data: DataConfig = option(DataConfig(), "the data the original was trained on")
    forget: ForgetConfig = option(ForgetConfig(), "which training users to forget")
    threads: int = option(0, THREADS_HELP, ge=0)
    seed: int = option(0, "seed of what a method draws at random (E2URec's low-rank update, Bad Teacher's "
                          "incompetent model draws from incompetent_seed): the same seed, the same result", ge=0)
    allow_other_data: bool = option(
        False, "unlearn although data.* differ from the data the original was trained on (the data fingerprint in "
        "its llmrec_model.json); false: such a run stops, naming both fingerprints"
    )


ClassicUnlearnRecipe = with_method_sections(ClassicUnlearnRecipe, "mf", default=classic_schedule)


@dataclass
class ClassicUnlearning:
    """Everything a classic method needs: a copy of the original to edit and the data as triples."""

    model: MatrixFactorization
    index: Index
    train: Triples  # what the original was trained on
    forget: Triples
    retained: Triples
    valid: Triples
    training: ClassicRecipe  # the original's recipe (objective, optimizer, seed)
    card: dict  # the original's llmrec_model.json (a shard ensemble's partition lives there)
    holdout: Triples | None = None  # the data.holdout users' triples (no model trained on them)

    autocast = contextlib.nullcontext  # classic models train in fp32

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.index.users), len(self.index.items)

    @property
    def family(self) -> str:
        return model_family(self.card)

    # the `unlearn.loop.Unlearning` seam: what a gradient method written once asks of the family
    def trainable(self, config: StudentConfig) -> MatrixFactorization:
        full_only(config.finetune, "finetune")
        return self.model

    def schedule(self, config, with_retained: bool = True, *, epochs: float | None = None, warmup_epochs: float = 0.0,
                 batch_size: int | None = None, purpose: str = "unlearn", by_length: bool = False) -> ClassicSchedule:
        if by_length:
            raise ConfigError("length_buckets batches prompts by length; a classic model reads no prompts "
                              "(length_buckets: false)")
        if purpose == "augment":  # a stream of its own, seeded apart from the unlearning streams
            return ClassicSchedule.for_config(self, config, seed=1, with_retained=False, epochs=epochs,
                                              batch_size=batch_size)
        return ClassicSchedule.for_config(self, config, with_retained=with_retained, epochs=epochs,
                                          warmup_epochs=warmup_epochs, batch_size=batch_size)

    def loss(self, model, batch: Triples, labels=None, regularize: bool = True):
        return batch_bce(model, batch, self.training.train.weight_decay if regularize else 0.0, labels)

    def labels(self, batch: Triples):
        return batch.labels

    @property
    def original(self) -> MatrixFactorization:
        return self.model  # θ₀ in memory until a method trains it

    def forward(self, model, batch: Triples):
        return model(batch.users, batch.items)

    def answer_pair(self, output):
        return two_class(output)

    def objective(self, output, labels):
        return binary_cross_entropy_with_logits(output, labels)

    def teacher_table(self, model, samples: Triples, batch_size: int = 0, desc: str = "") -> torch.Tensor:
        with teacher_mode(model):  # every row at once: a few MB of ids
            return two_class(model(samples.users, samples.items)).float()

    def rows(self, batch: Triples):
        return batch.rows

    def incompetent(self, seed: int):
        torch.manual_seed(seed)
        return new_model(self.training.model, self.index, self.train).eval()

    def update_penalty(self, student):
        return 0.5 * self.training.train.weight_decay * sum(p.square().sum() for p in student.parameters()
                                                            if p.requires_grad)

    def forward_both(self, model, forget_batch: Triples, retained_batch: Triples | None, forward=None):
        forward = forward or self.forward
        retained = None if retained_batch is None else forward(model, retained_batch)  # retained first, as tuned:
        return forward(model, forget_batch), retained  # an update's gradients sum in this order

    def set_labels(self, samples: Triples):
        return samples.labels

    def trainable_copy(self, config):
        full_only(config.finetune, "augment.finetune")
        return copy.deepcopy(self.model).requires_grad_(True)

    def drop_adapter(self, model) -> None:
        raise ConfigError("a classic model has no adapter to take off")

    def low_rank_student(self, lora: LoraSettings) -> LowRankStudent:
        return LowRankStudent(self.model.eval(), lora.r)

    @contextlib.contextmanager
    def base(self, student: LowRankStudent):
        yield student.original

    @property
    def holdout_users(self) -> list[int]:
        return [] if self.holdout is None else sorted(set(self.holdout.users.tolist()))

    def holdout_nats(self, batch_size: int = 0) -> float:
        with teacher_mode(self.model):
            return float(self.objective(self.forward(self.model, self.holdout), self.holdout.labels))

    def pooled_schedule(self, config, fraction: float):
        raise ConfigError("bad_teacher.retain_fraction (the paper's mixed batches) runs on LLM models; on a classic "
                          "model leave it null (a retained batch beside each forget batch)")


def full_only(finetune: str, key: str) -> None:
    """ConfigError unless `key` (a method's finetune setting) is full: a classic model has no adapter to train."""
    if finetune != "full":
        raise ConfigError(f"{key}={finetune} trains an adapter on an LLM's weights; a classic model trains its "
                          f"embedding tables ({key}: full)")


def prepare_work(model_dir: Path, splits) -> ClassicUnlearning:
    card = read_model_card(model_dir)
    if "classic" not in card:
        raise LlmrecError(f"{model_dir}: not a classic model (train one with `llmrec train` and model.family mf | "
                          "lightgcn)")
    model, index, card = load_classic(model_dir)
    training = from_dict(ClassicRecipe, card["recipe"])
    if training.train.train_on != "train" or training.train.only_users:
        raise LlmrecError(f"{model_dir}: unlearning starts from a model trained on the whole train split")
    holdout = index.encode(splits["holdout"], "holdout") if "holdout" in splits and len(splits["holdout"]) else None
    return ClassicUnlearning(copy.deepcopy(model), index, index.encode(splits["train"], "train"),
                             index.encode(splits["forget"], "forget"), index.encode(splits["retained"], "retained"),
                             index.encode(splits["valid"], "valid"), training, card, holdout)


def run_classic_unlearning(recipe: ClassicUnlearnRecipe) -> dict:
    model_dir = Path(recipe.model)
    read_model_card(model_dir)  # a missing model is named as such before the paths are compared
    reference = recipe.unlearn_als.reference if recipe.method == "unlearn_als" else None
    refuse_overlap(recipe.output_dir, [*model_paths(model_dir), ("unlearn_als.reference", reference)],
                   inputs=recipe_inputs(recipe))
    runner = get_method(recipe.method, model_family(read_model_card(model_dir)))
    check_model_card(model_dir, read_model_card(model_dir), recipe.data, recipe.allow_other_data, "allow_other_data")
    splits = prepare_splits(recipe.data, recipe.forget)  # bad data, unknown or empty forget users stop here
    work = prepare_work(model_dir, splits)
    print(f"resolved config:\n{to_yaml(recipe)}")
    original_hash = directory_hash(model_dir)
    with atomic_dir(Path(recipe.output_dir)) as tmp:
        started = time.perf_counter()
        torch.manual_seed(recipe.seed)  # not whatever the process drew before
        result = runner(work, getattr(recipe, recipe.method, None))
        require_change(module_changed(result["model"], load_classic(model_dir)[0]), recipe.method, model_dir)
        wall = time.perf_counter() - started
        kept = {key: work.card[key] for key in ("recipe", "partition", "data") if key in work.card}
        save_classic(result["model"], work.index, tmp, **kept, trained_on="retained",
                     **original_card(model_dir, original_hash))
        if directory_hash(model_dir) != original_hash:
            raise LlmrecError(f"{model_dir} changed during unlearning; refusing to write outputs")
        result["total_parameters"] = parameter_counts(result["model"])[1]
        manifest = unlearning_manifest(recipe, splits, original_hash, result, wall)
        (tmp / "config.yaml").write_text(to_yaml(recipe))
        write_json(tmp / "unlearning_manifest.json", manifest)
    confirm_unchanged(model_dir, original_hash, Path(recipe.output_dir))
    counts = manifest["counts"]
    erased = (f"{counts['forget_users']} users" if recipe.forget.unit == "users"
              else f"{counts['forget_samples']} interactions of {counts['forget_users']} users")
    print(f"{recipe.method}: unlearned {erased} in {wall:.2f}s; "
          f"outputs in {recipe.output_dir}")
    return manifest

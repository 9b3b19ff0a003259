"""Each gradient baseline on MF does what it claims, measured on the saved output against the original."""

import json

import pytest
import torch
import torch.nn.functional as F

from llmrec.classic.losses import regularized_bce
from llmrec.classic.store import load_classic
from llmrec.classic.train import new_model, train_classic
from llmrec.classic.unlearn import prepare_work, run_classic_unlearning
from llmrec.data.samples import prepare_splits
from tests.classic.conftest import classic_recipe
from llmrec.unlearn.methods.bad_teacher import BadTeacherConfig
from tests.classic.test_unlearn import unlearn_recipe


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    recipe = classic_recipe(tmp_path_factory.mktemp("baselines"), "train.epochs=30")
    train_classic(recipe)
    return recipe


def run(original, tmp_path, method, *overrides):
    # the tiny forget set (85 triples) is a third of a batch: 60 passes make 20 optimizer steps
    run_classic_unlearning(unlearn_recipe(original, tmp_path / method, f"method={method}", f"{method}.epochs=60",
                                          *overrides))
    splits = prepare_splits(original.data, original.forget)
    work = prepare_work(f"{original.output_dir}/model", splits)
    return work, load_classic(tmp_path / method)[0]


def forget_bce(model, work, labels=None):
    with torch.no_grad():
        scores = model(work.forget.users, work.forget.items)
    return float(F.binary_cross_entropy_with_logits(scores, work.forget.labels if labels is None else labels))


def test_neggrad_raises_the_forget_loss(original, tmp_path):
    work, unlearned = run(original, tmp_path, "neggrad")
    assert forget_bce(unlearned, work) > forget_bce(work.model, work) + 0.05


def test_bad_t_pulls_forget_predictions_toward_the_flipped_labels(original, tmp_path):
    work, unlearned = run(original, tmp_path, "bad_t")
    flipped = 1 - work.forget.labels
    assert forget_bce(unlearned, work, flipped) < forget_bce(work.model, work, flipped) - 0.05


def test_bad_teacher_moves_forget_predictions_toward_the_random_teacher(original, tmp_path):
    work, unlearned = run(original, tmp_path, "bad_teacher")
    torch.manual_seed(BadTeacherConfig().incompetent_seed)
    incompetent = new_model(work.training.model, work.index, work.train)
    with torch.no_grad():
        target_logits = incompetent(work.forget.users, work.forget.items)
    target = torch.sigmoid(target_logits)
    entropy = float(F.binary_cross_entropy_with_logits(target_logits, target))

    def kl_to_teacher(model):
        return forget_bce(model, work, target) - entropy

    assert kl_to_teacher(unlearned) < 0.2 * kl_to_teacher(work.model)


def test_finetune_keeps_fitting_the_retained_triples_and_touches_no_forget_loss_directly(original, tmp_path):
    work, unlearned = run(original, tmp_path, "finetune")
    with torch.no_grad():
        before = F.binary_cross_entropy_with_logits(work.model(work.retained.users, work.retained.items),
                                                    work.retained.labels)
        after = F.binary_cross_entropy_with_logits(unlearned(work.retained.users, work.retained.items),
                                                   work.retained.labels)
    assert after < before


def test_e2urec_trains_a_small_update_and_forgets(original, tmp_path):
    # a strong forgetting teacher (α = 10): on this tiny, barely trained model the default α = 1 hardly moves
    run_classic_unlearning(unlearn_recipe(original, tmp_path / "e2u", "method=e2urec", "e2urec.joint_epochs=60",
                                          "e2urec.lora.r=2", "e2urec.alpha=10"))
    manifest = json.loads((tmp_path / "e2u" / "unlearning_manifest.json").read_text())
    rows = 60 + 50  # users + items of the small log
    assert manifest["trainable_parameters"] == rows * (2 + 1) + 2 * (2 * 16)  # A, bias update; B per table
    splits = prepare_splits(original.data, original.forget)
    work = prepare_work(f"{original.output_dir}/model", splits)
    unlearned = load_classic(tmp_path / "e2u")[0]
    assert type(unlearned) is type(work.model)  # the update is folded into a plain model
    assert forget_bce(unlearned, work) > forget_bce(work.model, work)


def test_alteraser_lowers_the_retained_objective_and_zeroes_forgotten_users(original, tmp_path):
    run_classic_unlearning(unlearn_recipe(original, tmp_path / "alt", "method=alteraser", "alteraser.sweeps=2"))
    splits = prepare_splits(original.data, original.forget)
    work = prepare_work(f"{original.output_dir}/model", splits)
    unlearned = load_classic(tmp_path / "alt")[0]
    decay = work.training.train.weight_decay

    def retained_objective(model):
        with torch.no_grad():
            return float(regularized_bce(model(work.retained.users, work.retained.items), work.retained.labels,
                                         model.parameters(), decay))

    assert retained_objective(unlearned) < retained_objective(work.model)
    forgotten = torch.unique(work.forget.users)
    assert unlearned.user.weight[forgotten].abs().max() < 1e-5

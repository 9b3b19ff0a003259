"""recipes/unlearn/e2urec-reference.yaml carries the reference script's values (justarter/E2URec, train_e2urec.sh)."""

from llmrec.config import load_recipe
from llmrec.unlearn.stopping import steps_for
from llmrec.unlearn.run import UnlearnRecipe
from tests.conftest import REPO

RECIPE = REPO / "recipes" / "unlearn" / "e2urec-reference.yaml"
REFERENCE_FORGET_SAMPLES = 12_982  # forget_0.2_user_10_simple.json (data_preprocess/split_ml-1m.ipynb, cell 2)


def test_the_reference_recipe_reproduces_the_scripts_settings_and_checkpoint_steps():
    e2urec = load_recipe(RECIPE, cls=UnlearnRecipe).e2urec
    # unlearning_e2urec.py --lr 0.001 --batch_size 16 --weight 0.6 --alpha 2 (train_e2urec.sh L20-27)
    assert (e2urec.alpha, e2urec.remember_weight, e2urec.learning_rate, e2urec.batch_size) == (2.0, 0.6, 1e-3, 16)
    assert (e2urec.lr_scheduler, e2urec.temperature, e2urec.lora.r, e2urec.lora.alpha) == ("constant", 1.0, 16, 32)
    # finetune_aug.py --lr 5e-5 --batch_size 16, a full fine-tune (train_e2urec.sh L5-9)
    assert (e2urec.augment.finetune, e2urec.augment.learning_rate) == ("full", 5e-5)
    # the checkpoints the script evaluates: model_1200.pt (augmented) and model_1000.pt (student, step count
    # includes the 812 forget-only steps of forget_epoch=1)
    steps = {name: steps_for(epochs, REFERENCE_FORGET_SAMPLES, 16) for name, epochs in
             (("augment", e2urec.augment.epochs), ("warmup", e2urec.warmup_epochs), ("joint", e2urec.joint_epochs))}
    assert steps == {"augment": 1200, "warmup": 812, "joint": 188}

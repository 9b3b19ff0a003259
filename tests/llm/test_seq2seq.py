"""Encoder-decoder backbones (T5, E2URec's own family): the same train / evaluate / unlearn path as a causal LM."""

import torch
from peft import PeftModel

from llmrec.config import LoraSettings
from llmrec.eval.evaluate import evaluate
from llmrec.llm.backbone import add_lora, is_encoder_decoder, load_model, load_tokenizer
from llmrec.llm.scoring import answer_logits
from llmrec.llm.train import train
from llmrec.store import directory_hash
from llmrec.unlearn.run import run_unlearning
from tests.unlearn.conftest import unlearn_recipe

T5 = ["model.tiny.architecture=t5", "model.tiny.num_layers=1", "train.epochs=3", "train.learning_rate=3e-3"]


def test_t5_trains_evaluates_and_unlearns_with_a_lora_on_q_and_v(recipe_factory, tmp_path):
    recipe = recipe_factory(*T5)
    summary = train(recipe)
    model_dir = f"{recipe.output_dir}/model"
    model = load_model(model_dir)
    assert model.config.model_type == "t5" and is_encoder_decoder(model)
    assert summary["best_valid_auc"] > 0.55  # it learns the task through the first decoder position

    results = evaluate(recipe)
    assert 0.0 <= results["test"]["auc"] <= 1.0

    before = directory_hash(model_dir)
    run_unlearning(unlearn_recipe(recipe, tmp_path / "unlearned"))
    assert directory_hash(model_dir) == before
    student = PeftModel.from_pretrained(load_model(model_dir), tmp_path / "unlearned")
    assert set(student.peft_config["default"].target_modules) == {"q", "v"}  # peft's T5 default, as E2URec


def test_t5_answer_logits_are_the_first_decoder_position(recipe_factory):
    recipe = recipe_factory(*T5, "train.max_steps=1")
    train(recipe)
    model_dir = f"{recipe.output_dir}/model"
    model, tokenizer = load_model(model_dir).eval(), load_tokenizer(model_dir)
    batch = tokenizer(["a short prompt", "a somewhat longer prompt than that"], return_tensors="pt", padding=True)
    with torch.no_grad():
        scored = answer_logits(model, batch["input_ids"], batch["attention_mask"])
        start = torch.full((2, 1), model.config.decoder_start_token_id)
        manual = model(**batch, decoder_input_ids=start).logits[:, 0]
        alone = model(**tokenizer(["a short prompt"], return_tensors="pt"), decoder_input_ids=start[:1]).logits[:, 0]
    torch.testing.assert_close(scored, manual)
    torch.testing.assert_close(scored[:1], alone, rtol=1e-4, atol=1e-4)  # left padding does not change the answer
    peft_model = add_lora(model, LoraSettings())
    assert peft_model.peft_config["default"].task_type == "SEQ_2_SEQ_LM"

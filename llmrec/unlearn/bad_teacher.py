"""Bad Teacher (Chundawat et al., AAAI 2023, "Can bad teaching induce forgetting?").

The student starts as θ₀ and distils, sample by sample, from a competent teacher (θ₀) on retained
data and from an incompetent teacher (the same architecture, randomly initialised) on forget data,
so the forgotten answers drift towards what an untrained model would say, not towards their
opposite. As in E2URec, both teachers are frozen: their answer logits are computed once up front,
and distillation is on the recommender's [yes, no] answer logits (the paper distils a classifier's
full output; here the answer pair is the recommender's whole output).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

from llmrec.config import option
from llmrec.llm.backbone import model_class
from llmrec.llm.scoring import answer_logits
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import Schedule, StudentConfig, make_trainable, optimize
from llmrec.unlearn.losses import bad_teacher_loss, distillation_kl
from llmrec.unlearn.registry import register
from llmrec.unlearn.teachers import pair_logits, precompute_answer_logits


@dataclass
class BadTeacherConfig(StudentConfig):
    temperature: float = option(1.0, "distillation temperature (the paper uses 1)")
    incompetent_seed: int = option(0, "seed of the incompetent teacher's random initialisation")


def incompetent_teacher(original, seed: int):
    """θ₀'s architecture with fresh random weights: a model that has learnt nothing."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(original.config).from_config(original.config)
    return model.to(original.device).eval()


@register("bad_teacher")
def unlearn_bad_teacher(original, data: UnlearningData, config: BadTeacherConfig,
                        autocast=contextlib.nullcontext) -> dict:
    schedule = Schedule.for_config(data, config)
    start = time.perf_counter()
    with autocast():  # teachers first, while `original` is still θ₀ (a full fine-tune trains it in place)
        competent = precompute_answer_logits(original, data.all_rows(schedule.retained_set, 2 * config.batch_size),
                                             data.answer, "competent teacher")
        incompetent = precompute_answer_logits(incompetent_teacher(original, config.incompetent_seed),
                                               data.all_rows(data.forget, 2 * config.batch_size), data.answer,
                                               "incompetent teacher")
    teacher_seconds = time.perf_counter() - start
    model = make_trainable(original, config.finetune, config.lora)

    def step_loss(step):
        forget, retained = next(schedule.forget), next(schedule.retained)
        student_forget = pair_logits(answer_logits(model, forget["input_ids"], forget["attention_mask"]), data.answer)
        student_retained = pair_logits(answer_logits(model, retained["input_ids"], retained["attention_mask"]),
                                       data.answer)
        return bad_teacher_loss(distillation_kl(competent[retained["row"]], student_retained, config.temperature),
                                distillation_kl(incompetent[forget["row"]], student_forget, config.temperature))

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, config.lr_scheduler, autocast,
                       desc="bad_teacher")
    return schedule.result(model, seconds, teacher_seconds=teacher_seconds)

"""Bad Teacher (Chundawat et al. 2023) on a classic model: distil θ₀ on retained, a random model on forget."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from llmrec.classic.loop import ClassicSchedule, ClassicStudentConfig, student_result, two_class
from llmrec.classic.train import new_model
from llmrec.config import option
from llmrec.unlearn.loop import optimize
from llmrec.unlearn.losses import bad_teacher_loss, distillation_kl
from llmrec.unlearn.registry import CLASSIC, register


@dataclass
class ClassicBadTeacherConfig(ClassicStudentConfig):
    temperature: float = option(1.0, "distillation temperature", gt=0)
    incompetent_seed: int = option(0, "seed of the incompetent (randomly initialised) teacher", ge=0)


@register("bad_teacher", families=CLASSIC, config=ClassicBadTeacherConfig)
def bad_teacher(work, config: ClassicBadTeacherConfig) -> dict:
    model = work.model
    competent = copy.deepcopy(model).eval()
    torch.manual_seed(config.incompetent_seed)
    incompetent = new_model(work.training.model, work.index, work.train).eval()
    schedule = ClassicSchedule.for_config(work, config)

    def step_loss(step):
        retained, forget = next(schedule.retained), next(schedule.forget)
        with torch.no_grad():
            good = two_class(competent(retained.users, retained.items))
            bad = two_class(incompetent(forget.users, forget.items))
        return bad_teacher_loss(
            distillation_kl(good, two_class(model(retained.users, retained.items)), config.temperature),
            distillation_kl(bad, two_class(model(forget.users, forget.items)), config.temperature))

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, desc="bad_teacher")
    return student_result(model, seconds, schedule.steps)

"""The LLM family behind the `llmrec.recommender.Recommender` seam: a causal LM or T5 (or a peft adapter on one,
or a shard ensemble of them), its tokenizer and the prompt and answer tokens it was trained with."""

from __future__ import annotations

from dataclasses import dataclass

from accelerate import Accelerator
from torch import nn

from llmrec.config import PromptConfig
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.llm.backbone import AnswerTokens
from llmrec.llm.scoring import score_dataset
from llmrec.store import parameter_counts


@dataclass
class LlmRecommender:
    module: nn.Module  # answers at the last prompt position (llm.scoring.answer_logits); never trained here
    tokenizer: object
    prompt: PromptConfig
    answer: AnswerTokens
    max_length: int  # prompt tokens, from the card
    name: str = "model"  # shown in progress lines
    family: str = "llm"

    def score(self, names: list[str], splits, batch_size: int, accelerator: Accelerator) -> dict:
        """{split: (labels, P(yes))}: the prompt of each sample, scored at the answer position, in split order.
        The module is placed by `accelerator` (one process per device; gathered without padding duplicates)."""
        model = accelerator.prepare(self.module)
        collator = AnswerCollator(self.tokenizer)
        scored = {}
        for name in names:
            with accelerator.main_process_first():
                dataset = tokenize(splits[name], self.tokenizer, self.prompt, self.max_length)
            scored[name] = score_dataset(model, dataset, collator, batch_size, accelerator, self.answer,
                                         desc=f"{self.name}:{name}")
        return scored

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters of the module as loaded."""
        return parameter_counts(self.module)

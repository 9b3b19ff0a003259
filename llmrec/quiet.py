"""Warnings from the libraries llmrec drives that a user can do nothing about, silenced one by one (by message
and category, never a whole category). `llmrec.cli.main` calls `silence_library_warnings()` once.

accelerate's `Removed shared tensor {'lm_head.weight'} while saving` (every checkpoint of a model with tied
embeddings) is not filtered but avoided where llmrec saves: see `llmrec.llm.train.drop_tied_copies`.
"""

from __future__ import annotations

import warnings

SILENCED = (
    # peft's PeftModel.__init__ (get_peft_model, PeftModel.from_pretrained) reads the deprecated property
    # `is_gradient_checkpointing` of transformers' PreTrainedModel, which warns on every LoRA adapter llmrec makes.
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
)


def silence_library_warnings() -> None:
    """Ignore each (message regex, category, module where warned) of SILENCED; other warnings are untouched."""
    for message, category, module in SILENCED:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)

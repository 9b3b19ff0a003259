"""One module per unlearning method, each registering itself (llmrec.unlearn.registry finds them all here)."""

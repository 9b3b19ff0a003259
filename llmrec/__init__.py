"""llmrec: LLM-based recommenders that can forget users."""

__version__ = "0.1.0"

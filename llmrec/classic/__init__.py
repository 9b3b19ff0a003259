"""Classic collaborative-filtering recommenders (MF, LightGCN) on the same samples, splits and metrics as the LLM."""

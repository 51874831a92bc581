"""Fine-tune BERT-family models on ValueEval with conclusion-grouped cross-validation."""

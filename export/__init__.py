"""Export trained checkpoints to self-contained ONNX model directories (Hugging Face Optimum)."""

"""Score ValueEval TSV files with an exported ONNX model directory; imports no torch."""

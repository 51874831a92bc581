import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = ROOT.parent / "shared" / "data" / "valueeval23"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"the ValueEval data is expected at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def tiny_exported(tmp_path_factory) -> Path:
    """A tiny BERT checkpoint exported to an ONNX model directory (shared by the scorer tests)."""
    from tiny_models import make_checkpoint

    from export.onnx import export_model

    root = tmp_path_factory.mktemp("tiny-bert")
    checkpoint = make_checkpoint("bert", root / "checkpoint", threshold=0.5)
    export_model(checkpoint, root / "model", log=lambda _: None)
    return root / "model"

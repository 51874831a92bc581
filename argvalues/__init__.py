"""argvalues: find the human values behind arguments (Touché23-ValueEval).

``argvalues.Scorer`` and ``argvalues.summarize`` are the Python API (:mod:`argvalues.api`); they
load on first use, so ``import argvalues`` stays light (no torch, no ONNX Runtime).
"""

__version__ = "0.2.0"


def __getattr__(name: str):
    if name in ("Scorer", "summarize"):
        from argvalues import api

        return getattr(api, name)
    raise AttributeError(f"module 'argvalues' has no attribute {name!r}")

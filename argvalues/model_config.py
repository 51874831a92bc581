"""The scoring config a model directory carries, so scoring can never drift from training.

The trainer writes it beside the checkpoint, the exporter copies it, the scorer reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from argvalues.contract import ID_COLUMN, LABELS, InputTemplate
from argvalues.errors import ModelDirError

SCORING_CONFIG_NAME = "argvalues.json"
FORMAT_VERSION = 1


@dataclass
class ScoringConfig:
    """Labels in output order, their thresholds, the input template and the max length."""

    thresholds: list[float]
    threshold_strategy: str
    template: InputTemplate
    max_length: int
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    base_model: str = ""
    format_version: int = FORMAT_VERSION
    #: Extra ONNX variants in the model directory: name -> {"file", "default_ok"} (see argvalues.variants).
    variants: dict = field(default_factory=dict)
    #: The training recipe that produced the model (template, loss, lr, epochs, ...), for the record.
    recipe: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels != LABELS:
            raise ModelDirError(f"labels {self.labels} differ from the ValueEval labels {LABELS}")
        if len(self.thresholds) != len(self.labels):
            raise ModelDirError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")
        if not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ModelDirError(f"thresholds must lie in [0, 1], got {self.thresholds}")
        if self.max_length < 8:
            raise ModelDirError(f"max_length must be at least 8, got {self.max_length}")

    @property
    def required_columns(self) -> list[str]:
        """The input columns this model reads: the ID and the template's fields."""
        return [ID_COLUMN] + [f for f in self.template.fields() if f != ID_COLUMN]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["template"] = self.template.to_dict()
        return data

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SCORING_CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ScoringConfig:
        path = Path(directory) / SCORING_CONFIG_NAME
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing {SCORING_CONFIG_NAME}; is this an argvalues model directory?")
        try:
            data = json.loads(path.read_text())
            data["template"] = InputTemplate.from_dict(data["template"])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelDirError(f"{path}: not a valid scoring config ({error})") from None

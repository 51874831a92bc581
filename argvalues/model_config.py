"""The scoring config a model directory carries, so scoring can never drift from training.

The trainer writes it beside the checkpoint, the exporter copies it, the scorer reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from argvalues.contract import ID_COLUMN, LABELS, PREMISE, InputTemplate
from argvalues.errors import ArgvaluesError, ModelDirError

SCORING_CONFIG_NAME = "argvalues.json"
FORMAT_VERSION = 1
#: What a model reads: arguments (Premise, Stance, Conclusion through its template) and, when it
#: was trained to, a text alone (``score --text-column``), given to it as the premise.
ARGUMENTS, TEXT = "arguments", "text"
READINGS = (ARGUMENTS, TEXT)
TEXT_TEMPLATE = InputTemplate("{Premise}")


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
    #: How the model reads a text alone (the Premise alone); None: it was not trained to. Absent in
    #: directories made before texts were read: a template of the premise alone reads texts too.
    text_template: InputTemplate | None = None
    #: The text reading's own thresholds (None: the same as the arguments'): where a text alone labels
    #: each value as often as the whole argument does (see trainer.distill).
    text_thresholds: list[float] | None = None

    def __post_init__(self) -> None:
        if self.labels != LABELS:
            raise ModelDirError(f"labels {self.labels} differ from the ValueEval labels {LABELS}")
        if len(self.thresholds) != len(self.labels):
            raise ModelDirError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")
        if not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ModelDirError(f"thresholds must lie in [0, 1], got {self.thresholds}")
        if self.text_thresholds is not None and (len(self.text_thresholds) != len(self.labels)
                                                 or not all(0.0 <= t <= 1.0 for t in self.text_thresholds)):
            raise ModelDirError(f"text_thresholds must be {len(self.labels)} numbers in [0, 1], got {self.text_thresholds}")
        if self.max_length < 8:
            raise ModelDirError(f"max_length must be at least 8, got {self.max_length}")
        if self.text_template is not None and self.text_template.fields() != [PREMISE]:
            raise ModelDirError(f"text_template must read the {PREMISE} alone, got {self.text_template}")

    @property
    def required_columns(self) -> list[str]:
        """The input columns this model reads: the ID and the template's fields."""
        return self.required_columns_for(ARGUMENTS)

    @property
    def readings(self) -> list[str]:
        """What it was trained to read: arguments, and a text alone where it was trained so."""
        return [ARGUMENTS] + ([TEXT] if self._text_template() is not None else [])

    def _text_template(self) -> InputTemplate | None:
        if self.text_template is not None:
            return self.text_template
        return self.template if self.template.fields() == [PREMISE] else None

    def template_for(self, reading: str) -> InputTemplate:
        """The template of ``reading`` (:data:`ARGUMENTS` or :data:`TEXT`); one it was not trained for is refused."""
        if reading == ARGUMENTS:
            return self.template
        if reading != TEXT:
            raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
        template = self._text_template()
        if template is None:
            raise ArgvaluesError("this model was trained to read arguments (Premise, Stance, Conclusion), not a text "
                                 "alone: --text-column needs a model trained for texts (train's student is, by default), "
                                 "or map the columns with --column")
        return template

    def thresholds_for(self, reading: str) -> list[float]:
        """The thresholds of ``reading``: the text reading's own where recorded."""
        if reading == TEXT and self.text_thresholds is not None:
            return self.text_thresholds
        return self.thresholds

    def required_columns_for(self, reading: str) -> list[str]:
        return [ID_COLUMN] + [f for f in self.template_for(reading).fields() if f != ID_COLUMN]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["template"] = self.template.to_dict()
        if self.text_thresholds is None:
            del data["text_thresholds"]
        if self.text_template is None:
            del data["text_template"]
        else:
            data["text_template"] = self.text_template.to_dict()
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
            if data.get("text_template") is not None:
                data["text_template"] = InputTemplate.from_dict(data["text_template"])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelDirError(f"{path}: not a valid scoring config ({error})") from None

"""The model card export writes into a model directory (README.md), from the run's records."""

import json
import re
import shutil

import pytest
from tiny_models import EXAMPLES, fake_run, make_checkpoint

from argvalues.contract import LABELS, TEMPLATES
from argvalues.model_config import ScoringConfig
from export.compact import compact_model
from export.model_card import MODEL_CARD_NAME, render_model_card
from export.onnx import export_model

CV_SUMMARY = {
    "best": {"fold": 2, "epoch": 4, "f1": 0.4567, "checkpoint": "runs/x/best"},
    "summary": {"at_chosen_thresholds": {"f1": {"mean": 0.4321, "std": 0.0123},
                                         "precision": {"mean": 0.4011, "std": 0.02},
                                         "recall": {"mean": 0.4702, "std": 0.03}}},
    "validation": {"rows": 1896, "f1": 0.4455, "precision": 0.4101, "recall": 0.4876},
}


def manifest(**changes) -> dict:
    return {"created": "2026-11-26T12:00:00Z", "versions": {"argvalues": "0.1.0"}, "cv": CV_SUMMARY,
            "onnx": {"file": "model.onnx", "sha256": "ab" * 32}, "ensemble": None,
            "parity": {"rows": 1024, "max_abs_difference": 2.5e-6},
            "variants": {"fp32": {"file": "model.onnx", "default_ok": True},
                         "int8-static": {"file": "model_static_int8.onnx", "checked_on": "cpu", "labels": 21460,
                                         "label_agreement": 0.9968, "f1_change": -0.002,
                                         "f1_change_interval": [-0.0041, 0.0003], "default_ok": True},
                         "fp16": {"file": "model_fp16.onnx", "checked_on": None, "default_ok": False,
                                  "check_error": "no CUDA here"}},
            **changes}


def scoring(thresholds: list[float]) -> ScoringConfig:
    return ScoringConfig(thresholds=thresholds, threshold_strategy="per-label", template=TEMPLATES["premise"],
                         max_length=128, base_model="bert-base-uncased",
                         recipe={"model": "bert-base-uncased", "lr": 2e-05, "pooling": "mean", "folds": 5})


def test_the_card_states_model_data_recipe_metrics_thresholds_variants_and_limits():
    thresholds = [round(0.2 + 0.01 * k, 2) for k in range(len(LABELS))]
    training = {"arguments": "/data/arguments-training.tsv", "labels": "/data/labels-training.tsv", "limit": None,
                "rows": 5393, "conclusions": 1000}
    card = render_model_card(scoring(thresholds), manifest(), training)
    assert "- Base model: `bert-base-uncased`, pooling mean" in card
    assert "one fine-tuned checkpoint (fold 2, the run's best)" in card
    assert "- Input: `{Premise}`, at most 128 tokens" in card
    assert "Touché23-ValueEval (Kiesel et al., 2023" in card and "licensed CC BY 4.0" in card
    assert ("Trained on `arguments-training.tsv`: 5393 arguments on 1000 conclusions, labels "
            "`labels-training.tsv`.") in card
    assert "| lr | 2e-05 |" in card and "| folds | 5 |" in card
    assert "| official F1 | 0.4321 ± 0.0123 |" in card and "| macro recall | 0.4702 ± 0.0300 |" in card
    assert "Best fold: 2 (epoch 4, official F1 0.4567" in card
    assert "Validation set (1896 arguments): official F1 **0.4455**" in card
    assert "Strategy: per-label." in card and "| Hedonism | 0.23 |" in card  # CV_SUMMARY records no choice
    assert "elsewhere, on the CPU, int8-openvino, then bf16, then int8-static, then int8, then optimized, then fp32" in card
    assert "| fp32 | model.onnx | PyTorch's within 2.5e-06 on 1024 arguments | - | yes (the reference) |" in card
    assert ("| int8-static | model_static_int8.onnx | 99.68% of 21460 | -0.0020 (-0.0041 to +0.0003) | yes |"
            in card)
    assert "| fp16 | model_fp16.onnx | not checked here (no CUDA here) | - | no |" in card
    assert "## Intended use and limits" in card and "English arguments from debate portals" in card


def test_what_was_not_recorded_is_said_so():
    card = render_model_card(scoring([0.3] * len(LABELS)), manifest(cv=None, variants={}), None)
    assert "The training file was not recorded with this checkpoint." in card
    assert "No cross-validation or validation scores were recorded with this checkpoint." in card
    assert "One threshold for every label: 0.30." in card
    assert "| int8 |" not in card


def test_a_student_with_centred_targets_says_where_its_threshold_of_one_half_comes_from():
    student = ScoringConfig(thresholds=[0.5] * len(LABELS), threshold_strategy="global", template=TEMPLATES["premise"],
                            max_length=128, base_model="m", recipe={"sharpness": 4.0,
                                                                    "centred_on_thresholds": [0.46] * len(LABELS)})
    card = render_model_card(student, manifest(cv={"distilled_from": ["runs/x"]}), None)
    assert "Strategy: global, 0.5: it learned the ensemble's probabilities centred on the ensemble's thresholds" in card
    student.recipe = {"sharpness": 1.0, "centred_on_thresholds": None}
    card = render_model_card(student, manifest(cv={"distilled_from": ["runs/x"]}), None)
    assert "Strategy: global, those of the ensemble it was distilled from" in card


def test_export_of_a_run_writes_the_card_from_its_records(tmp_path):
    run = fake_run(tmp_path / "run", seed=0)
    make_checkpoint("bert", run.best.path, threshold=0.35)
    run.best.write_summary({**CV_SUMMARY, "thresholds": {"strategy": "global", "thresholds": [0.35] * len(LABELS)}})
    (run.path / "cv-report.json").write_text(json.dumps({"data": {"rows": 60, "conclusions": 12}}))
    export_model(run.path, tmp_path / "model", log=lambda _: None)
    card = (tmp_path / "model" / MODEL_CARD_NAME).read_text()
    assert "- Base model: `tiny-bert`" in card
    assert f"Trained on `{(EXAMPLES / 'arguments.tsv').name}`: 60 arguments on 12 conclusions" in card
    assert "| official F1 | 0.4321 ± 0.0123 |" in card and "One threshold for every label: 0.35." in card
    assert "Strategy: global, chosen on the run's out-of-fold predictions." in card
    sha256 = json.loads((tmp_path / "model" / "manifest.json").read_text())["onnx"]["sha256"]
    assert f"sha256 `{sha256}`" in card


def test_the_card_says_in_one_sentence_what_the_model_learnt_and_was_judged_on():
    training = {"arguments": ["/d/arguments-training.tsv", "/d/arguments-validation.tsv"], "labels": [],
                "rows": 7289, "conclusions": 489,
                "out_of_fold_f1": 0.4659}
    student = manifest(cv={"distilled_from": ["runs/p"], "validation": {}})
    card = render_model_card(scoring([0.5] * len(LABELS)), student, training)
    assert ("Trained on 7,289 labelled arguments (`arguments-training.tsv` + `arguments-validation.tsv`); judged out "
            "of fold only") in card
    assert "the fold models it was distilled from score **0.4659**" in card
    card = render_model_card(scoring([0.5] * len(LABELS)), manifest(), {**training, "rows": 5393})
    assert "judged on the 1,896 arguments of the validation set, which it never saw." in card


def test_a_directory_cut_to_one_variant_names_only_the_files_it_holds(tiny_exported, tmp_path):
    from export.packaging import cut_model_dir
    from scorer.model import ScoringModel

    source = tmp_path / "exported"
    shutil.copytree(tiny_exported, source)
    compact_model(source / "model.onnx", source / "model_compact.onnx")
    config = ScoringConfig.load(source)
    config.variants["fp32-compact"] = {"file": "model_compact.onnx", "default_ok": True}
    config.variants["int8"] = {"file": "model_quantized.onnx", "default_ok": True}  # named, absent from the cut
    config.save(source)
    record = json.loads((source / "manifest.json").read_text())
    record["variants"]["fp32-compact"] = {"file": "model_compact.onnx", "checked_on": "cpu", "labels": 20,
                                          "label_agreement": 1.0, "default_ok": True, "sha256": "cd" * 32}
    (source / "manifest.json").write_text(json.dumps(record))

    training = {"rows": 60, "conclusions": 9, "arguments": "a.tsv", "labels": "l.tsv"}
    package = cut_model_dir(source, tmp_path / "package", ["model_compact.onnx"], training)
    held = {path.name for path in package.iterdir()}
    assert "model_compact.onnx" in held and "model.onnx" not in held
    named = re.findall(r"model[\w.]*\.onnx", "\n".join((package / name).read_text()
                                                      for name in ("argvalues.json", "manifest.json", "README.md")))
    assert named and set(named) <= held, f"names files the package lacks: {set(named) - held}"
    cut = json.loads((package / "manifest.json").read_text())
    assert cut["reference"]["sha256"] == record["onnx"]["sha256"] and "onnx" not in cut
    assert "| fp32 | not in this directory |" in (package / "README.md").read_text()
    model = ScoringModel(package, device="cpu")
    assert model.variant == "fp32-compact"
    assert not (tmp_path / "package").with_name(".package").exists() and len(list(tmp_path.iterdir())) == 2


def test_a_cut_that_would_hold_no_model_its_records_name_fails_and_leaves_nothing(tiny_exported, tmp_path):
    from export.packaging import cut_model_dir

    source = tmp_path / "exported"
    shutil.copytree(tiny_exported, source)
    (source / "model_other.onnx").write_bytes(b"not named by any record")
    with pytest.raises(ValueError, match="holds none of the ONNX files its records name"):
        cut_model_dir(source, tmp_path / "package", ["model_other.onnx"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exported"]

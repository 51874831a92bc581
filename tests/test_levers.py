"""Recipe levers: several argument/label pairs, level-1 values as an auxiliary head, the value
descriptions as similarity features or as training examples, a share of the conclusions, and the student made by `train`."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import EXAMPLES, make_base_model, tiny_tokenizer

from argvalues.contract import CONCLUSION, ID_COLUMN, LABELS, read_arguments, read_labels
from argvalues.errors import ArgvaluesError, DataError
from trainer.config import TrainConfig
from trainer.cv import run_cross_validation
from trainer.modeling import load_classifier
from trainer.pooling import MeanPoolingClassifier, masked_mean
from trainer.training_data import keep_conclusions, read_description_examples, read_training_pairs

VALUES = {category: {f"{category} value": [f"protecting {category.split(':')[0].lower()}"],
                     f"{category} other": ["fast food harms the health of children"]} for category in LABELS}


def split_examples(directory):
    """The 60 example arguments as two argument/label file pairs, and level-1 labels for each: two
    values per category, the first one the category itself, the second never present."""
    arguments, labels = read_arguments(EXAMPLES / "arguments.tsv"), read_labels(EXAMPLES / "labels.tsv")
    level1 = pd.DataFrame({ID_COLUMN: labels[ID_COLUMN]})
    for category in LABELS:
        level1[f"{category} value"], level1[f"{category} other"] = labels[category], 0
    pairs = []
    for k, rows in enumerate((slice(0, 30), slice(30, 60))):
        paths = [directory / f"{name}-{k}.tsv" for name in ("arguments", "labels", "level1")]
        for frame, path in zip((arguments, labels, level1), paths):
            frame.iloc[rows].to_csv(path, sep="\t", index=False)
        pairs.append([str(p) for p in paths])
    (directory / "value-categories.json").write_text(json.dumps(VALUES))
    return pairs, str(directory / "value-categories.json")


@pytest.fixture(scope="module")
def lever_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("levers")
    pairs, descriptions = split_examples(root)
    base = make_base_model("bert", root / "base")
    config = TrainConfig(arguments=[p[0] for p in pairs], labels=[p[1] for p in pairs],
                         level1_labels=[p[2] for p in pairs], descriptions=descriptions,
                         distill=True, unlabelled=[str(EXAMPLES / "to-score.tsv")],
                         output=str(root / "run"), model=str(base), folds=2, epochs=1, batch_size=8,
                         max_length=48, lr=1e-3)
    messages = []
    report = run_cross_validation(config, log=messages.append)
    return root, config, report, messages


def test_several_pairs_train_as_one_set_with_folds_grouped_over_all(lever_run):
    root, _, report, _ = lever_run
    assert report["data"]["rows"] == 60
    oof = pd.read_csv(root / "run" / "oof-probabilities.tsv", sep="\t", dtype={ID_COLUMN: str})
    arguments = read_arguments(EXAMPLES / "arguments.tsv").set_index(ID_COLUMN)
    assert sorted(oof[ID_COLUMN]) == sorted(arguments.index)
    folds_of_conclusion = oof.assign(conclusion=arguments.loc[oof[ID_COLUMN], CONCLUSION].to_numpy()) \
        .groupby("conclusion")["fold"].nunique()
    assert (folds_of_conclusion == 1).all()  # no conclusion on both sides, whichever file it came from
    assert set(oof["fold"]) == {0, 1}


def test_an_argument_in_two_pairs_is_refused(tmp_path):
    with pytest.raises(DataError, match="occurs in more than one file"):
        read_training_pairs([str(EXAMPLES / "arguments.tsv")] * 2, [str(EXAMPLES / "labels.tsv")] * 2)


def test_the_level1_head_trains_beside_the_categories_and_is_not_exported(lever_run):
    import onnx

    from export.onnx import export_model

    root, _, _, _ = lever_run
    fold_model = load_classifier(str(root / "run" / "folds" / "fold-0" / "model"))
    assert isinstance(fold_model, MeanPoolingClassifier)
    assert fold_model.level1_classifier.out_features == 2 * len(LABELS)
    assert fold_model.config.argvalues_level1_labels[:2] == [f"{LABELS[0]} value", f"{LABELS[0]} other"]
    manifest = export_model(root / "run" / "best", root / "best-model", log=lambda _: None)
    assert manifest["parity"]["max_abs_difference"] < 1e-5
    graph = onnx.load(str(root / "best-model" / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits"]
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == len(LABELS)


def test_level1_targets_add_their_loss_to_the_categories_loss(tmp_path):
    from trainer.losses import trainer_class

    base = make_base_model("bert", tmp_path / "base")
    model = load_classifier(str(base), pooling="mean", level1_labels=["a", "b", "c"]).eval()
    batch = dict(tiny_tokenizer("bert")(["we should ban fast food", "nature has a value"], padding=True,
                                        return_tensors="pt"))
    categories = torch.tensor(np.eye(2, len(LABELS)), dtype=torch.float32)
    level1 = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    trainer = trainer_class("bce-pos-weight", np.full(len(LABELS) + 3, 2.0, dtype=np.float32)).__new__(
        trainer_class("bce-pos-weight", np.full(len(LABELS) + 3, 2.0, dtype=np.float32)))
    with torch.no_grad():
        both = trainer.compute_loss(model, {**batch, "labels": torch.cat([categories, level1], 1)})
        out = model(**batch, return_level1=True)
        weight = torch.full((len(LABELS),), 2.0)
        by_hand = (torch.nn.functional.binary_cross_entropy_with_logits(out.logits, categories, pos_weight=weight)
                   + torch.nn.functional.binary_cross_entropy_with_logits(out.level1_logits, level1,
                                                                          pos_weight=weight[:3]))
        alone = trainer.compute_loss(model, {**batch, "labels": categories})
    torch.testing.assert_close(both, by_hand)
    assert alone < both


def test_description_features_are_cosine_similarities_read_by_the_head(tmp_path):
    base = make_base_model("bert", tmp_path / "base")
    phrases = ["fast food harms the health of children", "nature has a value of its own"]
    model = load_classifier(str(base), pooling="mean", descriptions=phrases).eval()
    tokenizer = tiny_tokenizer("bert")
    with torch.no_grad():
        encoded = tokenizer(phrases, padding=True, return_tensors="pt")
        expected = torch.nn.functional.normalize(masked_mean(model.encoder(**encoded).last_hidden_state,
                                                             encoded["attention_mask"]), dim=-1)
        torch.testing.assert_close(model.description_embeddings, expected)
        batch = tokenizer(["we should ban fast food"], return_tensors="pt")
        pooled = masked_mean(model.encoder(**batch).last_hidden_state, batch["attention_mask"])
        cosine = torch.nn.functional.cosine_similarity(pooled[:, None, :], expected[None], dim=-1)
        by_hand = model.classifier(torch.cat([pooled, cosine], dim=-1))
        torch.testing.assert_close(model(**batch).logits, by_hand)
    assert model.classifier.in_features == model.config.hidden_size + 2
    model.save_pretrained(tmp_path / "checkpoint")
    reloaded = load_classifier(str(tmp_path / "checkpoint"))
    torch.testing.assert_close(reloaded.description_embeddings, model.description_embeddings, atol=0, rtol=0)


def test_train_distils_its_student_and_export_takes_it(lever_run):
    from export.onnx import export_model
    from scorer.model import ScoringModel

    root, config, report, messages = lever_run
    student = root / "run" / "student" / "best"
    assert report["student"]["rows"] == 60 + len(read_arguments(EXAMPLES / "to-score.tsv"))
    assert json.loads((root / "run" / "cv-report.json").read_text())["student"]["rows"] == report["student"]["rows"]
    assert any("unlabelled arguments from" in m for m in messages)
    recipe = json.loads((student / "argvalues.json").read_text())["recipe"]
    assert recipe["descriptions"] == config.descriptions  # the student reads the descriptions too
    assert load_classifier(str(student)).description_embeddings.shape[0] == 2 * len(LABELS)
    manifest = export_model(root / "run", root / "model", log=lambda _: None)
    assert manifest["source_checkpoint"] == str(student.resolve())
    assert ScoringModel(root / "model", device="cpu").probabilities(
        read_arguments(EXAMPLES / "to-score.tsv")).shape[1] == len(LABELS)
    resumed = []
    run_cross_validation(TrainConfig(**{**config.to_dict(), "resume": True}), log=resumed.append)
    assert "fold 1: already done, kept" in resumed and any(m.startswith("student: already done") for m in resumed)
    # the student's targets were centred on the run's thresholds: re-chosen thresholds train it again
    rethresholded = []
    run_cross_validation(TrainConfig(**{**config.to_dict(), "resume": True, "thresholds": "per-label"}),
                         log=rethresholded.append)
    assert any("centred on other thresholds" in m for m in rethresholded)
    run_thresholds = json.loads((root / "run" / "best" / "argvalues.json").read_text())["thresholds"]
    recipe = json.loads((student / "argvalues.json").read_text())["recipe"]
    assert recipe["centred_on_thresholds"] == run_thresholds and len(set(run_thresholds)) > 1
    # a student trained before it started from the best fold model (no "started_from") is trained again
    settings = json.loads((student / "argvalues.json").read_text())
    del settings["recipe"]["started_from"]
    (student / "argvalues.json").write_text(json.dumps(settings))
    restarted = []
    run_cross_validation(TrainConfig(**{**config.to_dict(), "resume": True, "thresholds": "per-label"}),
                         log=restarted.append)
    assert any("started from the base model" in m for m in restarted)
    assert json.loads((student / "argvalues.json").read_text())["recipe"]["started_from"] == "best fold"


def test_train_trains_each_input_view_as_a_run_and_the_student_learns_them_joined(tmp_path):
    from trainer.run_dir import RunDir, joined_out_of_fold, joined_thresholds

    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                         views=["premise"], thresholds="per-label", output=str(tmp_path / "run"),
                         model=str(make_base_model("bert", tmp_path / "base")), folds=2, epochs=1, batch_size=8,
                         max_length=48, lr=1e-3)
    messages = []
    report = run_cross_validation(config, log=messages.append)
    run, view = tmp_path / "run", tmp_path / "run" / "views" / "premise"
    assert RunDir(view).config().template == "premise" and RunDir(run).config().template == config.template
    assert not (view / "student").exists() and (view / "best").is_dir()
    assert any(m.startswith("premise: fold 2/2") for m in messages)
    oof, view_oof = RunDir(run).read_out_of_fold(), RunDir(view).read_out_of_fold()
    assert (view_oof.loc[oof.index, "fold"] == oof["fold"]).all()  # the same folds grouped by conclusion
    targets, joined, _ = joined_out_of_fold([run, view], same_input=False)
    assert np.allclose(joined, (oof[LABELS].to_numpy() + view_oof.loc[oof.index, LABELS].to_numpy()) / 2)
    assert set(report["views"]["views"]) == {"premise"} and 0 <= report["views"]["joined_out_of_fold_f1"] <= 1
    assert "[premise](views/premise/cv-report.md)" in (run / "cv-report.md").read_text()
    student = run / "student" / "best"
    recipe = json.loads((student / "argvalues.json").read_text())["recipe"]
    assert recipe["distilled_from"] == [str(run), str(view)]
    assert recipe["centred_on_thresholds"] == joined_thresholds([run, view], "per-label", same_input=False)["thresholds"]
    kept = []
    run_cross_validation(TrainConfig(**{**config.to_dict(), "resume": True}), log=kept.append)
    assert "premise: fold 2: already done, kept" in kept and any(m.startswith("student: already done") for m in kept)
    # without the views the student learns the run's folds alone: trained again
    alone = []
    run_cross_validation(TrainConfig(**{**config.to_dict(), "resume": True, "views": []}), log=alone.append)
    assert any(m.startswith("student: it learnt") for m in alone) and not any(m.startswith("premise:") for m in alone)
    assert json.loads((student / "argvalues.json").read_text())["recipe"]["distilled_from"] == [str(run)]


def test_views_are_checked_and_parsed():
    from click.testing import CliRunner

    from trainer.cli import train

    with pytest.raises(ArgvaluesError, match="--views must name templates"):
        TrainConfig(arguments="a", labels="l", output="o", views=["nope"])
    with pytest.raises(ArgvaluesError, match="not --template"):
        TrainConfig(arguments="a", labels="l", output="o", views=["premise"], template="premise")
    assert TrainConfig(arguments="a", labels="l", output="o", views=["premise"]).trained_views() == ["premise"]
    assert TrainConfig(arguments="a", labels="l", output="o", views=["premise"], distill=False).trained_views() == []
    assert TrainConfig.from_dict({"arguments": "a", "labels": "l", "output": "o"}).views == []  # runs before views
    result = CliRunner().invoke(train, ["--arguments", "a", "--labels", "l", "--views", "premise,nope"])
    assert result.exit_code != 0 and "--views must name templates" in result.output and "Traceback" not in result.output


def test_a_share_of_the_conclusions_is_drawn_whole_and_nested():
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    small, large = keep_conclusions(arguments, 0.4, 7), keep_conclusions(arguments, 0.8, 7)
    assert 0 < small.sum() < large.sum() < len(arguments) and not (small & ~large).any()
    kept = set(arguments[CONCLUSION][small])
    assert arguments[CONCLUSION].isin(kept).sum() == small.sum()  # whole conclusions only
    assert keep_conclusions(arguments, 1.0, 7).all()


def test_lever_options_are_checked():
    with pytest.raises(ArgvaluesError, match="go in pairs"):
        TrainConfig(arguments=["a", "b"], labels=["l"], output="o")
    with pytest.raises(ArgvaluesError, match="one file per --arguments"):
        TrainConfig(arguments=["a", "b"], labels=["l", "m"], level1_labels=["x"], output="o")
    with pytest.raises(ArgvaluesError, match="need --pooling mean"):
        TrainConfig(arguments="a", labels="l", output="o", descriptions="v.json", pooling="model")
    with pytest.raises(ArgvaluesError, match="--description-examples cannot be combined"):
        TrainConfig(arguments="a", labels="l", output="o", level1_labels=["x"], description_examples="v.json")
    with pytest.raises(ArgvaluesError, match="--conclusions-fraction"):
        TrainConfig(arguments="a", labels="l", output="o", conclusions_fraction=0)
    assert TrainConfig(arguments="a", labels="l", output="o").arguments == ["a"]  # runs recorded one path


def test_unreadable_lever_files_fail_before_anything_is_written(tmp_path):
    base = make_base_model("bert", tmp_path / "base")
    common = dict(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"), model=str(base),
                  folds=2, epochs=1, output=str(tmp_path / "run"))
    (tmp_path / "values.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="cannot read value descriptions"):
        run_cross_validation(TrainConfig(descriptions=str(tmp_path / "values.json"), **common), log=lambda _: None)
    with pytest.raises(DataError, match="cannot read value descriptions"):
        run_cross_validation(TrainConfig(description_examples=str(tmp_path / "values.json"), **common), log=lambda _: None)
    (tmp_path / "other.json").write_text(json.dumps({"Not a category": {"v": ["a phrase"]}}))
    with pytest.raises(DataError, match="'Not a category' is not one of the 20 categories"):
        run_cross_validation(TrainConfig(description_examples=str(tmp_path / "other.json"), **common), log=lambda _: None)
    with pytest.raises(DataError, match="cannot read level-1 labels"):
        run_cross_validation(TrainConfig(level1_labels=[str(tmp_path / "missing.tsv")], **common), log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_description_examples_are_one_argument_per_phrasing_labelled_with_its_category(tmp_path):
    path = tmp_path / "value-categories.json"
    path.write_text(json.dumps(VALUES))
    frame, targets = read_description_examples(str(path), LABELS)
    assert len(frame) == len(targets) == 2 * len(LABELS)
    assert frame[ID_COLUMN].is_unique
    assert list(frame["Premise"][:2]) == ["protecting self-direction", "fast food harms the health of children"]
    assert list(frame[CONCLUSION][:2]) == [f"{LABELS[0]} value", f"{LABELS[0]} other"]
    assert set(frame["Stance"]) == {"in favor of"}
    assert (targets.sum(1) == 1).all()
    assert (targets.argmax(1) == np.repeat(np.arange(len(LABELS)), 2)).all()


def test_description_examples_train_every_fold_and_are_never_held_out(tmp_path, monkeypatch):
    import trainer.cv

    (tmp_path / "value-categories.json").write_text(json.dumps(VALUES))
    base = make_base_model("bert", tmp_path / "base")
    trained_on = []
    train_fold = trainer.cv.train_fold

    def recording_train_fold(config, fold, train_set, eval_set, *rest, **options):
        trained_on.append((len(train_set), len(eval_set)))
        return train_fold(config, fold, train_set, eval_set, *rest, **options)

    monkeypatch.setattr(trainer.cv, "train_fold", recording_train_fold)
    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"), model=str(base),
                         description_examples=str(tmp_path / "value-categories.json"), distill=False, folds=2,
                         epochs=1, batch_size=8, max_length=32, output=str(tmp_path / "run"))
    report = run_cross_validation(config, log=lambda _: None)
    assert [train + held for train, held in trained_on] == [60 + 2 * len(LABELS)] * 2
    assert sum(held for _, held in trained_on) == 60
    oof = pd.read_csv(tmp_path / "run" / "oof-probabilities.tsv", sep="\t", dtype={ID_COLUMN: str})
    assert len(oof) == 60 and not oof[ID_COLUMN].str.startswith("description-").any()
    assert report["out_of_fold"]["rows"] == 60
    recipe = json.loads((tmp_path / "run" / "best" / "argvalues.json").read_text())["recipe"]
    assert recipe["description_examples"] == config.description_examples

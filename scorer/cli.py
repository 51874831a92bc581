"""Torch-free commands: ``score`` (also installed on its own), ``evaluate`` and ``predict``."""

from __future__ import annotations

import json
import sys

import click

from argvalues import __version__
from argvalues.cli_support import Command, log, user_errors
from argvalues.errors import ArgvaluesError
from argvalues.formats import FORMATS
from argvalues.model_config import ARGUMENTS, TEXT
from argvalues.variants import VARIANT_FILES
from scorer.options import MODEL_ENV, OUTPUT_FORMATS, ScoreOptions, default_model_dir, parse_column_mappings
from scorer.output_formats import output_format_of
from scorer.score import long_rows_note, score_files
from scorer.windows import DEFAULT_MAX_WINDOWS, DEFAULT_WINDOW_TOKENS, LONG_TEXT, MIN_WINDOW

model_option = click.option(
    "--model", "model_dir", metavar="MODEL_DIR", default=default_model_dir,
    show_default=f"${MODEL_ENV}, else ./argvalues-model, else the packaged model",
    help="Model directory written by 'argvalues export'.",
)
device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="auto uses ONNX Runtime's CUDA provider where a GPU is usable, the CPU otherwise.",
)


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="score")
@model_option
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="One threshold for every label, instead of the model's own: those chosen at training on "
                   "out-of-fold predictions, and a text alone's own (--text-column).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Arguments per ONNX Runtime call (rows are sorted by length within a chunk first).")
@click.option("--batch-tokens", type=click.IntRange(min=0), default=None,
              help="Padded tokens per ONNX Runtime call (rows x longest row); rows per call then grow as rows "
                   "get shorter. Default: 65536 on CUDA, off on the CPU (--batch-size rows); 0: off.")
@device_option
@click.option("--probabilities", is_flag=True, help="Write probabilities instead of 0/1 labels.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Output file, written atomically (a link: the file it points to). A device, FIFO, socket or "
                   "/dev/stdout is written as a stream instead, with nothing beside it. Never one of the inputs. "
                   "Default: standard output.")
@click.option("--format", "input_format", type=click.Choice(FORMATS), default=None,
              help="Input format.  [default: by extension (.tsv .csv .jsonl/.ndjson .parquet, each text format "
                   "also .gz .bz2 .xz .zst); tsv for standard input and other names]")
@click.option("--column", "columns", multiple=True, metavar="FIELD=NAME",
              help="Read the template field FIELD (Premise, Conclusion, Stance) from the input column NAME; "
                   "repeatable, e.g. --column Premise=text.")
@click.option("--text-column", metavar="NAME", default=None,
              help="Score a text alone in each row (a post, a comment, a speech) from the input column NAME, "
                   "instead of arguments; for models trained to read texts (train's student is, by default).")
@click.option("--long-text", type=click.Choice(LONG_TEXT), default="windows", show_default=True,
              help="A row longer than the model's max length (128 tokens, about 90 words): windows scores it "
                   "as overlapping windows of --window-tokens (an argument's premise is windowed, each window "
                   "keeps its stance and conclusion) and takes each value's largest probability; truncate "
                   "reads its first max length only. A row that fits is read whole either way.")
@click.option("--window-tokens", type=click.IntRange(min=MIN_WINDOW), default=DEFAULT_WINDOW_TOKENS, show_default=True,
              help="The length of a long row's windows, in tokens (at most the max length; neighbours share a "
                   "quarter): about one argument's length, the input the models learnt from.")
@click.option("--max-windows", type=click.IntRange(min=1), default=DEFAULT_MAX_WINDOWS, show_default=True,
              help="Windows per row at most; the rest of a longer row is cut, and counted.")
@click.option("--id-column", metavar="NAME", default=None,
              help="The input column holding the IDs.  [default: 'Argument ID'; an input without it gets row "
                   "numbers (counted from 1 across the inputs) as IDs]")
@click.option("--keep-columns", "keep_columns", multiple=True, metavar="NAME[,NAME...]",
              help="Input columns to carry into the output, after the ID (repeatable or comma-separated).")
@click.option("--output-format", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Output format.  [default: by the -o extension (.csv .jsonl .parquet), else tsv]")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=8192, show_default=True,
              help="Rows read, scored and written at a time; bounds memory.")
@click.option("--variant", type=click.Choice(["auto", *VARIANT_FILES]), default="auto", show_default=True,
              help="Which variant of the model to run; auto: the fastest whose labels held at export (as export "
                   "measured on this machine, else by CPU features: int8-openvino, bf16, int8-static, int8, optimized, fp32).")
@click.option("--on-bad-row", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A row that breaks the contract (wrong field count, not UTF-8, empty Premise or Conclusion, "
                   "unknown Stance, duplicate Argument ID): stop with an error naming file, line and column, or "
                   "skip it, count it and write it to the rejects file.")
@click.option("--rejects", type=click.Path(dir_okay=False), default=None,
              help="Where skipped rows go (File, Line, Column, Reason, Row). Default with -o: OUTPUT.rejects.tsv.")
@click.option("--max-bad-rows", metavar="N|N%", default=None,
              help="With --on-bad-row skip: fail (exit 3, nothing published) when more than N rows, or more than "
                   "N% of the rows read, are rejected.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted -o run from its last finished chunk (same inputs, model, options "
                   "and engine, else refused); without an unfinished run, start from the beginning.")
@click.option("--quiet", is_flag=True, help="No progress and no provider line on stderr.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process. ray: Ray Data over a Ray cluster (pip install 'argvalues[ray]'); "
                   "INPUT may then also be a directory of .tsv/.tsv.gz files or a URI Ray can read (s3://...).")
@click.option("--address", default=None, metavar="ADDR",
              help="--engine ray: the Ray cluster to join (e.g. ray://head:10001 or auto); default: start a "
                   "local Ray instance.")
@click.option("--num-workers", type=click.IntRange(min=1), default=None,
              help="--engine ray: scoring actors, each with one ONNX Runtime session.  [default: 1]")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="--engine ray: GPUs each actor asks Ray for; above 0, the actors run on CUDA.  [default: 0]")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0, min_open=True), default=None,
              help="--engine ray: CPUs each actor asks Ray for (its ONNX Runtime threads).  "
                   "[default: local cores / workers; 1 on a cluster]")
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@user_errors
def score(model_dir, threshold, batch_size, batch_tokens, device, probabilities, output, input_format, columns,
          text_column, long_text, window_tokens, max_windows, id_column, keep_columns, output_format, chunk_rows, variant,
          on_bad_row, rejects, max_bad_rows, resume, quiet, engine, address, num_workers, gpus_per_worker,
          cpus_per_worker, inputs):
    """Label arguments (Argument ID, Conclusion, Stance, Premise: the fields the model's template
    reads), or texts alone (--text-column), in TSV, CSV, JSON lines or Parquet files.

    Writes Argument ID and the 20 value categories (official order) as 0/1, one row per input
    row, in input order: 1 where the value's probability reaches the model's threshold for it.
    Rows longer than the model's max length are read in windows (--long-text). INPUT may be
    compressed (.gz .bz2 .xz .zst) or '-' for standard input.
    Progress (rows, rows/s) goes to stderr when it is a terminal. With -o the output appears only
    when complete, with OUTPUT.meta.json beside it (model, inputs, versions, row counts, times).

    \b
    Exit codes: 0 ok (skipped rows, if any, are reported on stderr), 1 bad option, 2 usage
    (also an output that is one of the inputs), 3 bad input data (more bad rows than
    --max-bad-rows, or every row rejected), 4 bad model directory, 6 output not writable
    (disk full), 7 --resume refused, 8 another run is writing -o OUTPUT, 130 interrupted,
    143 terminated (SIGTERM).
    """
    keep = [name.strip() for value in keep_columns for name in value.split(",") if name.strip()]
    options = ScoreOptions(model_dir=model_dir, threshold=threshold, batch_size=batch_size,
                           batch_tokens=batch_tokens, device=device,
                           probabilities=probabilities, chunk_rows=chunk_rows, variant=variant, on_bad_row=on_bad_row,
                           rejects=rejects, resume=resume, max_bad_rows=max_bad_rows, input_format=input_format,
                           columns=parse_column_mappings(columns), id_column=id_column, keep_columns=keep,
                           output_format=output_format or output_format_of(output), text_column=text_column,
                           long_text=long_text, max_windows=max_windows, window_tokens=window_tokens)
    ray_settings = dict(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker,
                        cpus_per_worker=cpus_per_worker)
    progress = not quiet and sys.stderr.isatty()
    if engine == "ray":
        ray_engine = _ray_engine()
        ray_options = ray_engine.RayOptions(**{k: v for k, v in ray_settings.items() if v is not None})
        stats = ray_engine.score_with_ray(list(inputs), output, options, ray_options, progress=progress,
                               log=None if quiet else log)
    else:
        given = [f"--{name.replace('_', '-')}" for name, value in ray_settings.items() if value is not None]
        if given:
            raise ArgvaluesError(f"{', '.join(given)} only apply with --engine ray")
        stats = score_files(list(inputs), output, options, progress=progress, log=None if quiet else log)
    if not quiet:
        log(f"scored {stats.rows} rows in {stats.seconds:.1f} s ({stats.rows_per_second:.0f} rows/s)")
        note = long_rows_note(stats, options)
        if note:
            log(note)
    if stats.rejected:
        where = f"; written to {stats.rejects_path}" if stats.rejects_path else ""
        log(f"warning: skipped {stats.rejected} bad row(s){where}")
        for reject in stats.first_rejects:
            column = f" column '{reject.column}':" if reject.column else ""
            log(f"  {reject.file}: line {reject.line}:{column} {reject.reason}")


@click.command(cls=Command)
@click.argument("predictions", type=click.Path(dir_okay=False))
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Threshold for a predictions file that holds probabilities.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@user_errors
def evaluate(predictions, labels, threshold, as_json):
    """Official ValueEval scores of PREDICTIONS (a 'score' output) against LABELS.

    Per label precision and recall; F1 is the harmonic mean of their macro averages, as in
    the organisers' evaluator.
    """
    from scorer.evaluate import evaluate_files, render_evaluation

    result = evaluate_files(predictions, labels, threshold)
    if result["missing_predictions"]:
        log(f"warning: {result['missing_predictions']} labelled argument(s) have no prediction; counted as no label")
    if result["unknown_predictions"]:
        log(f"warning: {result['unknown_predictions']} prediction(s) have no labels; ignored")
    click.echo(json.dumps(result, indent=2) if as_json else render_evaluation(result))


@click.command(cls=Command)
@model_option
@click.option("--text", default=None, help="A text alone (for models trained to read texts, as the packaged model is).")
@click.option("--premise", default=None, help="The argument's premise.")
@click.option("--stance", default="in favor of", show_default=True, help="'in favor of' or 'against' (or pro, con).")
@click.option("--conclusion", default=None, help="The conclusion it argues for or against.")
@device_option
@user_errors
def predict(model_dir, text, premise, stance, conclusion, device):
    """One argument's values (or one text's, with --text) with their probabilities, for a quick look."""
    from scorer.predict import predict_one, predict_text, render_prediction

    if text is not None:
        if premise is not None or conclusion is not None:
            raise ArgvaluesError("--text scores a text alone; --premise and --conclusion an argument: give one or the other")
        click.echo(render_prediction(predict_text(model_dir, device, text)))
        return
    if premise is None or conclusion is None:
        raise click.UsageError("give --premise and --conclusion (an argument), or --text (a text alone)")
    click.echo(render_prediction(predict_one(model_dir, device, premise, stance, conclusion)))


@click.command(cls=Command)
@click.argument("scores", type=click.Path(dir_okay=False))
@click.option("--by", "by", multiple=True, metavar="COLUMN",
              help="Also per group of this column (one carried into the scores by score --keep-columns); repeatable.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write DIR/summary.csv, DIR/differences.csv (with --by) and DIR/profile.png (with matplotlib).")
@click.option("--model", "model_dir", metavar="MODEL_DIR", default=None,
              help="The model that made the scores.  [default: the one their sidecar SCORES.meta.json names]")
@click.option("--reading", type=click.Choice([ARGUMENTS, TEXT]), default=None,
              help="How the scores were made: arguments, or texts alone (score --text-column).  [default: as the "
                   "sidecar says, else arguments]")
@user_errors
def summarize(scores, by, output, model_dir, reading):
    """What a scored corpus says: for each value, overall and per group, the rows, the share
    labelled, the prevalence corrected for the model's measured error rates and its 95% interval.

    SCORES is a score output (TSV, CSV, JSON lines or Parquet; labels or probabilities). The
    correction uses the error rates the model directory records; where it does not apply (scores
    made with --threshold, rows read in windows, rates not recorded) the shares are reported alone,
    and the table says why. Between the groups of a --by column, the differences with their
    intervals go to DIR/differences.csv.
    """
    from scorer.summarize import render_summary, summarize_file

    summary, _, source = summarize_file(scores, list(by), model_dir, reading, output)
    click.echo(render_summary(summary, source))
    if output:
        log(f"wrote {output}/summary.csv" + (f" and {output}/differences.csv" if by else ""))


@click.command(cls=Command)
def values():
    """The 20 value categories: their higher-order value, level-1 values and what each means."""
    from argvalues.values import render_values

    click.echo(render_values())


def _ray_engine():
    try:
        from scorer import ray_engine
    except ImportError as error:
        raise ArgvaluesError(f"--engine ray needs Ray ({error}); install it with: pip install 'argvalues[ray]'") from None
    return ray_engine


def main() -> None:
    score(prog_name="score")

"""The ``clothcurate`` command: a thin click group over the library.

Each command parses its options, calls one library function, prints its summary and sets the exit
code: 0 on success, 2 on bad input or usage, 1 on any other failure. Heavy imports (FiftyOne,
PyTorch) happen inside the commands, so ``--help`` is instant and training runs without FiftyOne.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.workspace import DEFAULT_DATASET

dataset_option = click.option("--dataset", default=DEFAULT_DATASET, show_default=True,
                              help="FiftyOne dataset name.")


def _handle_errors(fn):
    """Turn library exceptions into one-line messages and exit codes (2 bad input, 1 failure)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BadInputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except ClothcurateError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; re-run the same command to complete", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clothcurate")
def main():
    """Build, clean and benchmark clothing-segmentation datasets (CCP, CFPD) for soft biometrics.

    \b
    Typical session:
      clothcurate ingest --ccp ../shared/datasets/ccp
      clothcurate flag-errors
      clothcurate review                      # tag samples reject / ok in the FiftyOne App
      clothcurate export-folds --out folds/ --crop person --size 320
      clothcurate train-eval --arch fpn --data folds/ --out runs/fpn
      clothcurate report --runs runs/fpn --out report/
    """


@main.command()
@click.option("--ccp", type=click.Path(path_type=Path), help="CCP folder (photos/, annotations/, label_list.mat).")
@click.option("--cfpd", type=click.Path(path_type=Path), help="CFPD folder (fashon_parsing_data.mat, image/).")
@dataset_option
@click.option("--labelmap", "labelmaps", multiple=True, type=click.Path(path_type=Path),
              help="Edited copy of a label map (YAML); its 'source:' says which source it replaces. Repeatable.")
@click.option("--overwrite", is_flag=True, help="Delete and rebuild the samples of the given sources.")
@click.option("--strict", is_flag=True, help="Stop at the first bad sample instead of skipping it.")
@click.option("--workers", type=int, default=None, help="Decoding processes (default: CPU count).")
@_handle_errors
def ingest(ccp, cfpd, dataset, labelmaps, overwrite, strict, workers):
    """Ingest CCP and/or CFPD into a FiftyOne dataset, remapped to the 15 classes of Table I.

    Writes the 15-class and the raw masks as PNG under $CLOTHCURATE_HOME and adds one sample per
    photo. Re-running adds only what is missing; bad samples are skipped and listed in
    ingest_report.json (exit code 0), unless --strict.
    """
    from clothcurate.curation.ingest import ingest as run_ingest

    if not ccp and not cfpd:
        raise BadInputError("nothing to ingest: pass --ccp DIR and/or --cfpd DIR")
    report = run_ingest(ccp=ccp, cfpd=cfpd, dataset=dataset, labelmaps=list(labelmaps),
                        overwrite=overwrite, strict=strict, workers=workers, progress=True)
    click.echo(report.summary())


@main.command()
@dataset_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_handle_errors
def status(dataset, as_json):
    """Show samples per source, tags (reject/ok/bg_only/suspicious), fields, folds and runs."""
    from clothcurate.curation.status import dataset_status, format_status

    st = dataset_status(dataset)
    click.echo(json.dumps(st, indent=None if as_json else 2) if as_json else format_status(st))


@main.command("flag-errors")
@dataset_option
@click.option("--model", "model_run", type=click.Path(path_type=Path), default=None,
              help="A train-eval run folder: add model-assisted (confident-learning) findings.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_handle_errors
def flag_errors(dataset, model_run, as_json):
    """Score every annotation: writes issues, label_quality, tags bg_only/suspicious and saved views.

    Re-running replaces its own results; people's reject/ok tags are never touched.
    """
    from clothcurate.curation.flags import flag_errors as run_flags

    report = run_flags(dataset, model_run=model_run, progress=not as_json)
    click.echo(json.dumps(report.to_dict()) if as_json else report.summary())


@main.command()
@dataset_option
@click.option("--view", default=None, help="Saved view to open (bg-only, suspicious, best-fpn ...).")
@click.option("--port", default=5151, show_default=True, help="App port.")
@click.option("--address", default="localhost", show_default=True, help="Address to serve the App on.")
@_handle_errors
def review(dataset, view, port, address):
    """Launch the FiftyOne App on the dataset; tag samples 'reject' or 'ok'. Ctrl-C stops it."""
    from clothcurate.curation.review import launch

    launch(dataset, view=view, port=port, address=address)


@main.command("export-folds")
@dataset_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Export folder.")
@click.option("--folds", default=5, show_default=True, help="Number of folds k.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the stratification.")
@click.option("--format", "fmt", type=click.Choice(["png", "coco", "both"]), default="png", show_default=True)
@click.option("--crop", type=click.Choice(["none", "person"]), default="none", show_default=True,
              help="Crop each photo to the person box (with a margin).")
@click.option("--size", type=int, default=None, help="Resize crops to SIZE x SIZE (e.g. 320).")
@click.option("--keep-flagged", is_flag=True, help="Keep bg_only samples (reject ones are always left out).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
@click.option("--jpeg-quality", default=95, show_default=True,
              help="JPEG quality of re-encoded (cropped) photos; lower makes a smaller folder to ship.")
@_handle_errors
def export_folds(dataset, out, folds, seed, fmt, crop, size, keep_flagged, overwrite, jpeg_quality):
    """Export cleaned, multilabel-stratified k-fold splits (writes each sample's fold to FiftyOne)."""
    from clothcurate.curation.export import export_folds as run_export

    report = run_export(dataset=dataset, out=out, folds=folds, seed=seed, fmt=fmt,
                        crop=None if crop == "none" else crop, size=size,
                        keep_flagged=keep_flagged, overwrite=overwrite, progress=True, jpeg_quality=jpeg_quality)
    click.echo(report.summary())


@main.command("train-eval")
@click.option("--arch", required=True, type=click.Choice(["fpn", "unet", "linknet", "pspnet"]))
@click.option("--encoder", default="tf_efficientnet_lite0", show_default=True)
@click.option("--encoder-weights", default="imagenet", show_default=True,
              help="imagenet (offline packages or the user's cache) or none (random init).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="export-folds folder (default: the dataset's latest export).")
@click.option("--folds", "fold_spec", default="all", show_default=True, help="all or a list like 0,1.")
@click.option("--epochs", default=100, show_default=True)
@click.option("--patience", default=10, show_default=True, help="Early stop after this many epochs without improvement.")
@click.option("--image-size", default=320, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--loss", type=click.Choice(["ce", "dice", "focal", "ce+dice"]), default="ce", show_default=True)
@click.option("--monitor", type=click.Choice(["val_loss", "val_miou"]), default="val_loss", show_default=True,
              help="What early stopping and the kept checkpoint follow (the LR plateau follows the loss).")
@click.option("--workers", default=None, type=int,
              help="Data-loader workers per process (default: this node's CPUs shared by its ranks, at most 16).")
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cpu.")
@click.option("--out", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run folder (default: $CLOTHCURATE_HOME/runs/<dataset>/<arch>).")
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True,
              help="FiftyOne dataset whose latest export is the default --data and that predictions are "
                   "written back to (when FiftyOne and the dataset are reachable).")
@click.option("--seed", default=0, show_default=True)
@_handle_errors
def train_eval(**options):
    """Train and evaluate one architecture by k-fold cross-validation (resumable; torchrun for DDP)."""
    from clothcurate.training.run import train_eval as run_train_eval
    from clothcurate.workspace import default_run_dir, last_export

    if options["data_dir"] is None:
        options["data_dir"] = last_export(options["dataset"])
        if options["data_dir"] is None:
            raise BadInputError(f"no export of dataset {options['dataset']!r} recorded; run "
                                "`clothcurate export-folds --out DIR` first or pass --data DIR")
    if options["run_dir"] is None:
        options["run_dir"] = default_run_dir(options["dataset"], options["arch"])
    text = run_train_eval(**options).summary()
    if text:  # empty on torchrun ranks other than 0
        click.echo(text)


@main.command("import-predictions")
@click.argument("run_dir", type=click.Path(path_type=Path))
@dataset_option
@_handle_errors
def import_predictions(run_dir, dataset):
    """Write a run's out-of-fold predictions back to FiftyOne (pred_/iou_/pixel_acc_ + views)."""
    from clothcurate.training.writeback import import_predictions as run_import

    click.echo(run_import(run_dir, dataset=dataset).summary())


@main.command()
@click.option("--runs", "runs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Run folder(s): --runs A B or --runs A --runs B.")
@click.argument("more_runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Report folder.")
@click.option("--dataset", default=None, help="FiftyOne dataset for the curation summary (optional).")
@_handle_errors
def report(runs, more_runs, out, dataset):
    """Write report.html / report.md with the paper's tables and figures beside ours.

    \b
    clothcurate report --runs runs/fpn runs/unet --out report/
    """
    from clothcurate.reports import build_report

    click.echo(build_report([*runs, *more_runs], out, dataset=dataset).summary())


if __name__ == "__main__":
    main()

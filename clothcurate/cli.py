"""The ``clothcurate`` command: a thin click group over the library.

Each command parses its options, calls one library function, prints its summary and sets the exit
code: 0 on success, 2 on bad input or usage, 1 on any other failure. Heavy imports (FiftyOne,
PyTorch) happen inside the commands, so ``--help`` is instant and training runs without FiftyOne.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import click

from clothcurate.errors import BadInputError, ClothcurateError, StoppedWithOtherRank, exit_status
from clothcurate.folders.pseudo import DEFAULT_TAG_RULE, TAG_RULES
from clothcurate.process_setup import setup_command_process
from clothcurate.training.config import (
    AUGMENTATIONS,
    LOSSES,
    MAX_TTA_SCALES,
    MONITORS,
    RECIPES,
    REPEAT_CLASSES,
    SAMPLINGS,
    SCHEDULES,
    parse_tta_scales,
)
from clothcurate.workspace import DEFAULT_DATASET


def _dataset_name(ctx, param, value):
    """A dataset name also names the workspace folder ``<home>/datasets/<name>``: refuse one that
    is empty or would step out of it."""
    if value is not None and (not value.strip() or value in (".", "..") or any(c in value for c in "/\\\0")):
        raise BadInputError(f"--dataset {value!r}: not a dataset name; give a non-empty name without '/' "
                            f"(e.g. --dataset {DEFAULT_DATASET})")
    return value


dataset_option = click.option("--dataset", default=DEFAULT_DATASET, show_default=True, callback=_dataset_name,
                              help="FiftyOne dataset name.")


def _exit_for(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message of an error that reached the command line."""
    code, message = exit_status(exc)
    if not isinstance(exc, (ClothcurateError, OSError)):
        message += " (re-run with `clothcurate --debug ...` for the traceback and report it)"
    return code, message


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def _report_and_exit(exc: BaseException) -> NoReturn:
    """Print one ``error:`` line (after the traceback under ``--debug``) and exit with its code."""
    if isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted; re-run the same command to complete", err=True)
        sys.exit(130)
    if isinstance(exc, StoppedWithOtherRank):  # a torchrun rank: rank 0 prints the failed rank's line
        if _debug():
            traceback.print_exception(exc)
        sys.exit(exc.exit_code)
    if _debug():
        traceback.print_exception(exc)
    code, message = _exit_for(exc)
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _handle_errors(fn):
    """Turn every error into one line and an exit code: 2 bad input (``BadInputError``, or an
    ``OSError`` on a path the user chose: missing, not a folder, read-only, disk full ...), 1 any
    other failure; with ``clothcurate --debug`` the traceback is printed first."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            _report_and_exit(e)

    return wrapper


class _Group(click.Group):
    """The command group: errors raised while a command's options are checked (``--dataset``) are
    reported like the command's own. ``--help`` lists the commands in pipeline order (the order
    they are defined in), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (ClothcurateError, OSError, KeyboardInterrupt) as e:
            _report_and_exit(e)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clothcurate")
@click.option("--debug", is_flag=True, help="On an error, print its traceback too (before the one-line message).")
def main(debug):
    """Build, clean and benchmark clothing-segmentation datasets (CCP, CFPD) for soft biometrics.

    \b
    Typical session:
      clothcurate ingest --ccp ../shared/datasets/ccp
      clothcurate flag-errors
      clothcurate review                      # tag samples reject / ok in the FiftyOne App
      clothcurate fix --key ccp_0004 --relabel dress:coat     # or correct a mask (--undo)
      clothcurate export-folds --out folds/ --crop person --size 320
      clothcurate train-eval --arch fpn --data folds/ --out runs/fpn
      clothcurate report --runs runs/fpn --out report/
      clothcurate predict --run runs/fpn --out pred/ photos/  # segment new photos
    """
    setup_command_process()  # SIGTERM unwinds like Ctrl-C; FiftyOne logs to stderr


@main.command()
@click.option("--ccp", type=click.Path(path_type=Path), help="CCP folder (photos/, annotations/, label_list.mat).")
@click.option("--cfpd", type=click.Path(path_type=Path), help="CFPD folder (fashon_parsing_data.mat, image/).")
@dataset_option
@click.option("--labelmap", "labelmaps", multiple=True, type=click.Path(path_type=Path),
              help="Edited copy of a label map (YAML); its 'source:' says which source it replaces. Repeatable.")
@click.option("--overwrite", is_flag=True,
              help="Delete and rebuild the samples of the given sources (their reject/ok tags, findings and "
                   "predictions are lost; a plain re-run already restores lost masks).")
@click.option("--strict", is_flag=True, help="Stop at the first bad sample instead of skipping it.")
@click.option("--workers", type=int, default=None, help="Decoding processes (default: CPU count).")
@_handle_errors
def ingest(ccp, cfpd, dataset, labelmaps, overwrite, strict, workers):
    """Ingest CCP and/or CFPD into a FiftyOne dataset, remapped to the 15 classes of Table I.

    Writes the 15-class and the raw masks as PNG under $CLOTHCURATE_HOME and adds one sample per
    photo. CCP photos with image-level tags only (annotations/image-level/) become samples without
    a mask (annotation "image", their Table I tags in image_tags); they never enter folds. Re-running
    adds only what is missing and writes lost mask files again (tags and predictions kept); bad samples are skipped and listed in ingest_report.json (exit code 0),
    unless --strict. An ingest that adds no sample to a dataset without samples exits 2 and
    creates nothing.
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
    """Launch the FiftyOne App on the dataset; tag samples 'reject' or 'ok'. Ctrl-C stops it.

    The App's grid offers the clothcurate actions on the selected samples (plugin
    @clothcurate/review, linked into FIFTYONE_PLUGINS_DIR): accept model suggestions, mark ok,
    reject, undo the last mask correction.
    """
    from clothcurate.curation.review import launch

    launch(dataset, view=view, port=port, address=address)


@main.command()
@dataset_option
@click.option("--key", default=None, help="The sample to correct (its key, e.g. ccp_0004).")
@click.option("--relabel", "relabel_spec", default=None, metavar="FROM:TO",
              help="Relabel class FROM as TO (e.g. dress:coat, background:bag).")
@click.option("--region", type=int, default=None,
              help="With --relabel: only region N of FROM (as --list-regions numbers them; 1 = largest).")
@click.option("--list-regions", is_flag=True, help="Print the sample's numbered connected regions per class.")
@click.option("--accept-suggestions", is_flag=True,
              help="Apply the region findings of `flag-errors --model` (label_issues): each region takes the "
                   "suggested class.")
@click.option("--view", default=None, help="With --accept-suggestions: only this saved view's samples (suspicious ...).")
@click.option("--min-confidence", type=float, default=None,
              help="With --accept-suggestions: only findings with p >= this.")
@click.option("--undo", is_flag=True, help="Return the sample to its previous mask version, exactly.")
@click.option("--dry-run", is_flag=True, help="List what would change; write nothing.")
@_handle_errors
def fix(dataset, key, relabel_spec, region, list_regions, accept_suggestions, view, min_confidence, undo, dry_run):
    """Correct masks as new versions (the ingested mask is kept; every change is logged and undoable).

    \b
    clothcurate fix --key ccp_0004 --list-regions
    clothcurate fix --key ccp_0004 --relabel dress:coat [--region 2]
    clothcurate fix --accept-suggestions --view suspicious --min-confidence 0.9 --dry-run
    clothcurate fix --key ccp_0004 --undo
    """
    from clothcurate.curation import fix as fixes

    actions = [name for name, on in (("--relabel", relabel_spec is not None), ("--list-regions", list_regions),
                                     ("--accept-suggestions", accept_suggestions), ("--undo", undo)) if on]
    if len(actions) != 1:
        raise BadInputError(f"give exactly one of --relabel FROM:TO, --list-regions, --accept-suggestions, --undo "
                            f"({'none' if not actions else ' and '.join(actions)} given)")
    action = actions[0]
    misplaced = [name for name, on, allowed in (
        ("--region", region is not None, "--relabel"), ("--view", view is not None, "--accept-suggestions"),
        ("--min-confidence", min_confidence is not None, "--accept-suggestions"),
        ("--dry-run", dry_run, "--relabel --accept-suggestions")) if on and action not in allowed.split()]
    if misplaced:
        raise BadInputError(f"{misplaced[0]} does not go with {action}; see `clothcurate fix --help`")
    if key is None and action != "--accept-suggestions":
        raise BadInputError(f"{action} needs --key KEY (the sample, e.g. ccp_0004)")
    if action == "--relabel":
        src, sep, dst = relabel_spec.partition(":")
        if not sep or not src.strip() or not dst.strip():
            raise BadInputError(f"--relabel {relabel_spec!r}: give FROM:TO, two class names (e.g. dress:coat)")
        report = fixes.relabel(dataset, key=key, from_class=src, to_class=dst, region=region, dry_run=dry_run)
    elif action == "--list-regions":
        report = fixes.list_regions(dataset, key=key)
    elif action == "--undo":
        report = fixes.undo(dataset, key=key)
    else:
        report = fixes.accept_suggestions(dataset, view=view, key=key, min_confidence=min_confidence,
                                          dry_run=dry_run, progress=True)
    click.echo(report.summary())


@main.group(cls=_Group)
def annotate():
    """Edit masks in a real annotation tool (Label Studio; CVAT untested): send, edit there, load.

    \b
    clothcurate annotate send --view suspicious --anno-key round1 --url http://localhost:8080 --api-key KEY
    clothcurate annotate load --anno-key round1 --api-key KEY
    """


def _annotate_backends() -> list[str]:
    from clothcurate.curation.annotate.backends import BACKENDS

    return list(BACKENDS)


_url_option = click.option("--url", default=None, help="The tool's server (default: FIFTYONE_<BACKEND>_URL, else "
                                                      "http://localhost:8080 for Label Studio; load: the run's).")
_api_key_option = click.option("--api-key", default=None,
                               help="The server's API key (default: FIFTYONE_<BACKEND>_API_KEY). Label Studio: "
                                    "Account & Settings > Legacy Token.")
_anno_key_option = click.option("--anno-key", required=True, help="Names the annotation run (e.g. round1).")


@annotate.command("send")
@dataset_option
@click.option("--view", default=None, help="Saved view to send (suspicious, bg-only ...); default: every sample.")
@click.option("--key", "keys", multiple=True, help="Send only this sample (repeatable), e.g. --key ccp_0004.")
@click.option("--backend", type=click.Choice(_annotate_backends()), default="labelstudio", show_default=True)
@_url_option
@_api_key_option
@_anno_key_option
@_handle_errors
def annotate_send(dataset, view, keys, backend, url, api_key, anno_key):
    """Upload photos with their current masks (one brush region per class) as pre-annotations."""
    from clothcurate.curation.annotate import send

    click.echo(send(dataset, anno_key=anno_key, backend=backend, view=view, keys=keys, url=url,
                    api_key=api_key).summary())


@annotate.command("load")
@dataset_option
@_anno_key_option
@_url_option
@_api_key_option
@click.option("--cleanup", is_flag=True, help="Afterwards delete the run (its project on the server too).")
@_handle_errors
def annotate_load(dataset, anno_key, url, api_key, cleanup):
    """Bring the edited masks back: each mask that differs becomes a correction (undo: `fix --undo`)."""
    from clothcurate.curation.annotate import load

    click.echo(load(dataset, anno_key=anno_key, url=url, api_key=api_key, cleanup=cleanup).summary())


class _SizeType(click.ParamType):
    """``S`` (a square) or ``HxW`` (e.g. ``384x256``, a portrait input) -> ``(H, W)``."""

    name = "S|HxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from clothcurate.geometry import parse_size

        try:
            return parse_size(value, option=param.opts[0] if param else "--size")
        except ValueError as e:
            self.fail(str(e), param, ctx)


@main.command("export-folds")
@dataset_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Export folder.")
@click.option("--folds", default=5, show_default=True, help="Number of folds k.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the stratification.")
@click.option("--format", "fmt", type=click.Choice(["png", "coco", "both"]), default="png", show_default=True)
@click.option("--crop", type=click.Choice(["none", "person"]), default="none", show_default=True,
              help="Crop each photo to the person box (with a margin).")
@click.option("--size", type=_SizeType(), default=None, metavar="S|HxW",
              help="Resize crops to S x S (e.g. 320, the paper's) or to HxW (e.g. 384x256: portrait crops, the "
                   "person box grown to that aspect ratio instead of a square, so fewer background pixels).")
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


class _RegistryChoice(click.Choice):
    """Choices read from a registry (architectures, detectors) only when an option is checked or
    help is shown, since importing a registry loads PyTorch."""

    def __init__(self, names: Callable[[], Iterable[str]]):
        self._names = names
        super().__init__(())

    @property
    def choices(self):
        return tuple(self._names())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it; the registry is the source
        pass


def _architectures() -> Iterable[str]:
    from clothcurate.training.models import ARCHITECTURES

    return ARCHITECTURES


def _detectors() -> Iterable[str]:
    import clothcurate.inference  # noqa: F401 - registers the `model` detector
    from clothcurate.detection import DETECTORS

    return DETECTORS


class _DetectorOption(click.Option):
    """``--detector``: its help lists the detector registry, read only when help is shown; the
    name is checked by the library (one-line error naming the registry's detectors)."""

    def get_help_record(self, ctx: click.Context):
        self.help = (f"Person detector: {', '.join(_detectors())} (`model`: a first pass of the run's own model; "
                     "ssd/ssdlite read COCO weights from your torch hub cache only).")
        return super().get_help_record(ctx)


def _default_detector() -> str:
    from clothcurate.detection import DEFAULT_DETECTOR

    return DEFAULT_DETECTOR


def _tta_scales_option(what: str, default: str):
    """``--tta-scales``, worded alike in every command that takes it."""
    return click.option("--tta-scales", default=None, metavar="S1,S2",
                        help=f"With TTA only: {what} (comma list including 1, at most {MAX_TTA_SCALES}, e.g. "
                             f"1,1.25; sides rounded to multiples of 32). Default: {default}.")


#: the defaults ``train-eval --help`` shows: the ``default`` recipe's (an option not given takes
#: its recipe's value, whichever recipe is chosen)
_RECIPE_DEFAULTS = RECIPES["default"]


@main.command("train-eval")
@click.option("--arch", required=True, type=_RegistryChoice(_architectures))
@click.option("--recipe", type=click.Choice(list(RECIPES)), default="default", show_default=True,
              help="Preset of the training options below, whose defaults shown are the default recipe's "
                   "(paper: the paper's recipe exactly); an option given explicitly overrides it. Both are "
                   "recorded in config.json.")
@click.option("--encoder", default=_RECIPE_DEFAULTS["encoder"], show_default=True)
@click.option("--encoder-weights", default="imagenet", show_default=True,
              help="imagenet (offline packages or the user's cache) or none (random init).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="export-folds folder (default: the dataset's latest export).")
@click.option("--folds", "fold_spec", default="all", show_default=True, help="all or a list like 0,1.")
@click.option("--epochs", default=_RECIPE_DEFAULTS["epochs"], show_default=True,
              help="Maximum epochs (plateau schedule) or exact epochs (cosine).")
@click.option("--patience", default=_RECIPE_DEFAULTS["patience"], show_default=True,
              help="Early stop after this many epochs without improvement (plateau schedule).")
@click.option("--image-size", type=_SizeType(), default=str(_RECIPE_DEFAULTS["image_size"]), show_default=True,
              metavar="S|HxW",
              help="Model input: S (square) or HxW, each a multiple of 32; the export's person crops must have "
                   "the same aspect ratio (export-folds --size).")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--lr", default=_RECIPE_DEFAULTS["lr"], show_default=True, help="Adam's (peak) learning rate.")
@click.option("--loss", type=click.Choice(LOSSES), default=_RECIPE_DEFAULTS["loss"],
              show_default=True,
              help="wce: cross-entropy weighted by the training pixels' class shares^-0.5; wce+lovasz: "
                   "that plus Lovász.")
@click.option("--monitor", type=click.Choice(MONITORS), default=_RECIPE_DEFAULTS["monitor"], show_default=True,
              help="What early stopping and the kept checkpoint follow (the LR plateau follows the loss).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=_RECIPE_DEFAULTS["schedule"], show_default=True,
              help="plateau: LR x0.1 on a validation-loss plateau + early stop; cosine: exactly --epochs "
                   "epochs, linear warm-up then cosine decay, no early stop.")
@click.option("--warmup-epochs", default=_RECIPE_DEFAULTS["warmup_epochs"], show_default=True,
              help="Warm-up epochs of the cosine schedule (not given: 5 % of --epochs, at least 1).")
@click.option("--augment", type=click.Choice(AUGMENTATIONS), default=_RECIPE_DEFAULTS["augment"], show_default=True,
              help="Training augmentation: paper (flip, rotation, random crop, noise, brightness), scale "
                   "(flip + one affine step: scale +-25 %, rotation +-15 deg, shift +-10 %; noise, brightness) or "
                   "rotate (flip + rotation +-10 deg only; noise, brightness).")
@click.option("--sampling", type=click.Choice(SAMPLINGS), default=_RECIPE_DEFAULTS["sampling"], show_default=True,
              help="uniform: every training image once per epoch; repeat-factor: images holding "
                   f"{', '.join(REPEAT_CLASSES)} drawn more often (LVIS repeat factors, same epoch length).")
@click.option("--paste", default=_RECIPE_DEFAULTS["paste"], show_default=True, type=click.FloatRange(0, 1),
              metavar="P",
              help="Probability that a training image gets one rare garment "
                   f"({', '.join(REPEAT_CLASSES)}) of another labelled training crop pasted at its own place, "
                   "before the augmentation (copy-paste; person crops are aligned). 0: off.")
@click.option("--average-last", default=_RECIPE_DEFAULTS["average_last"], show_default=True, type=click.IntRange(min=0),
              help="Keep the average of the weights of the last N epochs (BatchNorm statistics recomputed) "
                   "instead of the best epoch; needs --schedule cosine. 0: off.")
@click.option("--tta/--no-tta", default=_RECIPE_DEFAULTS["tta"], show_default=True,
              help="Predict the test folds as the mean of the image's and its horizontal flip's logits.")
@_tta_scales_option("also predict each test image and its flip resized by these factors, the mean of every "
                    "view's logits; binds the run folder", "1")
@click.option("--workers", default=None, type=int,
              help="Data-loader workers per process (default: this node's CPUs shared by its ranks, at most 16).")
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cpu.")
@click.option("--out", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run folder (default: $CLOTHCURATE_HOME/runs/<dataset>/<arch>).")
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True,
              help="FiftyOne dataset whose latest export is the default --data and that predictions are "
                   "written back to (when FiftyOne and the dataset are reachable).")
@click.option("--seed", default=0, show_default=True)
@click.option("--pseudo", type=click.Path(path_type=Path), default=None,
              help="A teacher run folder with pseudo-masks of the tag-only photos (`clothcurate pseudo-label`): "
                   "fold k's masks join fold k's training part (never validation or test). Binds the run folder.")
@click.pass_context
@_handle_errors
def train_eval(ctx, **options):
    """Train and evaluate one architecture by k-fold cross-validation (resumable; torchrun for DDP)."""
    from click.core import ParameterSource

    from clothcurate.training.config import TrainConfig
    from clothcurate.training.run import train_eval as run_train_eval
    from clothcurate.workspace import default_run_dir, last_export

    if options["data_dir"] is None:
        options["data_dir"] = last_export(options["dataset"])
        if options["data_dir"] is None:
            raise BadInputError(f"no export of dataset {options['dataset']!r} recorded; run "
                                "`clothcurate export-folds --out DIR` first or pass --data DIR")
    if options["run_dir"] is None:
        options["run_dir"] = default_run_dir(options["dataset"], options["arch"])
    run_dir, recipe = options.pop("run_dir"), options.pop("recipe")
    options["pseudo"] = None if options["pseudo"] is None else str(options["pseudo"])
    if options["tta_scales"] is not None:
        options["tta_scales"] = parse_tta_scales(options["tta_scales"])
    height, width = options.pop("image_size")
    if ctx.get_parameter_source("image_size") is not ParameterSource.DEFAULT:  # else the recipe's square
        options["image_size"], options["image_width"] = height, width
    # an option left at its default takes the recipe's value
    preset = RECIPES.get(recipe, {})
    explicit = {name: value for name, value in options.items()
                if name not in preset or ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
    config = TrainConfig.from_recipe(recipe, **explicit)
    text = run_train_eval(config, run_dir=run_dir).summary()
    if text:  # empty on torchrun ranks other than 0
        click.echo(text)


@main.command("pseudo-label")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="The teacher: a train-eval run folder with folds/<k>/best.pt (gets pseudo/).")
@dataset_option
@click.option("--threshold", default=None, type=float,
              help="Softmax a pixel's class needs to be kept (else: ignored in training).  [default: 0.8]")
@click.option("--tag-rule", type=click.Choice(list(TAG_RULES)), default=DEFAULT_TAG_RULE, show_default=True,
              help="How the photo's tags pick a pixel's class: "
                   + "; ".join(f"{name}: {what}" for name, what in TAG_RULES.items()) + ".")
@click.option("--detector", cls=_DetectorOption, default=_default_detector,
              show_default="the registry's default, which runs offline")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", default=16, show_default=True, help="Crops per forward pass.")
@_handle_errors
def pseudo_label(run_dir, dataset, threshold, tag_rule, detector, device, batch_size):
    """Pseudo-masks of the tag-only photos (CCP ids 1005-1998) from a run's own fold models.

    Each photo's person is detected and cropped as the export crops; fold k's model predicts it,
    and a pixel gets a class the photo's image-level tags (or background and skin: always
    allowed) allow, as --tag-rule says, kept where its softmax passes --threshold; other pixels
    are ignored in training. Writes RUN_DIR/pseudo/ (masks of every fold) and the dataset field
    pseudo_<arch> (the lowest fold's masks, for browsing). Re-running keeps what is up to date.

    \b
    clothcurate pseudo-label --run runs/fpn --dataset clothcurate
    clothcurate train-eval --arch fpn --out runs/fpn-pseudo --pseudo runs/fpn
    """
    from clothcurate.training.pseudo_label import DEFAULT_THRESHOLD
    from clothcurate.training.pseudo_label import pseudo_label as run_pseudo_label

    report = run_pseudo_label(run_dir=run_dir, dataset=dataset, device=device, detector=detector, tag_rule=tag_rule,
                              threshold=DEFAULT_THRESHOLD if threshold is None else threshold, batch_size=batch_size)
    click.echo(report.summary())


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


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="A train-eval run folder with folds/<k>/best.pt.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder: <stem>.png (15-class mask at the photo's size) and <stem>.json per photo.")
@click.argument("paths", nargs=-1, required=True)
@click.option("--detector", cls=_DetectorOption, default=_default_detector,
              show_default="the registry's default, which runs offline")
@click.option("--fold", default="all", show_default=True, help="A fold's checkpoint, or all: the folds' ensemble.")
@click.option("--tta/--no-tta", default=None,
              help="Horizontal-flip test-time augmentation (default: as the run evaluated its test folds).")
@_tta_scales_option("the scales each crop and its flip are predicted at", "as the run evaluated its test folds")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", default=8, show_default=True, help="Photos per batch (per process under torchrun).")
@click.option("--overlay", is_flag=True, help="Also write <stem>_overlay.jpg with the class colours.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable photo instead of skipping it.")
@click.option("--dataset", default=None,
              help="Also add the photos to this FiftyOne dataset (fields pred, persons, garments); not one made by ingest.")
@click.option("--backend", default="torch", show_default=True,
              help="torch, or onnx: the model's forward pass on ONNX Runtime (CPU).")
@_handle_errors
def predict(run_dir, out, paths, detector, fold, tta, tta_scales, device, batch_size, overlay, strict, dataset,
            backend):
    """Segment new photos: detect each person, crop, segment, paste back into the photo.

    PATHS: photos, folders (their photos) or glob patterns. Under torchrun the photos are
    shared out among the processes (rank 0 prints the summary and writes --dataset).

    \b
    clothcurate predict --run runs/fpn --out pred/ photos/ --tta
    torchrun --nproc_per_node=4 -m clothcurate -- predict --run runs/fpn --out pred/ photos/
    """
    from clothcurate.inference.predict import predict_photos

    scales = None if tta_scales is None else parse_tta_scales(tta_scales)
    report = predict_photos(run_dir=run_dir, out_dir=out, paths=paths, detector=detector, fold=fold, tta=tta,
                            tta_scales=scales,
                            device=device, batch_size=batch_size, strict=strict, overlay=overlay, dataset=dataset,
                            backend=backend)
    text = report.summary()
    if text:  # empty on torchrun ranks other than 0
        click.echo(text)


@main.command("export-model")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="A train-eval run folder with folds/<k>/best.pt.")
@click.option("--format", "fmt", required=True, metavar="onnx|torchscript", help="Model file format.")
@click.option("--fold", default="all", show_default=True,
              help="A fold's checkpoint, or all: the folds' ensemble (mean softmax) in one graph.")
@click.option("--tta/--no-tta", default=None, help="Put horizontal-flip test-time augmentation inside the "
              "graph (default: as the run evaluated its test folds).")
@_tta_scales_option("the scales inside the graph, recorded in the file's metadata",
                    "as the run evaluated its test folds")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The model file to write.")
@_handle_errors
def export_model(run_dir, fmt, fold, tta, tta_scales, out):
    """Write a run's model as one self-contained ONNX or TorchScript file.

    Input: uint8 RGB (N, 3, H, W) at the run's input size; normalisation and softmax inside;
    output: probabilities (N, K, H, W). Input size, class names, arch and encoder are in the
    file's metadata.

    \b
    clothcurate export-model --run runs/fpn --format onnx --fold 0 --out fpn.onnx
    """
    from clothcurate.inference.export_model import export_model as run_export

    scales = None if tta_scales is None else parse_tta_scales(tta_scales)
    click.echo(run_export(run_dir=run_dir, fmt=fmt, out=out, fold=fold, tta=tta, tta_scales=scales).summary())


if __name__ == "__main__":
    main()

"""The options of a training run as one typed, frozen config, saved as ``config.json``.

:class:`TrainConfig` holds every option of ``train-eval``. Each field says whether it *binds*
a run folder: once a fold has started, a run folder refuses another value for a binding option
(its folds would not be comparable), while the others (batch size, workers, device, patience
...) may change between invocations. ``epochs`` and ``warmup_epochs`` bind only under the
``cosine`` schedule, whose learning rate at each step depends on them.

Recipes are named presets of the training options (:data:`RECIPES`): ``paper`` reproduces the
paper's recipe (Adam 1e-3, plateau x0.1 on the validation loss, early stop after 10 epochs, up
to 100, cross-entropy, 320 px, no test-time augmentation); ``default`` is what ``train-eval``
uses without ``--recipe``: 40 epochs of warm-up + cosine decay to a peak of Adam 3e-3,
cross-entropy + Lovász, flip test-time augmentation (the winner of ``bench/accuracy.py``). Options given explicitly override
the preset (the cosine warm-up follows ``--epochs`` unless given); config.json records the
recipe's name, its preset values and the options used.

This module imports nothing heavy (the CLI reads its names for ``--help``).

Example::

    cfg = TrainConfig.from_recipe("paper", arch="fpn", data_dir="folds/", epochs=50)
    cfg.binding()              # ('arch', 'encoder', ..., 'tta')
    cfg.to_json()              # what config.json stores under "options"
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from clothcurate.errors import BadInputError

__all__ = ["TrainConfig", "RECIPES", "LOSSES", "WEIGHTED_LOSSES", "MONITORS", "SCHEDULES", "AUGMENTATIONS",
           "SAMPLINGS", "REPEAT_CLASSES", "LEGACY_VALUES", "MAX_TTA_SCALES", "check_tta_scales", "parse_tta_scales"]

#: training losses (:func:`clothcurate.training.loop.build_loss`); ``wce`` is class-weighted CE
LOSSES = ("ce", "dice", "focal", "ce+dice", "ce+lovasz", "wce", "wce+lovasz")
#: the losses whose cross-entropy is weighted by the training masks' class shares
WEIGHTED_LOSSES = ("wce", "wce+lovasz")
#: what early stopping and the kept checkpoint follow (the LR plateau always follows the loss)
MONITORS = ("val_loss", "val_miou")
#: ``plateau``: ReduceLROnPlateau x0.1 + early stop; ``cosine``: fixed epochs, linear warm-up then
#: cosine decay per step, no early stop
SCHEDULES = ("plateau", "cosine")
#: training augmentation policies (:func:`clothcurate.training.augment.build_transform`)
AUGMENTATIONS = ("paper", "scale", "rotate")
#: how training images are drawn (:mod:`clothcurate.training.sampling`): ``uniform`` (each once per
#: epoch) or ``repeat-factor`` (images holding rare classes drawn more often, same epoch length)
SAMPLINGS = ("uniform", "repeat-factor")
#: the classes whose images ``repeat-factor`` sampling draws more often (issue 13: they fail today)
REPEAT_CLASSES = ("romper", "scarf/tie", "shorts", "socks", "hat", "glasses")
#: most test-time scales (each costs two forward passes)
MAX_TTA_SCALES = 3

_PAPER = {"encoder": "tf_efficientnet_lite0", "image_size": 320, "epochs": 100, "patience": 10, "lr": 1e-3,
          "loss": "ce", "monitor": "val_loss", "schedule": "plateau", "warmup_epochs": 0, "tta": False,
          "augment": "paper", "sampling": "uniform", "average_last": 0, "tta_scales": (1.0,), "paste": 0.0}
#: the measured winner (docs/results.md, accuracy benchmark, two seeds): a fixed number of epochs
#: with warm-up + cosine decay instead of plateau + early stop on 81 validation images,
#: cross-entropy + Lovász, flip test-time augmentation, peak learning rate 3e-3 (with 1e-3 the
#: models were still under-trained at the end of the schedule; 3e-3 won at 64 and 160 px and at
#: 10 and 24 epochs, 4e-3 gained nothing more), repeat-factor sampling of the rare classes (ahead
#: in all four pairs of 64 / 160 px x two seeds, +0.3 to +1.5 mIoU). 40 epochs: the paper recipe's
#: GPU folds stopped early at epochs 17-30 (best 7-20).
_DEFAULT = {**_PAPER, "epochs": 40, "schedule": "cosine", "warmup_epochs": 2, "loss": "ce+lovasz", "tta": True,
            "lr": 3e-3, "sampling": "repeat-factor"}
#: named presets: ``paper`` reproduces the paper, ``default`` is what ``train-eval`` uses
RECIPES: dict[str, dict[str, Any]] = {"paper": dict(_PAPER), "default": _DEFAULT}

#: the value a binding option had in run folders made before the option existed
LEGACY_VALUES: dict[str, Any] = {"image_width": None, "monitor": "val_loss", "schedule": "plateau",
                                 "warmup_epochs": 0, "tta": False, "augment": "paper", "sampling": "uniform",
                                 "average_last": 0, "pseudo": None, "paste": 0.0,
                                 "tta_scales": [1.0]}  # as config.json holds it (a list)


def check_tta_scales(scales: Any, *, tta: bool = True, option: str = "--tta-scales") -> tuple[float, ...]:
    """Validate test-time scales: positive numbers, 1.0 (the trained scale) among them, at most
    :data:`MAX_TTA_SCALES`, no repeats, and none but 1.0 without flip TTA.

    Args:
        scales: a sequence of numbers (a JSON list, a tuple ...).
        tta: whether flip TTA is on (extra scales need it).
        option: the option's name for the error message.

    Returns:
        The scales as a tuple of floats, in the order given.

    Raises:
        BadInputError: one line saying what is wrong.
    """
    try:
        values = tuple(float(v) for v in scales)
    except (TypeError, ValueError):
        raise BadInputError(f"{option} {scales!r}: expected numbers like 1,1.25") from None
    shown = ",".join(f"{v:g}" for v in values) or "(empty)"
    if not (1 <= len(values) <= MAX_TTA_SCALES and 1.0 in values and len(set(values)) == len(values)
            and all(0 < v < float("inf") for v in values)):
        raise BadInputError(f"{option} {shown}: give 1 to {MAX_TTA_SCALES} different positive scales including 1 "
                            "(the trained scale), e.g. 1,1.25")
    if not tta and values != (1.0,):
        raise BadInputError(f"{option} {shown}: extra test-time scales need flip TTA; add --tta")
    return values


def parse_tta_scales(text: str, *, option: str = "--tta-scales") -> tuple[float, ...]:
    """``"1,1.25"`` -> ``(1.0, 1.25)``, checked by :func:`check_tta_scales`.

    Raises:
        BadInputError: not a comma list of numbers, or bad scales.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise BadInputError(f"{option} {text!r}: expected a comma list of numbers like 1,1.25") from None
    return check_tta_scales(values, option=option)


def default_warmup(epochs: int) -> int:
    """Warm-up epochs of the cosine schedule when not given: 5 % of ``epochs``, at least 1
    (none for a single epoch)."""
    return min(epochs - 1, max(1, round(0.05 * epochs)))


def _opt(default: Any, *, binds: bool = False) -> Any:
    return field(default=default, metadata={"binds": binds})


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a ``train-eval`` run.

    Attributes:
        arch: a key of :data:`clothcurate.training.models.ARCHITECTURES`.
        data_dir: the export folder.
        encoder: a key of :data:`clothcurate.training.models.ENCODERS`.
        encoder_weights: ``imagenet`` (offline) or ``none``.
        image_size: height H of the model input, and its width unless ``image_width`` (a
            multiple of 32; the paper's square 320).
        image_width: width W of a non-square (portrait) model input, a multiple of 32; None:
            square. The export's crops must have the input's aspect ratio
            (``export-folds --size HxW``).
        loss: one of :data:`LOSSES`.
        lr: Adam's (peak) learning rate.
        seed: seed of the validation split, initialisation, shuffling and augmentation.
        monitor: one of :data:`MONITORS`: what early stopping and ``best.pt`` follow.
        schedule: one of :data:`SCHEDULES`.
        warmup_epochs: linear warm-up length of the ``cosine`` schedule.
        tta: average the logits of the image and its horizontal flip when predicting the test fold.
        tta_scales: with ``tta``, the scales the image and its flip are also predicted at (the
            mean over every view; :class:`clothcurate.training.models.FlipTTA`); 1.0 included,
            at most 3. ``(1.0,)``: flip only.
        augment: training augmentation policy, one of :data:`AUGMENTATIONS`.
        sampling: one of :data:`SAMPLINGS`: how training images are drawn each epoch.
        paste: probability that a training item gets a rare garment (:data:`REPEAT_CLASSES`) of
            another labelled training crop pasted at its own place, before the augmentation
            (:mod:`clothcurate.training.paste`); 0: off.
        average_last: keep the average of the weights of the last N epochs (``cosine`` schedule
            only; 0: off) instead of the monitored best epoch.
        recipe: the preset the options started from (a key of :data:`RECIPES`).
        epochs: maximum (``plateau``) or exact (``cosine``) epochs per fold.
        patience: early stop after this many epochs without a better ``monitor`` (``plateau``).
        batch_size: images per step per process.
        workers: loader processes per process (None: the CPUs shared by this node's ranks).
        device: ``auto``, ``cuda`` or ``cpu``.
        fold_spec: ``all`` or a list like ``0,1``.
        dataset: FiftyOne dataset to write the predictions back to, when reachable.
        validation_fraction: share of each training part held out for validation.
        pseudo: a teacher run folder whose ``pseudo/`` masks of the tag-only photos (``clothcurate
            pseudo-label``) join each fold's training part (fold k's masks, from fold k's model);
            None: labelled images only.
    """

    arch: str = _opt("fpn", binds=True)
    data_dir: str = ""
    encoder: str = _opt("tf_efficientnet_lite0", binds=True)
    encoder_weights: str = _opt("imagenet", binds=True)
    image_size: int = _opt(320, binds=True)
    image_width: int | None = _opt(None, binds=True)
    loss: str = _opt("ce", binds=True)
    lr: float = _opt(1e-3, binds=True)
    seed: int = _opt(0, binds=True)
    monitor: str = _opt("val_loss", binds=True)
    schedule: str = _opt("plateau", binds=True)
    warmup_epochs: int = 0
    tta: bool = _opt(False, binds=True)
    tta_scales: tuple[float, ...] = _opt((1.0,), binds=True)
    augment: str = _opt("paper", binds=True)
    sampling: str = _opt("uniform", binds=True)
    paste: float = _opt(0.0, binds=True)
    average_last: int = _opt(0, binds=True)
    recipe: str = "default"
    epochs: int = 100
    patience: int = 10
    batch_size: int = 8
    workers: int | None = None
    device: str = "auto"
    fold_spec: str = "all"
    dataset: str | None = None
    validation_fraction: float = 0.1
    pseudo: str | None = _opt(None, binds=True)

    def __post_init__(self) -> None:
        if self.image_width == self.image_size:  # one spelling of a square input, so run folders compare equal
            object.__setattr__(self, "image_width", None)
        # config.json holds a list; the frozen field keeps a tuple (hashable, equal after a round trip)
        object.__setattr__(self, "tta_scales", check_tta_scales(self.tta_scales, tta=self.tta))
        checks = [
            (self.loss in LOSSES, f"--loss {self.loss!r}: use one of {', '.join(LOSSES)}"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: use one of {', '.join(MONITORS)}"),
            (self.schedule in SCHEDULES, f"--schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}"),
            (self.augment in AUGMENTATIONS, f"--augment {self.augment!r}: use one of {', '.join(AUGMENTATIONS)}"),
            (self.sampling in SAMPLINGS, f"--sampling {self.sampling!r}: use one of {', '.join(SAMPLINGS)}"),
            (0.0 <= self.paste <= 1.0, f"--paste {self.paste}: a probability, between 0 and 1"),
            (self.average_last == 0 or (self.schedule == "cosine" and 1 <= self.average_last <= self.epochs),
             f"--average-last {self.average_last}: must be 0, or between 1 and --epochs ({self.epochs}) with "
             f"--schedule cosine (the averaged epochs must be known in advance; plateau stops early)"),
            (self.recipe in RECIPES, f"--recipe {self.recipe!r}: use one of {', '.join(RECIPES)}"),
            (all(v >= 32 and v % 32 == 0 for v in self.input_size),
             f"--image-size {'x'.join(map(str, self.input_size))}: each side must be a multiple of 32 (the "
             f"encoders downsample 32x), e.g. 320 or 384x256"),
            (self.batch_size >= 1 and self.lr > 0,
             f"--batch-size ({self.batch_size}) must be >= 1 and --lr ({self.lr}) > 0"),
            (self.epochs >= 1 and self.patience >= 1,
             f"--epochs ({self.epochs}) and --patience ({self.patience}) must be at least 1"),
            (0 <= self.warmup_epochs < self.epochs,
             f"--warmup-epochs ({self.warmup_epochs}) must be >= 0 and below --epochs ({self.epochs})"),
        ]
        for ok, message in checks:
            if not ok:
                raise BadInputError(message)

    @classmethod
    def from_recipe(cls, recipe: str = "default", **options: Any) -> TrainConfig:
        """A recipe's preset, overridden by the options given.

        Args:
            recipe: a key of :data:`RECIPES`.
            **options: fields of :class:`TrainConfig` (``None`` values are left to the preset,
                except ``workers`` and ``dataset`` whose None means something).

        Raises:
            BadInputError: an unknown recipe or option, or a bad value.
        """
        if recipe not in RECIPES:
            raise BadInputError(f"--recipe {recipe!r}: use one of {', '.join(RECIPES)}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise BadInputError(f"unknown training option(s) {', '.join(unknown)}")
        given = {k: v for k, v in options.items() if v is not None or k in ("workers", "dataset")}
        if "data_dir" in given:
            given["data_dir"] = str(given["data_dir"])
        merged = {**RECIPES[recipe], **given, "recipe": recipe}
        if merged["schedule"] == "cosine" and "warmup_epochs" not in given:
            merged["warmup_epochs"] = default_warmup(merged["epochs"])  # follows --epochs
        return cls(**merged)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the model input."""
        return self.image_size, self.image_size if self.image_width is None else self.image_width

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def binding(self) -> tuple[str, ...]:
        """The options a started run folder pins (see the module docstring)."""
        names = tuple(f.name for f in fields(self) if f.metadata.get("binds"))
        return names + (("epochs", "warmup_epochs") if self.schedule == "cosine" else ())

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (config.json's ``options``; tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

"""FiftyOne plugin ``@clothcurate/review``: the review actions in the App.

Four operators act on the samples selected in the App grid (else on the sample open in the
sample viewer), or, when none is selected and the reviewer ticks the confirmation, on every
sample of the current view:

- ``accept_suggestions``: apply the ``flag-errors --model`` suggestions (optional minimum
  confidence), as ``clothcurate fix --accept-suggestions --min-confidence P``;
- ``mark_ok`` / ``mark_reject``: the reviewer's verdict tag (the other verdict is removed);
- ``undo_correction``: back to the previous mask version, as ``clothcurate fix --key K --undo``.

They call :mod:`clothcurate.curation.review_actions` (which calls :mod:`clothcurate.curation.fix`),
so the App and the CLI share one implementation. Each notifies what it changed, returns it
(``{"summary": ..., "keys": [...]}``) and reloads the App's samples. A bad request (nothing
selected and no confirmation, an undo on a sample without correction, no model suggestions) is
an error naming the cause, and nothing is changed.

FiftyOne loads this file from its plugins directory, where ``clothcurate review`` and
``make install`` link it (:func:`clothcurate.plugins.register`). Programmatic use::

    import fiftyone.operators as foo
    foo.execute_operator("@clothcurate/review/mark_reject", ctx={"view": view, "selected": ids})
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from clothcurate.curation import review_actions
from clothcurate.errors import BadInputError

_CONFIRM = "confirm_view"


class _SampleAction(foo.Operator):
    """An action on the selected samples, else the sample open, else (confirmed) the current view."""

    #: what the form says the action does ("accept the suggestions of", "mark ok")
    verb = ""

    def _config(self, name: str, label: str, icon: str) -> foo.OperatorConfig:
        return foo.OperatorConfig(name=name, label=label, icon=icon, dynamic=True, view_target=False,
                                  risk_level=types.RiskLevel.MEDIUM)

    def resolve_placement(self, ctx):
        return types.Placement(types.Places.SAMPLES_GRID_SECONDARY_ACTIONS,
                               types.Button(label=self.config.label, icon=self.config.icon, prompt=True))

    def add_inputs(self, ctx, inputs) -> None:
        """Operator-specific inputs (none by default)."""

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(ctx.selected)
        if n:
            inputs.view("selection", types.Notice(label=f"{self.verb.capitalize()} the {n} selected "
                                                        f"sample{'' if n == 1 else 's'}."))
        elif ctx.current_sample:
            inputs.view("selection", types.Notice(label=f"{self.verb.capitalize()} the sample shown."))
        else:
            total = len(ctx.view) if ctx.view is not None else 0
            prop = inputs.bool(_CONFIRM, default=False, view=types.CheckboxView(),
                               label=f"No sample is selected: {self.verb} all {total} samples of the current view")
            if not ctx.params.get(_CONFIRM):
                # an invalid form cannot be executed: the App greys out Execute, a programmatic call
                # fails validation with this message
                prop.invalid = True
                prop.error_message = ("no sample is selected: select samples in the grid, or confirm acting on "
                                      "the whole current view")
        self.add_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.config.label))

    def _samples(self, ctx):
        """The target samples and whether they are the whole view (no selection)."""
        if ctx.selected:
            return ctx.dataset.select(ctx.selected), False
        if ctx.current_sample:  # the sample open in the App's sample viewer
            return ctx.dataset.select([ctx.current_sample]), False
        if not ctx.params.get(_CONFIRM):
            raise BadInputError("no sample is selected: select samples in the grid, or confirm acting on the "
                                "whole current view; nothing was changed")
        return ctx.view, True

    def act(self, ctx, samples, whole_view: bool):
        """Do the action; returns a report with ``summary()`` and ``keys`` (the samples changed)."""
        raise NotImplementedError

    def execute(self, ctx):
        samples, whole_view = self._samples(ctx)
        fields_before = set(ctx.dataset.get_field_schema())
        report = self.act(ctx, samples, whole_view)
        summary = report.summary()
        keys = list(report.keys)
        ctx.ops.notify(summary, variant="success")
        ctx.dataset.reload()
        if set(ctx.dataset.get_field_schema()) != fields_before:
            ctx.ops.reload_dataset()  # a first correction adds fields (corrections, ground_truth_original)
        ctx.ops.reload_samples()
        return {"summary": summary, "keys": keys}


class AcceptSuggestions(_SampleAction):
    verb = "accept the model's suggestions for"

    @property
    def config(self):
        return self._config("accept_suggestions", "Accept model suggestions", "auto_fix_high")

    def add_inputs(self, ctx, inputs) -> None:
        inputs.float("min_confidence", min=0.0, max=1.0, required=False, label="Minimum confidence",
                      description="Apply only findings with p at least this (empty: every suggestion), "
                                  "as `clothcurate fix --accept-suggestions --min-confidence P`")

    def act(self, ctx, samples, whole_view):
        return review_actions.accept_suggestions_on(samples, min_confidence=ctx.params.get("min_confidence"))


class MarkOk(_SampleAction):
    verb = "mark ok"

    @property
    def config(self):
        return self._config("mark_ok", "Mark ok", "check_circle")

    def act(self, ctx, samples, whole_view):
        return review_actions.mark(samples, "ok")


class MarkReject(_SampleAction):
    verb = "reject"

    @property
    def config(self):
        return self._config("mark_reject", "Reject", "block")

    def act(self, ctx, samples, whole_view):
        return review_actions.mark(samples, "reject")


class UndoCorrection(_SampleAction):
    verb = "undo the last mask correction of"

    @property
    def config(self):
        return self._config("undo_correction", "Undo last mask correction", "undo")

    def act(self, ctx, samples, whole_view):
        # a whole view holds uncorrected samples too: undo the corrected ones; a selection is explicit
        return review_actions.undo_samples(samples, corrected_only=whole_view)


def register(p):
    """FiftyOne's plugin entry point."""
    for op in (AcceptSuggestions, MarkOk, MarkReject, UndoCorrection):
        p.register(op)

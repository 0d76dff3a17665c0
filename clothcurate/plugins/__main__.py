"""``python -m clothcurate.plugins [PLUGINS_DIR]``: link the clothcurate FiftyOne plugin into
FiftyOne's plugins folder (default: ``fo.config.plugins_dir``, i.e. ``FIFTYONE_PLUGINS_DIR`` or
``~/fiftyone/__plugins__``). Run by ``make install``; exit 2 with one ``error:`` line when the
link cannot be made."""

from __future__ import annotations

import argparse
import sys

from clothcurate.errors import BadInputError, os_error_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clothcurate.plugins", description=__doc__.split("\n\n")[0])
    parser.add_argument("plugins_dir", nargs="?", default=None,
                        help="FiftyOne's plugins folder (default: fo.config.plugins_dir)")
    args = parser.parse_args(argv)
    from clothcurate.plugins import PLUGIN_NAME, register

    try:
        where = register(args.plugins_dir)
    except BadInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        code, message = os_error_message(e)
        print(f"error: {message} (FiftyOne's plugins folder: FIFTYONE_PLUGINS_DIR)", file=sys.stderr)
        return code
    print(f"FiftyOne plugin {PLUGIN_NAME}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

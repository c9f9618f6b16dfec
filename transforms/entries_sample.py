"""Sample bronze of entries (``evo-frames synth``): flat turnstile taps of members, prospects and
staff, in weekly windows; 0.3% are tapped twice (the same line twice in a row).
"""

from __future__ import annotations

import polars as pl

from evo_frames.spec import Sample
from evo_frames.synth import kit as s

from .sample_ids import MEMBER_ID0, PROSPECT_ID0

DEVICE = s.Pool(
    ("CATRACA 01", "CATRACA 02", "CATRACA 03", "CATRACA 04", "CATRACA PCD", "RECEPÇÃO", "APP SKYFIT", "TOTEM FACIAL"),
    (30, 25, 15, 8, 3, 7, 8, 4),
)


def _entries(f: s.Frame, ctx: s.Populations) -> pl.LazyFrame:
    """Flat turnstile entries; 0.3% are tapped twice (the same line twice in a row)."""
    d, dv = f.at("i"), f.at("iv")
    who = d.below("e.who", 100)
    kind = f.let(pl.when(who < 93).then(0).when(who < 97).then(1).otherwise(2))  # member, prospect, staff
    f.let(d.below("e.member", ctx["members"]), "m")
    f.let(d.below("e.prospect", ctx["prospects"]), "p")
    f.let(d.below("e.emp", s.EMPLOYEES), "e")
    home = (
        pl.when(kind == 0)
        .then(s.home_branch(f, "member", "m"))
        .when(kind == 1)
        .then(s.home_branch(f, "prospect", "p"))
        .otherwise(pl.col("e") % len(s.BRANCH_NAME))
    )
    branch = f.let(pl.when(d.chance("e.away", 0.15)).then(d.below("e.br", len(s.BRANCH_NAME))).otherwise(home))
    denied = f.let(d.chance("e.denied", 0.05))
    turn = (
        pl.when(pl.col("changed"))
        .then(pl.col("t") + dv.between("e.turn.late", 1, 90))
        .when(d.chance("e.turn.d", 0.2))
        .then(pl.col("t") + d.between("e.turn.s", 1, 5))
        .otherwise(pl.col("t"))
    )
    # 0 and null read the same in the reference's key recipe; some rows carry 0 instead of null
    zero = pl.when(d.chance("e.zero", 0.02)).then(pl.lit("0"))
    legacy = f.let(d.chance("e.legacy", 0.1))  # older pages, without idMigration and releasesByID
    fields = [
        s.F("date", s.ts(d, "e.date", pl.col("t"))),
        s.F("dateTurn", s.null_if(denied, s.ts(d, "e.date", turn))),
        s.F("timeZone", s.null_if(d.chance("e.tz.null", 0.01), s.js(s.BRANCH_TZ.at(branch)))),
        s.F("idMember", pl.when(kind == 0).then(s.jn(pl.col("m") + MEMBER_ID0))),
        s.F("nameMember", pl.when(kind == 0).then(s.js(s.person(f, "member", "m").full))),
        s.F("idProspect", pl.when(kind == 1).then(s.jn(pl.col("p") + PROSPECT_ID0)).otherwise(zero)),
        s.F("nameProspect", pl.when(kind == 1).then(s.js(s.person(f, "prospect", "p").full))),
        s.F("idEmployee", pl.when(kind == 2).then(s.jn(pl.col("e") + s.EMPLOYEE_ID0)).otherwise(zero)),
        s.F("nameEmployee", pl.when(kind == 2).then(s.js(s.person(f, "employee", "e").full))),
        s.F(
            "entryType", s.js(pl.when(d.chance("e.out", 0.15)).then(pl.lit("Check-out")).otherwise(pl.lit("Check-in")))
        ),
        s.F("device", s.js(DEVICE.pick(d, "e.device"))),
        s.F(
            "releasesByID",
            pl.when(d.chance("e.release", 0.02)).then(s.jn(d.below("e.rel", s.EMPLOYEES) + s.EMPLOYEE_ID0)),
            legacy,
        ),
        s.F("idBranch", s.jn(branch + 1)),
        s.F("blockReason", pl.when(denied).then(s.js(s.BLOCK_REASON.pick(dv, "e.block")))),
        s.F("entryAction", s.js(pl.when(denied).then(pl.lit("Denied")).otherwise(pl.lit("Allowed")))),
        s.F("idMigration", pl.when(d.chance("e.mig", 0.03)).then(s.js(s.cat("ENT", d.digits("e.mig.n", 9)))), legacy),
    ]
    copies = 1 + d.chance("e.repeat", 0.003).cast(pl.Int64)
    line = s.obj(fields)
    return f.flush().select(pl.col("i").repeat_by(copies), line.repeat_by(copies).alias("line")).explode("i", "line")


SAMPLE = Sample(
    entity="entries",
    build=_entries,
    part_size=10_000,
    batch_rows=50_000,
    page_size=1000,
    # a first run spans three weeks at least, so small samples still have several windows; two
    # seconds apart at least: about 43k a day, and no two entries share a timestamp
    min_step=2,
    min_span=21 * 86_400,
    refers={"members": 0.022, "prospects": 0.0056},
    workers=8,
    manifest={"errors": []},
)

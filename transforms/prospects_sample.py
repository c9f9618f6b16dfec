"""Sample bronze of prospects (``evo-frames synth``): leads, with a ``responsible`` object or null;
some convert to members in later runs (``idMember`` and ``conversionDate`` set).
"""

from __future__ import annotations

import datetime

import polars as pl

from evo_frames.spec import Sample
from evo_frames.synth import kit as s

from .sample_ids import MEMBER_ID0, PROSPECT_ID0

SIGNUP = s.Pool(("Site", "Balcão", "Aplicativo", "Telefone", "WhatsApp", "Indicação"), (30, 25, 15, 8, 15, 7))


CHANNEL = s.Pool(
    ("Instagram", "Google", "Facebook", "Indicação de amigo", "Panfleto", "Passando em frente", "TikTok", "Outdoor"),
    (30, 20, 10, 12, 5, 10, 8, 5),
)


STEP = s.Pool(
    ("Novo lead", "Contato realizado", "Agendou visita", "Visitou a unidade", "Negociação", "Perdido"),
    (30, 20, 15, 10, 10, 15),
)


def _prospects(f: s.Frame, ctx: s.Populations) -> pl.LazyFrame:
    """Prospects (leads); some convert to members in later runs (idMember and conversionDate set)."""
    d, dv = f.at("i"), f.at("iv")
    person = s.person(f, "prospect", "i")
    branch = f.let(s.home_branch(f, "prospect", "i"))
    # a quarter convert within 20 days of registering; of the rest, changed ones convert on the
    # day before the run that re-sends them (their earlier runs saw them unconverted)
    early = f.let(d.chance("p.conv", 0.25))
    conversion = f.let(
        pl.when(early)
        .then(pl.col("t") + d.between("p.conv.d", 3600, 20 * 86_400))
        .when(pl.col("changed") & d.chance("p.conv.late", 0.6))
        .then(pl.col("ver_end") - dv.below("p.conv.l", 86_400))
    )
    converted = f.let((conversion <= pl.col("ver_end")).fill_null(False))
    responsible = s.obj(
        [
            s.F("name", s.js(s.person(f, "responsible.p", "i").full)),
            s.F("document", s.cpf(d, "p.resp.cpf")),
            s.F("financialResponsible", s.jb(d.chance("p.resp.fin", 0.8))),
        ]
    )
    fields = [
        s.F("idProspect", s.jn(pl.col("i") + PROSPECT_ID0)),
        s.F("idBranch", s.jn(branch + 1)),
        s.F("branchName", s.js(s.BRANCH_NAME.at(branch))),
        s.F("firstName", s.js(person.first)),
        s.F("lastName", s.null_if(d.chance("p.last.null", 0.05), s.js(person.last))),
        s.F("document", s.cpf(d, "p.cpf")),
        s.F(
            "cellphone",
            s.null_if(d.chance("p.cell.null", 0.1), s.js(s.phone(d, "p.cell", s.BRANCH_DDD.at(branch), True))),
        ),
        s.F("email", s.null_if(d.chance("p.email.null", 0.3), s.js(s.email(d, "p.email", person)))),
        s.F("gympassId", s.null_if(d.chance("p.gympass", 0.95), s.js(d.digits("p.gympass.n", 13)))),
        s.F("registerDate", s.ts(d, "p.reg", pl.col("t"))),
        s.F("gender", s.null_if(d.chance("p.gender.null", 0.3), s.js(person.gender))),
        s.F(
            "birthDate",
            s.null_if(
                d.chance("p.birth.null", 0.4), s.day(pl.col("t") - d.between("p.age", 16 * 365, 65 * 365) * 86_400)
            ),
        ),
        s.F("signupType", s.js(SIGNUP.pick(d, "p.signup"))),
        s.F("mktChannel", s.null_if(d.chance("p.channel.null", 0.2), s.js(CHANNEL.pick(d, "p.channel")))),
        s.F("conversionDate", s.null_if(~converted, s.ts(d, "p.conv.ts", conversion))),
        s.F("idMember", s.null_if(~converted, s.jn(d.below("p.member", ctx["members"]) + MEMBER_ID0))),
        s.F("currentStep", s.js(pl.when(converted).then(pl.lit("Matriculado")).otherwise(STEP.pick(dv, "p.step")))),
        *s.address(d, branch),
        s.F("responsible", s.null_if(~d.chance("p.resp", 0.03), responsible), d.chance("p.resp.omit", 0.05)),
    ]
    return s.line(f, fields, d.chance("p.drop_nulls", 0.1))


SAMPLE = Sample(
    entity="prospects",
    build=_prospects,
    part_size=2_000,
    batch_rows=20_000,
    page_size=50,
    history=datetime.date(2021, 1, 1),
    window_months=3,
    refers={"members": 1.0},
)

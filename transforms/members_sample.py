"""Sample bronze of members (``evo-frames synth``): contacts[], memberships[] with freezes[] and
sessions[], responsibles[]; a re-sent member may change status, access dates, lose a contact or a
membership, or cancel its newest one.
"""

from __future__ import annotations

import datetime

import polars as pl

from evo_frames.spec import Sample
from evo_frames.synth import kit as s

from .sample_ids import MEMBER_ID0, SALE_ID0

MARITAL = s.Pool(
    ("Solteiro(a)", "Casado(a)", "Divorciado(a)", "Viúvo(a)", "União estável", "Não informado"), (45, 30, 8, 2, 5, 10)
)


MEMBER_STATUS = s.Pool(("Active", "Inactive"), (60, 40))


FREEZE_REASON = s.Pool(("Viagem", "Atestado médico", "Cirurgia", "Gestação", "Motivos pessoais"))


def _members(f: s.Frame, ctx: s.Populations) -> pl.LazyFrame:
    """Members with contacts[], memberships[] (freezes[], sessions[]) and responsibles[]."""
    d, dv = f.at("i"), f.at("iv")
    f.let(pl.col("i") + MEMBER_ID0, "id")
    br = f.let(s.home_branch(f, "member", "i"), "br")
    f.let(pl.col("t") // 86_400, "reg_day")
    f.let(pl.col("ver_end") // 86_400, "end_day")
    person = s.person(f, "member", "i")
    ddd = f.let(s.BRANCH_DDD.at(br))
    f.let(s.phone(d, "m.cell", ddd, mobile=True), "cell")
    f.let(s.phone(d, "m.land", ddd, mobile=False), "land")
    f.let(s.email(d, "m.email", person), "email")

    f.let(pl.col("changed") & d.chance("m.ms.drop", 0.4), "drop_first")
    f.materialize()

    # a re-sent member that changed loses its last contact (a deleted phone, say)
    n_contacts = f.let(s.Pool((0, 1, 2, 3), (5, 30, 55, 10)).pick(d, "m.contacts"))
    n_contacts = n_contacts - (pl.col("changed") & (n_contacts >= 2) & d.chance("m.contacts.drop", 0.5)).cast(pl.Int64)
    contacts = s.children(f, n_contacts, ("i", "id", "cell", "email", "land"), _contact)

    # a changed member may lose its oldest membership (deleted upstream) or cancel its newest
    n_ms = s.Pool(range(7), (8, 30, 25, 17, 10, 6, 4)).pick(d, "m.ms")
    memberships = s.children(
        f,
        n_ms,
        ("i", "id", "reg_day", "end_day", "changed", "drop_first"),
        _membership,
        has_active=pl.col("active").any(),
    )

    responsible_person = s.person(f, "responsible", "i")
    responsible = s.obj(
        [
            s.F("idResponsible", s.jn(pl.col("i") + 40_000)),
            s.F("idMember", s.jn(pl.col("id"))),
            s.F(
                "idMemberResponsible",
                s.null_if(d.chance("m.resp.member", 0.7), s.jn(d.below("m.resp.m", ctx["members"]) + MEMBER_ID0)),
            ),
            s.F("name", s.js(responsible_person.full)),
            s.F("cpf", s.cpf(d, "m.resp.cpf")),
            s.F("email", s.js(s.email(d, "m.resp.email", responsible_person))),
            s.F("phone", s.js(s.phone(d, "m.resp.phone", ddd, mobile=True))),
            s.F("observation", pl.lit(None, dtype=pl.String)),
            s.F("acessFiti", s.jb(d.chance("m.resp.fiti", 0.1))),
            s.F("financialResponsible", s.jb(d.chance("m.resp.fin", 0.8))),
        ]
    )
    responsibles = pl.when(d.chance("m.resp", 0.03)).then(s.cat("[", responsible, "]")).otherwise(pl.lit("[]"))

    contacts_json = s.attach(f, contacts, "contacts")
    memberships_json = s.attach(f, memberships, "memberships")
    ms_mode = f.let(d.below("m.ms.mode", 100))  # 2% null, 1% key missing, 5% hidden as []
    shown = ms_mode >= 8
    active = pl.when(pl.col("has_active").fill_null(False)).then(pl.lit("Active")).otherwise(pl.lit("Inactive"))
    status = f.let(pl.when(shown).then(active).otherwise(MEMBER_STATUS.pick(dv, "m.status")))
    access_window = (pl.col("ver_end") - pl.col("t")).clip(upper_bound=120 * 86_400)
    last_access = pl.col("ver_end") - dv.below("m.access", access_window)
    blocked = f.let(d.chance("m.blocked", 0.05))
    legacy = f.let(d.chance("m.legacy", 0.3))  # answered by an older API version, without the v2 keys
    trainer = f.let(d.chance("m.trainer", 0.005))
    staff = []
    for role, key, share in (
        ("Consultant", "cons", 0.85),
        ("Instructor", "inst", 0.4),
        ("PersonalTrainer", "pers", 0.05),
    ):
        f.let(d.below(f"m.{key}", s.EMPLOYEES), key)
        missing = f.let(~d.chance(f"m.{key}.has", share))
        id_json, name_json = s.employee(f, key)
        staff += [
            s.F(f"idEmployee{role}", s.null_if(missing, id_json)),
            s.F(f"nameEmployee{role}", s.null_if(missing, name_json)),
        ]
    conversion = f.let(
        pl.when(d.chance("m.conv.null", 0.15))
        .then(pl.lit(None, dtype=pl.Int64))
        .when(d.chance("m.conv.later", 0.1))
        .then(pl.col("t") + d.below("m.conv.d", 20 * 86_400))
        .otherwise(pl.col("t"))
    )
    rg = f.let(d.digits("m.rg", 8))
    address_branch = f.let(
        pl.when(d.chance("m.addr.away", 0.15)).then(d.below("m.addr.br", len(s.BRANCH_NAME))).otherwise(br)
    )
    fields = [
        s.F("idMember", s.jn(pl.col("id"))),
        s.F("firstName", s.js(person.first)),
        s.F("lastName", s.js(person.last)),
        s.F("registerName", s.js(person.first), legacy),
        s.F("registerLastName", s.js(person.last), legacy),
        s.F("usePreferredName", pl.lit("false"), legacy),
        s.F("registerDate", s.ts(d, "m.reg", pl.col("t"))),
        s.F("idBranch", s.jn(br + 1)),
        s.F("branchName", s.js(s.BRANCH_NAME.at(br))),
        s.F("accessBlocked", s.jb(blocked)),
        s.F("blockedReason", s.null_if(~blocked, s.js(s.BLOCK_REASON.pick(d, "m.block")))),
        s.F("document", s.cpf(d, "m.cpf")),
        s.F(
            "documentId",
            s.null_if(
                d.chance("m.rg.null", 0.3),
                s.js(
                    s.cat(
                        rg.str.slice(0, 2),
                        ".",
                        rg.str.slice(2, 3),
                        ".",
                        rg.str.slice(5, 3),
                        "-",
                        d.below("m.rg.dv", 10).cast(pl.String),
                    )
                ),
            ),
        ),
        s.F("maritalStatus", s.null_if(d.chance("m.marital.null", 0.2), s.js(MARITAL.pick(d, "m.marital")))),
        s.F("gender", s.js(person.gender)),
        s.F(
            "birthDate",
            s.null_if(
                d.chance("m.birth.null", 0.05), s.day(pl.col("t") - d.between("m.age", 16 * 365, 70 * 365) * 86_400)
            ),
        ),
        *s.address(d, address_branch),
        s.F("accessCardNumber", s.null_if(d.chance("m.card.null", 0.3), s.js(d.digits("m.card", 10)))),
        s.F("membershipStatus", s.js(status)),
        s.F("status", s.js(status)),
        s.F("penalized", s.jb(d.chance("m.penalized", 0.02))),
        s.F(
            "totalFitCoins",
            s.jn(pl.when(d.chance("m.coins", 0.9)).then(0).otherwise(d.below("m.coins.n", 500))),
            legacy,
        ),
        s.F("lastAccessDate", s.null_if(d.chance("m.access.null", 0.08), s.ts(dv, "m.access.ts", last_access))),
        s.F("conversionDate", s.ts(d, "m.conv.ts", pl.when(conversion <= pl.col("ver_end")).then(conversion))),
        s.F(
            "updateDate",
            s.ts(
                dv,
                "m.upd",
                pl.col("ver_end") - dv.below("m.upd.d", 3 * 86_400).clip(upper_bound=pl.col("ver_end") - pl.col("t")),
            ),
            legacy,
        ),
        *staff,
        s.F(
            "photoUrl",
            s.null_if(
                d.chance("m.photo", 0.65),
                s.js(s.cat("https://evo-fotos.w12app.com.br/skyfit/fotos/", s.jn(pl.col("id")), ".jpg")),
            ),
        ),
        s.F("idMemberMigration", s.null_if(d.chance("m.mig", 0.9), s.js(s.cat("MIG", d.digits("m.mig.n", 7))))),
        s.F("gympassId", s.null_if(d.chance("m.gympass", 0.94), s.js(d.digits("m.gympass.n", 13)))),
        s.F("codeTotalpass", s.null_if(d.chance("m.totalpass", 0.96), s.js(s.cat("TP", d.digits("m.tp", 8)))), legacy),
        s.F("userIdGurupass", s.null_if(d.chance("m.guru", 0.99), s.js(d.digits("m.guru.n", 9))), legacy),
        s.F("clientWithPromotionalRestriction", s.jb(d.chance("m.promo", 0.02)), legacy),
        s.F("personalTrainer", s.jb(trainer)),
        s.F("personalType", s.null_if(~trainer, pl.lit('"Personal externo"'))),
        s.F("cref", s.null_if(~trainer, s.js(s.cat(d.digits("m.cref", 6), "-G/", s.BRANCH_STATE.at(br))))),
        s.F("crefExpirationDate", s.null_if(~trainer, s.day(pl.col("ver_end") + 300 * 86_400))),
        s.F("contacts", contacts_json),
        s.F(
            "memberships",
            s.null_if(ms_mode < 2, pl.when(shown).then(memberships_json).otherwise(pl.lit("[]"))),
            ms_mode == 2,
        ),
        s.F("responsibles", responsibles, d.chance("m.resp.omit", 0.04)),
    ]
    return s.line(f, fields, d.chance("m.drop_nulls", 0.1))


def _contact(c: s.Frame) -> pl.Expr:
    """A member's contact: cellphone first, then e-mail, then landline; some without idPhone."""
    d, k = c.at("ck"), pl.col("k")
    kind = c.let(pl.when(k == 0).then(2).when(k == 1).then(4).otherwise(1))
    return s.obj(
        [
            s.F(
                "idPhone",
                s.null_if(d.chance("c.id.null", 0.04), s.jn(pl.col("i") * 4 + k + 2_200_000)),
                d.chance("c.id.omit", 0.02),
            ),
            s.F("idMember", s.jn(pl.col("id"))),
            s.F("idContactType", s.jn(kind)),
            s.F(
                "contactType",
                s.js(
                    pl.when(kind == 2)
                    .then(pl.lit("Celular"))
                    .when(kind == 4)
                    .then(pl.lit("E-mail"))
                    .otherwise(pl.lit("Telefone"))
                ),
            ),
            s.F("ddi", pl.lit('"55"'), kind == 4),
            s.F(
                "description",
                s.js(
                    pl.when(kind == 2)
                    .then(pl.col("cell"))
                    .when(kind == 4)
                    .then(pl.col("email"))
                    .otherwise(pl.col("land"))
                ),
            ),
        ]
    )


def _membership(c: s.Frame) -> pl.Expr:
    """A MemberMembership: consecutive plans from the register date, none starting after the run."""
    d = c.at("ck")
    plan = c.let(s.PLAN.pick(d, "ms.plan"), "plan")
    months = c.let(s.PLAN_MONTHS.at(plan))
    days = c.let(pl.when(months == 0).then(1).otherwise(months * 30 + months // 2), "days")
    span = days + pl.when(d.chance("ms.gap", 0.4)).then(d.between("ms.gap.d", 1, 90)).otherwise(0)
    c.let(pl.col("reg_day") + span.cum_sum().over("i") - span, "start")
    c.filter(pl.col("start") <= pl.col("end_day"))
    c.let(pl.col("k") == pl.col("k").max().over("i"), "last")
    c.let(pl.len().over("i"), "n")
    c.filter(~(pl.col("drop_first") & (pl.col("k") == 0) & (pl.col("n") >= 2)))
    start, end_day = pl.col("start"), pl.col("end_day")
    end = c.let(start + days - 1)
    late_cancel = pl.col("changed") & pl.col("last") & d.chance("ms.cancel.late", 0.3)
    cancel_day = c.let(
        pl.when(late_cancel)
        .then(end_day - 1)
        .when(d.chance("ms.cancel", 0.08))
        .then(start + d.below("ms.cancel.d", days))
    )
    cancel_day = c.let(pl.when(cancel_day <= end_day).then(cancel_day))
    active = c.let(cancel_day.is_null() & (end >= end_day), "active")
    status = (
        pl.when(cancel_day.is_not_null())
        .then(pl.lit("canceled"))
        .when(active)
        .then(pl.lit("active"))
        .otherwise(pl.lit("expired"))
    )
    monthly = c.let(s.PLAN_CENTS.at(plan))
    annual = c.let(months == 12)
    sale_at = c.let(start * 86_400 - d.below("ms.sale.before", 2 * 86_400) + 9 * 3600)
    signed = c.let(d.chance("ms.signed", 0.7))
    freeze_start = c.let((start + d.below("ms.frz.d", days)) * 86_400)
    suspension_days = c.let(pl.when(annual).then(30).otherwise(0))
    freeze = s.obj(
        [
            s.F("idFreeze", s.jn(pl.col("ck") + 700_000)),
            s.F("idEmployee", s.jn(d.below("ms.frz.emp", s.EMPLOYEES) + s.EMPLOYEE_ID0)),
            s.F("daysFreeze", s.jn(d.between("ms.frz.days", 7, 30))),
            s.F("startSuspend", s.day(freeze_start)),
            s.F("endSuspend", s.day(freeze_start + 15 * 86_400)),
            s.F(
                "unlockDate", s.null_if(d.chance("ms.frz.unlock", 0.6), s.ts(d, "ms.frz.u", freeze_start + 16 * 86_400))
            ),
            s.F("reason", s.js(FREEZE_REASON.pick(d, "ms.frz.reason"))),
            s.F("flUseMembershipFreezeDays", s.jb(d.chance("ms.frz.fl", 0.8))),
        ]
    )
    session = s.obj(
        [
            s.F("idSession", s.jn(pl.col("ck") + 900_000)),
            s.F("expirationDate", s.day(end * 86_400)),
            s.F("flBonusSession", pl.lit("true")),
        ]
    )
    next_charge = (end_day + 30 - (end_day - start) % 30) * 86_400
    return s.obj(
        [
            s.F("idMember", s.jn(pl.col("id"))),
            s.F("idMembership", s.jn(s.PLAN_ID.at(plan))),
            s.F("idMemberMembership", s.jn(pl.col("ck") + 5_000_000)),
            s.F("idMemberMembershipRenewed", s.null_if(pl.col("k") == 0, s.jn(pl.col("ck") + 5_000_000 - 1))),
            s.F("numMembers", s.jn(s.PLAN_PEOPLE.at(plan))),
            s.F("startDate", s.day(start * 86_400)),
            s.F("endDate", s.day(end * 86_400, "23:59:59")),
            s.F("name", s.js(s.PLAN_NAME.at(plan))),
            s.F("cancelDate", s.day(cancel_day * 86_400)),
            s.F("membershipStatus", s.js(status)),
            s.F("valueNextMonth", s.null_if(~active, s.money(c, monthly))),
            s.F("originalValue", s.money(c, monthly + 2000)),
            s.F("nextCharge", s.null_if(~active | annual, s.day(next_charge))),
            s.F("idSale", s.jn(SALE_ID0 + d.below("ms.sale", 12_000_000))),
            s.F("saleDate", s.ts(d, "ms.sale.ts", sale_at)),
            s.F("idCategoryMembership", s.jn(s.PLAN_CATEGORY.at(plan))),
            s.F("numberSuspensionTimes", s.jn(d.below("ms.susp.n", 3))),
            s.F("maxSuspensionDays", s.jn(suspension_days)),
            s.F("minimumSuspensionDays", s.jn(pl.when(annual).then(7).otherwise(0))),
            s.F("disponibleSuspensionDays", s.jn(suspension_days)),
            s.F("disponibleSuspensionTimes", s.jn(pl.when(annual).then(2).otherwise(0))),
            s.F("daysLeftToFreeze", s.jn(suspension_days)),
            s.F("bioimpedanceAmount", s.jn(d.below("ms.bio", 3))),
            s.F(
                "weeklyLimit",
                s.null_if(d.chance("ms.wl", 0.9), s.jn(d.between("ms.wl.n", 2, 5))),
                d.chance("ms.wl.o", 0.2),
            ),
            s.F("concludedSessions", pl.lit("0")),
            s.F("pendingSessions", pl.lit("0")),
            s.F("scheduledSessions", pl.lit("0")),
            s.F("pendingRepositions", pl.lit("0")),
            s.F("repositionsTotal", pl.lit("0")),
            s.F("bonusSessions", pl.lit("0")),
            s.F("loyaltyEndDate", s.null_if(~annual, s.day(end * 86_400))),
            s.F("assessmentEndDate", s.null_if(d.chance("ms.assess", 0.9), s.day((start + 90) * 86_400))),
            s.F("acceptanceDate", s.null_if(~signed, s.ts(d, "ms.accept", sale_at + 120))),
            s.F("contractPrinting", s.null_if(d.chance("ms.contract", 0.85), pl.lit('"Contrato padrão SKYFIT v3"'))),
            s.F("flRenewed", s.jb(~pl.col("last"))),
            s.F("flAllowLocker", s.jb(d.chance("ms.locker", 0.1))),
            s.F("flAdditionalMembership", s.jb(d.chance("ms.additional", 0.03))),
            s.F("signedTerms", s.jb(signed)),
            s.F("limitless", s.jb(d.chance("ms.limitless", 0.9))),
            s.F("freezes", pl.when(d.chance("ms.frz", 0.05)).then(s.cat("[", freeze, "]")).otherwise(pl.lit("[]"))),
            s.F("sessions", pl.when(d.chance("ms.ses", 0.03)).then(s.cat("[", session, "]")).otherwise(pl.lit("[]"))),
        ]
    )


SAMPLE = Sample(
    entity="members",
    build=_members,
    part_size=2_000,
    batch_rows=10_000,
    page_size=50,
    history=datetime.date(2020, 6, 1),
    window_months=3,
    refers={"members": 1.0},
    manifest={"show_memberships": True},
)

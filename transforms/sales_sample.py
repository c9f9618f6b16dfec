"""Sample bronze of sales (``evo-frames synth``): saleItens[] and receivables[]; receivables get
paid and sales cancelled as runs go by. Buyers are members (or, for a few, prospects) of the
samples the same ``records`` and ``seed`` generate, with their own name and branch.
"""

from __future__ import annotations

import datetime

import polars as pl

from evo_frames.spec import Sample
from evo_frames.synth import kit as s

from .sample_ids import MEMBER_ID0, PROSPECT_ID0, SALE_ID0

# (idProduct, description, price in cents, idService or 0)
_PRODUCTS = (
    (501, "Taxa de matrícula", 4990, 0),
    (502, "Garrafa SKYFIT 750ml", 3990, 0),
    (0, "Avaliação física", 5990, 31),
    (503, "Camiseta Dry-Fit SKYFIT", 6990, 0),
    (504, "Cadeado p/ armário", 2500, 0),
    (0, "Personal – pacote 4 aulas", 24000, 35),
    (505, "Toalha de rosto", 2990, 0),
)


PRODUCT = s.Pool(range(len(_PRODUCTS)), (40, 12, 15, 8, 10, 5, 10))


PRODUCT_ID, PRODUCT_NAME, PRODUCT_CENTS, PRODUCT_SERVICE = (s.Pool([p[n] for p in _PRODUCTS]) for n in range(4))


# (paymentType id, name, installments allowed, card)
_PAYMENTS = (
    (2, "Cartão de Crédito", True, True),
    (18, "Pix", False, False),
    (3, "Cartão de Débito", False, True),
    (1, "Dinheiro", False, False),
    (5, "Boleto", True, False),
    (12, "Cartão de crédito online", True, True),
    (13, "Transferência", False, False),
    (11, "Crédito de venda", False, False),
)


PAYMENT = s.Pool(range(len(_PAYMENTS)), (45, 20, 12, 8, 5, 7, 2, 1))


PAYMENT_ID, PAYMENT_NAME, PAYMENT_SPLIT, PAYMENT_CARD = (s.Pool([p[n] for p in _PAYMENTS]) for n in range(4))


INSTALLMENTS = s.Pool((1, 2, 3, 6, 10, 12), (55, 5, 10, 8, 5, 17))


CARD_FLAG = s.Pool(("Visa", "Mastercard", "Elo", "Hipercard", "American Express"), (40, 35, 15, 5, 5))


ACQUIRER = s.Pool(("Cielo", "Rede", "Stone", "GetNet", "PagSeguro"))


OBSERVATION = s.Pool(
    (
        "Pagamento via Pix confirmado",
        'Cliente solicitou "congelamento" em março',
        "Renovação automática\nVer com gerência",
        "Desconto de 10% – campanha Verão",
        "Aluno transferido da unidade Tatuapé",
        "Obs.: prefere contato por WhatsApp; não ligar após 20h",
        "Comprovante salvo em C:\\Recepcao\\comprovantes",
        "Matrícula\tpromocional",
    )
)


PARTNERSHIP = s.Pool(("Wellhub (Gympass)", "TotalPass", "Banco do Brasil – Convênio", "Prefeitura de Santos"))


SALE_SOURCE = s.Pool((1, 11, 4, 9), (70, 15, 10, 5))


def _sales(f: s.Frame, ctx: s.Populations) -> pl.LazyFrame:
    """Sales with saleItens[] and receivables[]; receivables get paid and sales cancelled as runs go by."""
    d, dv = f.at("i"), f.at("iv")
    lead = f.let(d.chance("s.lead", 0.06))
    f.let(d.below("s.member", ctx["members"]), "m")
    f.let(d.below("s.prospect", ctx["prospects"]), "p")
    buyer = pl.when(lead).then(s.person(f, "prospect", "p").full).otherwise(s.person(f, "member", "m").full)
    home = pl.when(lead).then(s.home_branch(f, "prospect", "p")).otherwise(s.home_branch(f, "member", "m"))
    removal = pl.col("t") + d.between("s.removal.d", 3600, 30 * 86_400)
    f.let(pl.col("i") + SALE_ID0, "id")
    f.let(pl.when(~lead).then(pl.col("m") + MEMBER_ID0), "member")
    f.let(pl.when(lead).then(pl.col("p") + PROSPECT_ID0), "prospect")
    f.let(buyer, "buyer")
    f.let(pl.when(d.chance("s.away", 0.1)).then(d.below("s.br", len(s.BRANCH_NAME))).otherwise(home), "br")
    pay = f.let(PAYMENT.pick(d, "s.pay"), "pay")
    f.let(pl.when(d.chance("s.removed", 0.03) & (removal <= pl.col("ver_end"))).then(removal), "removed_at")
    f.let(pl.when(PAYMENT_SPLIT.at(pay)).then(INSTALLMENTS.pick(d, "s.inst")).otherwise(1), "inst")

    f.materialize()
    n_items = s.Pool((1, 2, 3), (65, 25, 10)).pick(d, "s.items")
    items = s.children(
        f, n_items, ("i", "t"), _sale_item, total=pl.col("cents").sum(), first_item=pl.col("name").first()
    )
    items_json = s.attach(f, items, "saleItens")
    f.materialize()
    receivables = s.children(
        f,
        pl.col("inst"),
        (
            "i",
            "id",
            "t",
            "ver_end",
            "total",
            "first_item",
            "inst",
            "pay",
            "removed_at",
            "member",
            "prospect",
            "buyer",
            "br",
        ),
        _receivable,
    )
    receivables_json = s.attach(f, receivables, "receivables")
    removed = f.let(pl.col("removed_at").is_not_null())
    items_mode, recv_mode = f.let(d.below("s.items.mode", 100)), f.let(d.below("s.recv.mode", 100))
    partner = f.let(d.chance("s.partner", 0.05))
    f.let(d.below("s.emp", s.EMPLOYEES), "emp")
    f.let(
        pl.when(d.chance("s.seller", 0.9)).then(pl.col("emp")).otherwise(d.below("s.seller.e", s.EMPLOYEES)), "seller"
    )
    seller_id, seller_name = s.employee(f, "seller")
    fields = [
        s.F("idSale", s.jn(pl.col("id"))),
        s.F("idMember", s.jn(pl.col("member"))),
        s.F("idProspect", s.jn(pl.col("prospect"))),
        s.F("idEmployee", s.jn(pl.col("emp") + s.EMPLOYEE_ID0)),
        s.F("idEmployeeSale", seller_id),
        s.F("nameEmployeeSale", seller_name),
        s.F("idPersonal", pl.lit(None, dtype=pl.String)),
        s.F("saleDate", s.ts(d, "s.date", pl.col("t"))),
        s.F("saleDateServer", s.ts(d, "s.server", pl.col("t") - s.UTC_OFFSET + d.below("s.server.d", 6))),
        s.F(
            "updateDate",
            s.ts(
                dv,
                "s.upd",
                pl.col("ver_end") - dv.below("s.upd.d", 3600).clip(upper_bound=pl.col("ver_end") - pl.col("t")),
            ),
        ),
        s.F("removed", s.jb(removed)),
        s.F("removalDate", s.null_if(~removed, s.ts(d, "s.removal", pl.col("removed_at")))),
        s.F("idEmployeeRemoval", s.null_if(~removed, s.jn(d.below("s.rem.emp", s.EMPLOYEES) + s.EMPLOYEE_ID0))),
        s.F("idBranch", s.jn(pl.col("br") + 1)),
        s.F("saleSource", s.jn(SALE_SOURCE.pick(d, "s.source"))),
        s.F("observations", s.null_if(d.chance("s.obs", 0.85), s.js(OBSERVATION.pick(d, "s.obs.t")))),
        s.F("corporatePartnershipName", s.null_if(~partner, s.js(PARTNERSHIP.pick(d, "s.partner.n")))),
        s.F("coporatePartnershipId", s.null_if(~partner, s.jn(d.between("s.partner.id", 1, 4)))),
        s.F("idSaleMigration", s.null_if(d.chance("s.mig", 0.95), s.js(s.cat("VND", d.digits("s.mig.n", 8))))),
        s.F("idSaleRecurrency", s.null_if(d.chance("s.recur", 0.8), s.jn(d.below("s.recur.n", 10**6) + 410_000))),
        s.F(
            "saleItens",
            s.null_if(items_mode < 2, pl.when(items_mode < 4).then(pl.lit("[]")).otherwise(items_json)),
            items_mode == 4,
        ),
        s.F("receivables", s.null_if(recv_mode < 1, receivables_json), (recv_mode >= 1) & (recv_mode < 3)),
    ]
    return s.line(f, fields, d.chance("s.drop_nulls", 0.1))


def _sale_item(c: s.Frame) -> pl.Expr:
    """A sale item: the plan first (mostly), then products such as the enrolment fee."""
    d, k = c.at("ck"), pl.col("k")
    is_plan = c.let((k == 0) & d.chance("si.plan", 0.92))
    plan, product = c.let(s.PLAN.pick(d, "si.plan.p")), c.let(PRODUCT.pick(d, "si.product"))
    qty = c.let(pl.when(~is_plan & d.chance("si.qty", 0.1)).then(2).otherwise(1))
    value = c.let(
        pl.when(is_plan)
        .then(s.PLAN_CENTS.at(plan) * s.PLAN_MONTHS.at(plan).clip(lower_bound=1))
        .otherwise(PRODUCT_CENTS.at(product) * qty)
    )
    discount = c.let(
        pl.when(d.chance("si.disc", 0.3)).then(value * d.between("si.disc.pct", 5, 25) // 100).otherwise(0)
    )
    net = c.let(value - discount, "cents")
    name = c.let(pl.when(is_plan).then(s.PLAN_NAME.at(plan)).otherwise(PRODUCT_NAME.at(product)), "name")
    product_id, service_id = c.let(PRODUCT_ID.at(product)), c.let(PRODUCT_SERVICE.at(product))
    partner = c.let(d.chance("si.partner", 0.04))
    return s.obj(
        [
            s.F("idSaleItem", s.jn(pl.col("i") * 4 + k + 99_100_000)),
            s.F("description", s.js(name)),
            s.F("item", s.js(name)),
            s.F("itemValue", s.money(c, value)),
            s.F("saleValue", s.money(c, net)),
            s.F("saleValueWithoutCreditValue", s.money(c, net)),
            s.F("quantity", s.jn(qty)),
            s.F("idMembership", s.null_if(~is_plan, s.jn(s.PLAN_ID.at(plan)))),
            s.F("idMembershipRenewed", s.null_if(~is_plan | d.chance("si.renewed", 0.7), s.jn(s.PLAN_ID.at(plan)))),
            s.F("idProduct", s.null_if(is_plan | (product_id == 0), s.jn(product_id))),
            s.F("idService", s.null_if(is_plan | (service_id == 0), s.jn(service_id))),
            s.F("discount", s.money(c, discount)),
            s.F("corporateDiscount", pl.lit("0")),
            s.F("tax", pl.lit("0")),
            s.F("membershipStartDate", s.null_if(~is_plan, s.day(pl.col("t") + d.below("si.start", 3) * 86_400))),
            s.F("idMemberMembership", s.null_if(~is_plan, s.jn(5_000_000 + d.below("si.mm", 40_000_000)))),
            s.F("valueNextMonth", s.null_if(~is_plan, s.money(c, s.PLAN_CENTS.at(plan)))),
            s.F("numMembers", s.jn(pl.when(is_plan).then(s.PLAN_PEOPLE.at(plan)).otherwise(1))),
            s.F("voucher", s.null_if(d.chance("si.voucher", 0.97), pl.lit('"VERAO10"'))),
            s.F("accountingCode", s.null_if(d.chance("si.acc", 0.8), pl.lit('"3.01.01"'))),
            s.F("municipalServiceCode", s.null_if(d.chance("si.msc", 0.8), pl.lit('"06.04"'))),
            s.F("idSaleItemMigration", pl.lit(None, dtype=pl.String), d.chance("si.mig.o", 0.5)),
            s.F("flReceiptOnly", pl.lit("false")),
            s.F("flSwimming", s.jb(d.chance("si.swim", 0.02))),
            s.F("flAllowLocker", s.jb(d.chance("si.locker", 0.05))),
            s.F("coporatePartnershipId", s.null_if(~partner, s.jn(d.between("si.partner.id", 1, 4)))),
            s.F("corporatePartnershipName", s.null_if(~partner, s.js(PARTNERSHIP.pick(d, "si.partner.n")))),
        ]
    )


def _receivable(c: s.Frame) -> pl.Expr:
    """An installment; it is paid once the run's time passes its payment, some weeks late."""
    d, k, n = c.at("ck"), pl.col("k"), pl.col("inst")
    amount = c.let(pl.col("total") // n + pl.when(k == n - 1).then(pl.col("total") % n).otherwise(0))
    due = c.let((pl.col("t") // 86_400 + 30 * k) * 86_400)
    # a defaulter pays late, weeks after the due date: a later run sees it paid
    delay = (
        pl.when(d.chance("r.late", 0.1))
        .then(d.between("r.late.d", 5, 60) * 86_400)
        .otherwise(d.below("r.delay", 3 * 86_400))
    )
    paid_at = c.let(pl.max_horizontal(due + delay + 36_000, pl.col("t") + 40))
    removed = c.let(pl.col("removed_at").is_not_null())
    paid = c.let(~removed & (paid_at <= pl.col("ver_end")))
    status = c.let(pl.when(removed).then(3).when(paid).then(2).when(due < pl.col("ver_end")).then(4).otherwise(1))
    status_name = (
        pl.when(status == 3)
        .then(pl.lit("Canceled"))
        .when(status == 2)
        .then(pl.lit("Received"))
        .when(status == 4)
        .then(pl.lit("Overdue"))
        .otherwise(pl.lit("Opened"))
    )
    card = c.let(PAYMENT_CARD.at(pl.col("pay")))
    bank = s.obj([s.F("id", pl.lit("3")), s.F("name", pl.lit('"Itaú Unibanco – conta movimento"'))])
    return s.obj(
        [
            s.F("idReceivable", s.jn(pl.col("ck") + 77_000_000)),
            s.F("description", s.js(s.cat(pl.col("first_item"), " ", s.jn(k + 1), "/", s.jn(n)))),
            s.F("registrationDate", s.ts(d, "r.reg", pl.col("t") + 20)),
            s.F("dueDate", s.day(due)),
            s.F("receivingDate", s.null_if(~paid, s.ts(d, "r.recv", paid_at))),
            s.F("competenceDate", s.day(due)),
            s.F("cancellationDate", s.null_if(~removed, s.ts(d, "r.cancel", pl.col("removed_at")))),
            s.F(
                "updateDate",
                s.ts(
                    d, "r.upd", pl.max_horizontal(pl.col("t") + 20, pl.when(paid).then(paid_at), pl.col("removed_at"))
                ),
            ),
            s.F("chargeDate", s.null_if(~card | d.chance("r.charge", 0.5), s.day(due))),
            s.F("ammount", s.money(c, amount)),
            s.F("ammountPaid", s.money(c, pl.when(paid).then(amount).otherwise(0))),
            s.F("fees", s.money(c, pl.when(card).then(amount * 299 // 10_000).otherwise(0))),
            s.F("status", s.obj([s.F("id", s.jn(status)), s.F("name", s.js(status_name))])),
            s.F("currentInstallment", s.jn(k + 1)),
            s.F("totalInstallments", s.jn(n)),
            s.F(
                "paymentType",
                s.obj(
                    [s.F("id", s.jn(PAYMENT_ID.at(pl.col("pay")))), s.F("name", s.js(PAYMENT_NAME.at(pl.col("pay"))))]
                ),
            ),
            s.F("authorization", s.null_if(~card, s.js(d.digits("r.auth", 6)))),
            s.F("tid", s.null_if(~card, s.js(d.digits("r.tid", 10)))),
            s.F("nsu", s.null_if(~card, s.js(d.digits("r.nsu", 6)))),
            s.F("cardAcquirer", s.null_if(~card, s.js(ACQUIRER.pick(d, "r.acq")))),
            s.F("cardFlag", s.null_if(~card, s.js(CARD_FLAG.pick(d, "r.flag")))),
            s.F("payerName", s.js(pl.col("buyer"))),
            s.F("idMemberPayer", s.jn(pl.col("member"))),
            s.F("idProspectPayer", s.jn(pl.col("prospect"))),
            s.F("idBranchMember", s.jn(pl.col("br") + 1)),
            s.F("idSale", s.jn(pl.col("id"))),
            s.F("saleDate", s.ts(d, "r.sale", pl.col("t"))),
            s.F("idReceivableFrom", pl.lit(None, dtype=pl.String)),
            s.F("conciliated", s.jb(paid & d.chance("r.conc", 0.6))),
            s.F("cancellationDescription", s.null_if(~removed, pl.lit('"Venda estornada"'))),
            s.F("source", s.js(pl.when(n > 1).then(pl.lit("Parcelamento")).otherwise(pl.lit("Venda")))),
            s.F("bankAccount", s.null_if(card, bank)),
            s.F("invoiceDetails", pl.lit("[]")),
            s.F("creditDetails", pl.lit("[]")),
        ]
    )


SAMPLE = Sample(
    entity="sales",
    build=_sales,
    part_size=5_000,
    batch_rows=10_000,
    page_size=100,
    history=datetime.date(2024, 1, 1),
    window_months=1,
    refers={"members": 0.19, "prospects": 0.048},
)

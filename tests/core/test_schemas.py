"""Names people read and type (external ids, titles, event ids): what `visible` refuses."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.schemas import visible

HIDDEN = ("Cf", "Cc", "Co", "Cs")


@given(st.text(max_size=40))
def test_a_name_is_refused_exactly_when_it_is_blank_or_hides_a_character(value: str) -> None:
    hidden = [c for c in value if unicodedata.category(c) in HIDDEN]
    if not value.strip():
        with pytest.raises(ValueError, match="blank"):
            visible(value)
    elif hidden:
        with pytest.raises(ValueError, match=f"U\\+{ord(hidden[0]):04X}"):
            visible(value)
    else:
        assert visible(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "DX-2024-0001",
        "政务云\u3000一号资源池",  # an ideographic space is seen, and kept
        "\u00a0 核心交换机故障 ",  # so is a no-break space; the ends are trimmed
    ],
)
def test_names_with_spaces_people_see_are_accepted(value: str) -> None:
    assert visible(value) == value.strip()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("DX\u200b-1", "200B"),  # zero-width space
        ("DX-1\u202e", "202E"),  # right-to-left override
        ("工单\ue000", "E000"),  # private use
        ("DX\n1", "000A"),  # a line break in a name
    ],
)
def test_a_name_hiding_a_character_is_refused_naming_it(value: str, code: str) -> None:
    with pytest.raises(ValueError, match=f"invisible character \\(U\\+{code}\\)"):
        visible(value)

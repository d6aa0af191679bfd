"""Parameter declarations: rules, one-line errors, defaults, derived signatures."""

import inspect
import math
from dataclasses import dataclass

import pytest

from spark_recs.core.params import (
    FRACTION,
    POSITIVE,
    ConfigError,
    Rule,
    check_params,
    declarations,
    help_text,
    param,
    signature,
)


@dataclass(frozen=True)
class _ToyParams:
    sizes: list[int] = param([4], Rule(list, items=Rule(int, 1)), "layer sizes")
    rate: float = param(0.1, POSITIVE, "step size")
    width: int | str = param(0, Rule((int, str), 0, choices=("auto",)), "a size or 'auto'")
    clip: float | None = param(None, Rule((int, float), 0, low_open=True, nullable=True), "clip norm")


class Toy:
    Params = _ToyParams


@pytest.mark.parametrize(
    "rule, value, message",
    [
        (FRACTION, 1.0, "x = 1.0 is out of range [0, 1)"),
        (POSITIVE, 0, "x = 0 is out of range (0, inf)"),
        (Rule(int, None, 5), 6, "x = 6 is out of range (-inf, 5]"),
        (Rule(int, 1), True, "x must be an integer in [1, inf), got True"),
        (Rule(str, choices=("a", "b")), "c", "x must be one of ['a', 'b'], got 'c'"),
        (
            Rule((int, str), 0, choices=("auto",)),
            "big",
            "x must be an integer in [0, inf) or one of ['auto']",
        ),
        (Rule((int, str), 0, choices=("auto",)), -1, "x = -1 is out of range [0, inf)"),
        (Rule(list, items=Rule(int, 1)), [2, 0], "x[1] = 0 is out of range [1, inf)"),
        (Rule(list, items=Rule(int, 1)), [], "x must be a non-empty list"),
        (Rule(str), None, "x must be a string, got None"),
    ],
)
def test_a_refused_value_is_one_line_naming_the_key_and_what_is_allowed(rule, value, message):
    with pytest.raises(ConfigError) as error:
        rule.check("x", value)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_allowed_values_pass_and_nan_is_outside_every_bounded_range():
    for rule, value in [
        (FRACTION, 0),
        (POSITIVE, 1e-9),
        (Rule((int, str), 0, choices=("auto",)), "auto"),
        (Rule(str, nullable=True), None),
        (Rule(bool), False),
    ]:
        rule.check("x", value)
    with pytest.raises(ConfigError, match="out of range"):
        FRACTION.check("x", math.nan)


def test_a_number_or_a_list_of_fixed_length():
    pair = Rule((int, float), 0, items=Rule((int, float), 0), length=2)
    assert pair.describe() == "a number in [0, inf) or a list of 2, each a number in [0, inf)"
    for value in (0, 2.5, [1, 0.5]):
        pair.check("x", value)
    for value, message in [
        (-1, r"^x = -1 is out of range \[0, inf\)$"),
        ([1, -1], r"^x\[1\] = -1 is out of range \[0, inf\)$"),
        ([1, 2, 3], r"^x must be a number in \[0, inf\) or a list of 2, each .*, got \[1, 2, 3\]$"),
        ([], r"^x must be .* a list of 2, .*, got \[\]$"),
        ("1", r"^x must be a number in \[0, inf\) or a list of 2, each .*, got '1'$"),
    ]:
        with pytest.raises(ConfigError, match=message):
            pair.check("x", value)
    # A list-only rule still refuses anything else, naming what its items may be.
    with pytest.raises(
        ConfigError, match=r"^x must be a non-empty list, each an integer in \[1, inf\), got 3$"
    ):
        Rule(list, items=Rule(int, 1)).check("x", 3)


def test_describe_says_the_allowed_values_in_words():
    assert Rule((int, float), 0, 1, high_open=True).describe() == "a number in [0, 1)"
    assert Rule(int, 1, nullable=True).describe() == "an integer in [1, inf) or null"
    assert Rule(list, items=Rule(int, 1)).describe() == "a non-empty list, each an integer in [1, inf)"


def test_declarations_are_read_from_the_class_or_its_params():
    declared = declarations(Toy)
    assert declared == declarations(_ToyParams) == declarations(Toy())
    assert list(declared) == ["sizes", "rate", "width", "clip"]
    assert (declared["rate"].default, declared["rate"].rule, declared["rate"].doc) == (
        0.1,
        POSITIVE,
        "step size",
    )


def test_check_params_fills_defaults_and_names_the_owner_in_its_errors():
    checked = check_params(Toy, {"rate": 0.5})
    assert checked == {"sizes": [4], "rate": 0.5, "width": 0, "clip": None}
    checked["sizes"].append(8)  # a copy: the declared default is unchanged
    assert declarations(Toy)["sizes"].default == [4] and _ToyParams().sizes == [4]
    with pytest.raises(ConfigError, match=r"^unknown Toy parameter 'rat'; did you mean 'rate'\?$"):
        check_params(Toy, {"rat": 0.5})
    with pytest.raises(ConfigError, match=r"^Toy parameter width = -2 is out of range \[0, inf\)$"):
        check_params(Toy, {"width": -2})


def test_the_signature_and_help_are_derived_from_the_declaration():
    sig = signature(Toy)
    assert list(sig.parameters) == ["self", "sizes", "rate", "width", "clip"]
    assert sig.parameters["sizes"].default == [4] and sig.parameters["clip"].default is None
    assert sig.parameters["rate"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["rate"].annotation is float
    assert help_text(Toy).splitlines()[1] == "rate = 0.1: step size (a number in (0, inf))"

from __future__ import annotations

import pytest

from mlkeel.errors import InvalidInputError
from mlkeel.schema import FeatureSpec, InputSchema, TargetSpec
from mlkeel.serving.validation import Validator

SCHEMA = InputSchema(
    features=[
        FeatureSpec("age", "numeric", "int", False, minimum=18, maximum=90),
        FeatureSpec("city", "categorical", "str", False, categories=["Oslo", "Rome"]),
    ],
    target=TargetSpec("churned", "classification", [0, 1]),
)


def test_string_over_the_limit_is_refused_with_its_field() -> None:
    validator = Validator(SCHEMA, max_rows=10, max_string=8)

    with pytest.raises(InvalidInputError) as caught:
        validator.records([{"age": 30, "city": "Oslo"}, {"age": 31, "city": "x" * 9}], "instances")

    assert caught.value.field == "instances[1].city"
    assert "9 characters long; at most 8" in str(caught.value)


def test_string_at_the_limit_is_served_and_unseen_counted() -> None:
    validator = Validator(SCHEMA, max_rows=10, max_string=8)

    rows = validator.records([{"age": 30, "city": "x" * 8}], "instances")

    assert rows.events == {("city", "unseen_category"): 1}

"""Rows against an input schema: types, nulls, non-finite numbers, shapes, quality events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlkeel.errors import InvalidInputError, PayloadTooLargeError
from mlkeel.prediction_log.record import UNLISTED
from mlkeel.registry import VersionInfo
from mlkeel.schema import FeatureSpec, InputSchema, TargetSpec
from mlkeel.serving.model_slot import ServedModel
from mlkeel.serving.validation import Validator

SCHEMA = InputSchema(
    features=[
        FeatureSpec("age", "numeric", "int", False, minimum=18, maximum=90),
        FeatureSpec("income", "numeric", "float", True, minimum=0, maximum=1e6),
        FeatureSpec("city", "categorical", "str", False, categories=["Oslo", "Rome"]),
        FeatureSpec("member", "categorical", "bool", False, categories=["False", "True"]),
    ],
    target=TargetSpec("churned", "classification", [0, 1]),
)
ROW = {"age": 30, "income": 1200.5, "city": "Oslo", "member": True}


def check(rows: list[dict[str, Any]], max_rows: int = 100) -> Any:
    return Validator(SCHEMA, max_rows).records(rows, "instances")


def refusal(rows: list[dict[str, Any]]) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        check(rows)
    assert caught.value.field is not None
    assert caught.value.field in str(caught.value)
    return caught.value


def test_valid_rows_become_typed_columns() -> None:
    rows = check([ROW, {**ROW, "income": None, "city": "Rome", "member": False}])

    assert rows.count == 2
    assert rows.matrix is None
    assert rows.columns is not None
    age, income, city, member = rows.columns
    np.testing.assert_array_equal(age, [30.0, 30.0])
    assert np.isnan(income[1])
    assert city == ["Oslo", "Rome"]
    assert member.dtype == bool
    assert rows.events == {}


def test_feature_columns_hand_the_log_numbers_as_one_block_and_categories_as_sent() -> None:
    validator = Validator(SCHEMA, 100)
    rows = validator.records([ROW, {**ROW, "income": None, "city": "Lima"}], "instances")

    columns = validator.feature_columns(rows)

    layout = columns.layout
    assert (layout.numeric, layout.categorical) == (("age", "income"), ("city", "member"))
    np.testing.assert_array_equal(columns.numbers, [[30.0, 1200.5], [30.0, np.nan]])
    assert layout.levels == (("Oslo", "Rome"), ("False", "True"))
    np.testing.assert_array_equal(columns.codes, [[0, 1], [UNLISTED, 1]])


def test_all_numeric_rows_count_out_of_range_values_alike_with_or_without_nulls() -> None:
    schema = InputSchema(features=SCHEMA.features[:2], target=SCHEMA.target)
    validator = Validator(schema, 100)
    rows = [{"age": 10, "income": 5.0}, {"age": 95, "income": 2e6}, {"age": 30, "income": 1.5}]

    plain = validator.records(rows, "instances")  # checked as one block
    with_null = validator.records([*rows, {"age": 40, "income": None}], "instances")

    expected = {("age", "out_of_range"): 2, ("income", "out_of_range"): 1}
    assert plain.events == with_null.events == expected
    assert plain.matrix is not None
    assert with_null.matrix is not None
    np.testing.assert_array_equal(plain.matrix, [[10.0, 5.0], [95.0, 2e6], [30.0, 1.5]])
    np.testing.assert_array_equal(with_null.matrix[:3], plain.matrix)
    assert np.isnan(with_null.matrix[3, 1])


def test_feature_columns_of_an_all_numeric_schema_are_its_matrix() -> None:
    schema = InputSchema(features=SCHEMA.features[:2], target=SCHEMA.target)
    validator = Validator(schema, 100)
    rows = validator.records([{"age": 30, "income": 1.5}], "instances")

    columns = validator.feature_columns(rows)

    assert columns.numbers is rows.matrix
    assert (columns.layout.categorical, columns.codes.shape) == ((), (1, 0))


@pytest.mark.parametrize(
    ("change", "kind", "field"),
    [
        ({"age": "30"}, "wrong_type", "instances[1].age"),
        ({"age": True}, "wrong_type", "instances[1].age"),
        ({"age": 10**400}, "wrong_type", "instances[1].age"),
        ({"age": None}, "null_value", "instances[1].age"),
        ({"age": float("nan")}, "not_finite", "instances[1].age"),
        ({"income": float("inf")}, "not_finite", "instances[1].income"),
        ({"city": 3}, "wrong_type", "instances[1].city"),
        ({"city": None}, "null_value", "instances[1].city"),
        ({"member": "yes"}, "wrong_type", "instances[1].member"),
        ({"member": 1}, "wrong_type", "instances[1].member"),
        ({"colour": "red"}, "unknown_feature", "instances[1].colour"),
    ],
)
def test_bad_values_are_refused_with_their_field(
    change: dict[str, Any], kind: str, field: str
) -> None:
    error = refusal([ROW, {**ROW, **change}])

    assert (error.error_type, error.field) == (kind, field)


def test_missing_features_are_listed() -> None:
    error = refusal([{"age": 30, "member": True}])

    assert (error.error_type, error.field) == ("missing_feature", "instances[0].income")
    assert "'income' (and 1 more: city)" in str(error)


def test_nan_is_accepted_where_training_had_missing_values() -> None:
    rows = check([{**ROW, "income": float("nan")}])

    assert rows.columns is not None
    assert np.isnan(rows.columns[1][0])


def test_unseen_categories_and_out_of_range_numbers_are_served_and_counted() -> None:
    rows = check([{**ROW, "city": "Lima", "age": 95}, {**ROW, "city": "Lima"}, ROW])

    assert rows.events == {("city", "unseen_category"): 2, ("age", "out_of_range"): 1}


def test_empty_and_oversized_requests_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="instances is empty"):
        check([])
    with pytest.raises(PayloadTooLargeError, match="at most 2 per request"):
        check([ROW] * 3, max_rows=2)


def test_records_columns_and_split_shapes_agree() -> None:
    validator = Validator(SCHEMA, 100)
    records = [ROW, {**ROW, "age": 41, "city": "Rome"}]
    columns = {name: [row[name] for row in records] for name in ROW}
    order = ["city", "member", "age", "income"]  # any column order
    split = {"columns": order, "data": [[row[name] for name in order] for row in records]}

    shapes = [
        validator.records(records, "instances"),
        validator.columns(columns, "inputs"),
        validator.split(split, "dataframe_split"),
    ]

    for rows in shapes:
        assert rows.raw == shapes[0].raw
        assert rows.columns is not None
        assert rows.columns[2] == ["Oslo", "Rome"]


def test_shape_errors_name_the_field() -> None:
    validator = Validator(SCHEMA, 100)
    with pytest.raises(InvalidInputError) as caught:
        validator.columns({**{name: [v] for name, v in ROW.items()}, "city": ["a", "b"]}, "inputs")
    assert caught.value.field == "inputs.city"
    with pytest.raises(InvalidInputError) as caught:
        validator.split({"columns": list(ROW), "data": [list(ROW.values())[:2]]}, "s")
    assert caught.value.field == "s.data[0]"
    with pytest.raises(InvalidInputError) as caught:
        validator.split({"columns": [["age"]], "data": []}, "s")
    assert caught.value.field == "s"


def test_a_model_fitted_on_a_frame_gets_a_frame_without_warnings() -> None:
    frame = pd.DataFrame(
        [
            {**ROW, "age": 20 + i, "city": ["Oslo", "Rome"][i % 2], "income": 100.0 * i}
            for i in range(20)
        ]
    )
    labels = [i % 2 for i in range(20)]
    encode = make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    info = VersionInfo("churn", 1, [], "", {}, None, None, None, {})
    validator = Validator(SCHEMA, 100)
    served = ServedModel(info, model, SCHEMA, validator, ("0", "1"), True, 0.0)
    first, second = (
        validator.records(frame.iloc[s].to_dict("records"), "i") for s in (slice(0, 3), slice(3, 5))
    )

    outputs = served.predict([first, second])  # warnings are errors in the test suite

    expected = model.predict_proba(frame.iloc[:5])
    assert [len(o.predictions) for o in outputs] == [3, 2]
    got = [p for o in outputs for p in o.probabilities or []]
    np.testing.assert_allclose([[p["0"], p["1"]] for p in got], expected)

"""Request rows checked against a model's input schema, column by column, without pandas.

Each column's value types are checked at C speed (``set(map(type, column))``); only when a
column is wrong is it scanned in Python, to name the first bad row. Numeric columns become
one float64 matrix (or one array each when the schema also has categorical features), which
is what the model input is built from. Data-quality events (a category unseen in training,
a number outside the training range) do not refuse the row; they are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from mlkeel.errors import InvalidInputError, PayloadTooLargeError
from mlkeel.prediction_log.record import MISSING, UNLISTED, ColumnLayout, FeatureColumns

if TYPE_CHECKING:
    from mlkeel.schema import FeatureSpec, InputSchema

Where = Callable[[int, str], str]
Column = npt.NDArray[Any] | list[Any]
NUMBER = frozenset({int, float})
NONE = type(None)
SHOWN = 8  # feature names listed in a message before "..."


@dataclass(frozen=True, slots=True)
class Rows:
    """Validated rows: the model's input columns and the client's raw values, for logging."""

    count: int
    raw: list[list[Any]]  # per feature, in schema order: the JSON values as sent
    matrix: npt.NDArray[np.float64] | None  # (count, features) when every feature is numeric
    columns: list[Column] | None  # per feature otherwise: float64 arrays, bool arrays, lists
    events: dict[tuple[str, str], int]  # (feature, kind) -> rows with that data-quality event
    records: list[dict[str, Any]] | None = None  # the client's row objects, when it sent some
    codes: list[list[int]] = field(default_factory=list)  # per categorical feature (log codes)


@dataclass(frozen=True, slots=True)
class _Check:
    spec: FeatureSpec
    allowed: frozenset[type]
    levels: tuple[str, ...]  # the training categories, in the order of their codes
    codes: Mapping[Any, int]  # value as sent -> its code (FeatureColumns)


class Validator:
    """Checks request rows against one model's input schema."""

    def __init__(self, schema: InputSchema, max_rows: int, max_string: int = 1024) -> None:
        self.names = schema.names
        self.max_rows = max_rows
        self.max_string = max_string
        self._nameset = frozenset(self.names)
        self._checks = [_check_for(spec) for spec in schema.features]
        self.numeric_only = all(spec.kind == "numeric" for spec in schema.features)
        kinds = [spec.kind for spec in schema.features]
        self._numeric_at = [j for j, kind in enumerate(kinds) if kind == "numeric"]
        self._categorical_at = [j for j, kind in enumerate(kinds) if kind != "numeric"]
        # Training ranges, to count values outside them at once (NaN: no range, never true).
        self._lows, self._highs = _ranges(schema.features)
        self._layout = ColumnLayout(
            numeric=tuple(self.names[j] for j in self._numeric_at),
            categorical=tuple(self.names[j] for j in self._categorical_at),
            levels=tuple(self._checks[j].levels for j in self._categorical_at),
        )

    def _plain_numbers(self, raw: list[list[Any]]) -> npt.NDArray[np.float64] | None:
        """All-numeric rows as one (rows, features) float block, checked as a whole: every
        value a finite int or float. None otherwise (a null, a non-number, a NaN, a huge
        int), for the column-by-column checks to accept or name. For one row of 30 features
        this is ~4x faster than 30 columns' checks (a tenth of a small request's CPU)."""
        if not set(map(type, chain.from_iterable(raw))) <= NUMBER:
            return None
        try:
            matrix = np.array(raw, dtype=np.float64).T
        except OverflowError:
            return None
        if not np.isfinite(matrix).all():
            return None
        return np.ascontiguousarray(matrix)

    def feature_columns(self, rows: Rows) -> FeatureColumns:
        """`rows`' features as the prediction log folds them: numbers as one float block (the
        arrays already checked), categories as their codes against the training categories."""
        if rows.matrix is not None:
            numbers = rows.matrix
        elif rows.columns is not None and self._numeric_at:
            numbers = np.column_stack([rows.columns[j] for j in self._numeric_at])
        else:
            numbers = np.empty((rows.count, 0), dtype=np.float64)
        if rows.codes:
            codes = np.ascontiguousarray(np.array(rows.codes, dtype=np.int64).T)
        else:
            codes = np.empty((rows.count, 0), dtype=np.int64)
        return FeatureColumns(self._layout, numbers, codes)

    # ---- input shapes ----------------------------------------------------------------------
    def records(self, rows: Any, path: str) -> Rows:
        """``[{feature: value, ...}, ...]``; field paths read ``path[3].feature``."""
        if not isinstance(rows, list):
            raise InvalidInputError(f"{path} must be a list of row objects", field=path)
        self._check_count(len(rows), path)
        nameset = self._nameset
        for index, row in enumerate(rows):
            if type(row) is not dict:
                raise InvalidInputError(
                    f"{path}[{index}] must be an object of feature: value, got {_json_type(row)}",
                    field=f"{path}[{index}]",
                )
            if row.keys() != nameset:
                self._key_error(row.keys(), f"{path}[{index}].")
        raw = [[row[name] for row in rows] for name in self.names]
        return self._build(raw, len(rows), lambda i, name: f"{path}[{i}].{name}", rows)

    def columns(self, table: Any, path: str) -> Rows:
        """``{feature: [value, ...], ...}``; field paths read ``path.feature[3]``."""
        if not isinstance(table, dict):
            raise InvalidInputError(f"{path} must be an object of feature: [values]", field=path)
        if table.keys() != self._nameset:
            self._key_error(table.keys(), f"{path}.")
        for name in self.names:
            if not isinstance(table[name], list):
                raise InvalidInputError(f"{path}.{name} must be a list", field=f"{path}.{name}")
        count = len(table[self.names[0]]) if self.names else 0
        for name in self.names:
            if len(table[name]) != count:
                raise InvalidInputError(
                    f"{path}.{name} has {len(table[name])} values, {path}.{self.names[0]} "
                    f"{count}; every column needs one value per row",
                    field=f"{path}.{name}",
                )
        self._check_count(count, path)
        raw = [table[name] for name in self.names]
        return self._build(raw, count, lambda i, name: f"{path}.{name}[{i}]")

    def split(self, body: Any, path: str) -> Rows:
        """pandas' split orient ``{"columns": [...], "data": [[...], ...]}``."""
        columns = body.get("columns") if isinstance(body, dict) else None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(columns, list) or not isinstance(data, list):
            raise InvalidInputError(
                f"{path} must be an object with 'columns' (names) and 'data' (rows)", field=path
            )
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise InvalidInputError(f"{path}.columns must be distinct names", field=path)
        if set(columns) != self._nameset:
            self._key_error(columns, f"{path}.columns.")
        self._check_count(len(data), f"{path}.data")
        width = len(columns)
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise InvalidInputError(
                    f"{path}.data[{index}] must be a list of {width} values, one per column",
                    field=f"{path}.data[{index}]",
                )
        position = {name: j for j, name in enumerate(columns)}
        raw = [[row[position[name]] for row in data] for name in self.names]
        return self._build(raw, len(data), lambda i, name: f"{path}.data[{i}].{name}")

    # ---- checks ----------------------------------------------------------------------------
    def _check_count(self, count: int, path: str) -> None:
        if count == 0:
            raise InvalidInputError(
                f"{path} is empty; send at least one row", field=path, error_type="empty_input"
            )
        if count > self.max_rows:
            raise PayloadTooLargeError(
                f"{path} has {count} rows; this server accepts at most {self.max_rows} per "
                "request (serving.max_batch_rows): split the request",
                field=path,
                error_type="too_many_rows",
            )

    def _key_error(self, keys: Any, prefix: str) -> NoReturn:
        given = set(keys)
        unknown = sorted(given - self._nameset)
        missing = [name for name in self.names if name not in given]
        if unknown:
            field = prefix + unknown[0]
            raise InvalidInputError(
                f"{field}: unknown feature {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f"; the model takes {_listing(self.names)}",
                field=field,
                error_type="unknown_feature",
            )
        field = prefix + missing[0]
        raise InvalidInputError(
            f"{field}: missing feature {missing[0]!r}"
            + (f" (and {len(missing) - 1} more: {_listing(missing[1:])})" if missing[1:] else "")
            + f"; every row needs all {len(self.names)} features",
            field=field,
            error_type="missing_feature",
        )

    def _build(self, raw: list[list[Any]], count: int, where: Where, records: Any = None) -> Rows:
        events: dict[tuple[str, str], int] = {}
        if self.numeric_only:
            matrix = self._plain_numbers(raw)
            if matrix is None:  # something to refuse or to let through: column by column
                matrix = np.empty((count, len(raw)), dtype=np.float64)
                for j, (check, values) in enumerate(zip(self._checks, raw, strict=True)):
                    matrix[:, j] = _numeric(check, values, where, events)
            else:
                outside = ((matrix < self._lows) | (matrix > self._highs)).sum(axis=0)
                for j in np.flatnonzero(outside).tolist():
                    events[(self.names[j], "out_of_range")] = int(outside[j])
            return Rows(count, raw, matrix, None, events, records)
        columns: list[Column] = []
        codes: list[list[int]] = []
        for check, values in zip(self._checks, raw, strict=True):
            if check.spec.kind == "numeric":
                columns.append(_numeric(check, values, where, events))
            else:
                column, coded = _categorical(check, values, where, events, self.max_string)
                columns.append(column)
                codes.append(coded)
        return Rows(count, raw, None, columns, events, records, codes)


def _ranges(
    specs: Sequence[FeatureSpec],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    bounds = [
        (s.minimum, s.maximum) if s.minimum is not None and s.maximum is not None
        else (np.nan, np.nan)
        for s in specs
    ]  # fmt: skip
    lows, highs = zip(*bounds, strict=True) if bounds else ((), ())
    return np.array(lows, dtype=np.float64), np.array(highs, dtype=np.float64)


def _check_for(spec: FeatureSpec) -> _Check:
    if spec.kind == "numeric":
        allowed: frozenset[type] = NUMBER
    else:
        allowed = frozenset({bool}) if spec.dtype == "bool" else frozenset({str})
    if spec.nullable:
        allowed |= {NONE}
    levels = tuple(spec.categories or ())
    codes: dict[Any, int] = {level: code for code, level in enumerate(levels)}
    if spec.dtype == "bool":  # sent as JSON booleans, listed as "True" and "False"
        codes = {value: codes[str(value)] for value in (True, False) if str(value) in codes}
    codes[None] = MISSING
    return _Check(spec, allowed, levels, codes)


def _categorical(
    check: _Check, values: list[Any], where: Where, events: dict[Any, int], max_string: int
) -> tuple[Column, list[int]]:
    """The column for the model, and each value's code for the prediction log."""
    _types(check, values, where)
    for index, value in enumerate(values):
        if isinstance(value, str) and len(value) > max_string:
            raise InvalidInputError(
                f"{where(index, check.spec.name)} is {len(value)} characters long; at most "
                f"{max_string} are accepted (serving.max_string_length)",
                field=where(index, check.spec.name),
                error_type="string_too_long",
            )
    codes = list(map(check.codes.get, values, repeat(UNLISTED)))
    if check.spec.categories is not None:  # None: too many in training to list
        unseen = codes.count(UNLISTED)
        if unseen:
            events[(check.spec.name, "unseen_category")] = unseen
    if check.spec.dtype == "bool" and not check.spec.nullable:
        return np.array(values, dtype=bool), codes
    return values, codes


def _numeric(
    check: _Check, values: list[Any], where: Where, events: dict[Any, int]
) -> npt.NDArray[np.float64]:
    spec = check.spec
    _types(check, values, where)
    try:
        array = np.array(values, dtype=np.float64)  # None (when nullable) becomes NaN
    except OverflowError:
        index = next(i for i, v in enumerate(values) if v is not None and abs(v) > 1e308)
        raise InvalidInputError(
            f"{where(index, spec.name)} is too large for a 64-bit float",
            field=where(index, spec.name),
            error_type="wrong_type",
        ) from None
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.isinf(array) if spec.nullable else ~finite
        if bad.any():
            index = int(np.argmax(bad))
            field = where(index, spec.name)
            allowed = "a finite number or null" if spec.nullable else "a finite number"
            raise InvalidInputError(
                f"{field} is {values[index]!r}; {spec.name} takes {allowed}",
                field=field,
                error_type="not_finite",
            )
    if spec.minimum is not None and spec.maximum is not None:
        outside = int(np.count_nonzero((array < spec.minimum) | (array > spec.maximum)))
        if outside:
            events[(spec.name, "out_of_range")] = outside
    return array


def _types(check: _Check, values: Sequence[Any], where: Where) -> None:
    if set(map(type, values)) <= check.allowed:
        return
    spec = check.spec
    index, value = next((i, v) for i, v in enumerate(values) if type(v) not in check.allowed)
    field = where(index, spec.name)
    if value is None:
        raise InvalidInputError(
            f"{field} is null, but {spec.name} had no missing values in training; send "
            f"{_expected(spec)}",
            field=field,
            error_type="null_value",
        )
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise InvalidInputError(
        f"{field} must be {_expected(spec)}, got {_json_type(value)} {shown}",
        field=field,
        error_type="wrong_type",
    )


def _expected(spec: FeatureSpec) -> str:
    if spec.kind == "numeric":
        return "a number"
    return "true or false" if spec.dtype == "bool" else "a string"


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    names.update({dict: "object", NONE: "null"})
    return names.get(type(value), type(value).__name__)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")

"""The "SQL GROUP BY" baseline, run alone in a fresh process: aggregate the raw log in SQLite.

    python bench/monitoring_kit/sql_groupby.py --db PATH --since EPOCH --until EPOCH
                                               --numeric x0,x1 --categorical c0,c1

Per numeric feature count/avg/min/max with ``json_extract`` over the window's raw records,
grouped by (model, version, variant); then one more pass grouped by every categorical
feature's value, whose counts are added up per feature in Python (one scan, not one per
feature; ~3,000 groups here). What a daily summary computed in the database costs. It yields
no histogram, so no drift verdict: a lower bound of "scan the raw records" monitoring. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

from peak import peak_rss_bytes

WHERE = "WHERE model = ? AND ts >= ? AND ts < ?"


def numeric_query(names: list[str]) -> str:
    parts = []
    for name in names:
        value = f"json_extract(features, '$.{name}')"
        parts.append(f"count({value}), avg({value}), min({value}), max({value})")
    return (
        f"SELECT model, version, variant, count(*), {', '.join(parts)} "
        f"FROM mlkeel_predictions {WHERE} GROUP BY model, version, variant"
    )


def categorical_query(names: list[str]) -> str:
    values = ", ".join(f"json_extract(features, '$.{name}')" for name in names)
    groups = ", ".join(str(i + 1) for i in range(len(names)))
    return f"SELECT {values}, count(*) FROM mlkeel_predictions {WHERE} GROUP BY {groups}"


def marginals(names: list[str], rows: list[tuple[object, ...]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {name: {} for name in names}
    for row in rows:
        n = int(row[-1])  # type: ignore[call-overload]
        for name, value in zip(names, row[:-1], strict=False):
            tally = counts[name]
            tally[str(value)] = tally.get(str(value), 0) + n
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--model", default="bench")
    parser.add_argument("--since", required=True, type=float)
    parser.add_argument("--until", required=True, type=float)
    parser.add_argument("--numeric", required=True)
    parser.add_argument("--categorical", required=True)
    args = parser.parse_args()
    window = (args.model, args.since, args.until)
    connection = sqlite3.connect(args.db)
    started = time.perf_counter()
    numeric = connection.execute(numeric_query(args.numeric.split(",")), window).fetchall()
    numeric_done = time.perf_counter()
    names = args.categorical.split(",")
    categories = marginals(names, connection.execute(categorical_query(names), window).fetchall())
    done = time.perf_counter()
    connection.close()
    print(
        json.dumps(
            {
                "job_s": done - started,
                "numeric_s": numeric_done - started,
                "categorical_s": done - numeric_done,
                "rows": sum(row[3] for row in numeric),
                "categories": categories,
                "sqlite_version": sqlite3.sqlite_version,
                "peak_rss_bytes": peak_rss_bytes(),
            }
        )
    )


if __name__ == "__main__":
    main()

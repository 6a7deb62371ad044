"""The "SQL GROUP BY" baseline, run alone in a fresh process: aggregate the raw log in SQLite.

    python bench/monitoring_kit/sql_groupby.py --db PATH --since EPOCH --until EPOCH
                                               --numeric x0,x1 --categorical c0,c1

Per numeric feature count/avg/min/max with ``json_extract`` over the window's raw records,
grouped by (model, version, variant), then one GROUP BY per categorical feature for its
counts: what a daily summary computed in the database costs. It yields no histogram, so no
drift verdict: it is a lower bound of "scan the raw records" monitoring. Prints one JSON object.
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


def categorical_query(name: str) -> str:
    value = f"json_extract(features, '$.{name}')"
    return f"SELECT {value} AS category, count(*) FROM mlkeel_predictions {WHERE} GROUP BY 1"


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
    categories = {
        name: dict(connection.execute(categorical_query(name), window).fetchall())
        for name in args.categorical.split(",")
    }
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

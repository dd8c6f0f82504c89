"""The distinct values of an indexed column, one index probe per value.

`SELECT DISTINCT function FROM entries` reads every row (a million of them for
a filter's choices); a recursive query that asks the index for the next value
above the last one reads one index entry per distinct value instead (a "loose
index scan", which neither database does by itself).
"""

from __future__ import annotations

from django.db import connection, models


def distinct_values(model: type[models.Model], field_name: str) -> list[str]:
    """Every non-empty value of an indexed text column, in the database's order."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{field_name} is not a column of {model.__name__}")
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(field.column)

    def next_above(value: str) -> str:
        return f"(SELECT {column} FROM {table} WHERE {column} > {value} ORDER BY {column} LIMIT 1)"

    sql = (
        f"WITH RECURSIVE found(value) AS (SELECT {next_above('%s')}"
        f" UNION ALL SELECT {next_above('found.value')} FROM found WHERE found.value IS NOT NULL)"
        " SELECT value FROM found WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [""])
        return [str(value) for (value,) in cursor.fetchall()]

"""`shared.statements.Statement`: values by name in the compiled order, nothing fixed inside."""

import pytest
from sqlalchemy import bindparam, func, literal_column, select

from services.registry.models import ModelVersion
from shared.statements import Statement

VERSIONS = ModelVersion.__table__


def test_values_go_in_the_order_the_statement_takes_them_each_name_once():
    statement = Statement(
        select(VERSIONS.c.id).where(
            VERSIONS.c.model_id == bindparam("model_id", type_=VERSIONS.c.model_id.type),
            VERSIONS.c.version == bindparam("label", type_=VERSIONS.c.version.type),
            VERSIONS.c.model_id != bindparam("model_id", type_=VERSIONS.c.model_id.type),
        )
    )
    assert statement.args({"label": "v1", "model_id": 7, "unused": 0}) == [7, "v1"]
    assert "$1::UUID" in statement.sql and "$2::VARCHAR" in statement.sql
    with pytest.raises(KeyError):
        statement.args({"label": "v1"})


def test_a_python_value_inside_the_statement_is_refused_when_it_is_built():
    # It would be a parameter that no caller knows to pass; a constant is literal SQL.
    with pytest.raises(ValueError, match="fixed"):
        Statement(select(func.coalesce(func.sum(VERSIONS.c.seq), 0)))
    Statement(select(func.coalesce(func.sum(VERSIONS.c.seq), literal_column("0"))))

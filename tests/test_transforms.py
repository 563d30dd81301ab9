"""transformSpec: transforms read the input row, add or replace columns in order, the filter sees the transformed
row; parsing, errors, required columns, and both batch kinds."""

from __future__ import annotations

import pyarrow as pa
import pytest

from druidflow.exceptions import SpecError
from druidflow.transforms import ExpressionTransform, TransformSpec, compile_expression

TABLE = pa.table(
    {
        "__time": pa.array([1_000, 2_000, 3_000], pa.int64()),
        "page": ["Main", "Talk", None],
        "added": [10, 20, 30],
        "deleted": [1, 2, 3],
    }
)


def spec(transforms=(), filter=None) -> TransformSpec:
    data: dict = {"transforms": [{"type": "expression", "name": n, "expression": e} for n, e in transforms]}
    if filter is not None:
        data["filter"] = filter
    return TransformSpec.parse(data, "transformSpec")


def test_new_columns_are_appended_in_order_and_replacements_stay_in_place():
    out = spec([("delta", "added - deleted"), ("page", "upper(page)"), ("kind", "'edit'")]).apply(TABLE)
    assert out.column_names == ["__time", "page", "added", "deleted", "delta", "kind"]
    assert out.column("page").to_pylist() == ["MAIN", "TALK", None]
    assert out.column("delta").to_pylist() == [9, 18, 27]
    assert out.column("kind").to_pylist() == ["edit"] * 3
    assert TABLE.column("page").to_pylist() == ["Main", "Talk", None]  # the input is not modified


def test_transforms_read_the_input_row_not_each_others_outputs():
    # Druid evaluates every transform against the original row (TransformedInputRow); a transform may shadow the
    # field it reads.
    out = spec([("added", "added * 2"), ("total", "added + deleted")]).apply(TABLE)
    assert out.column("added").to_pylist() == [20, 40, 60]
    assert out.column("total").to_pylist() == [11, 22, 33]  # from the input added, not the doubled one


def test_filter_sees_the_transformed_row():
    s = spec([("added", "added * 10")], {"type": "bound", "dimension": "added", "lower": "150", "ordering": "numeric"})
    out = s.apply(TABLE)
    assert s.filter_mask(out).to_pylist() == [False, True, True]  # 100, 200, 300: the transformed values
    assert s.filter_mask(TABLE).to_pylist() == [False, False, False]  # (on the input it would keep nothing)
    kept, thrown_away = s.transform_and_filter(TABLE)
    assert kept.column("added").to_pylist() == [200, 300] and thrown_away == 1
    # filtering on a replaced column uses the new value
    s2 = spec([("page", "lower(page)")], {"type": "selector", "dimension": "page", "value": "main"})
    assert s2.transform_and_filter(TABLE)[0].column("page").to_pylist() == ["main"]


def test_filter_without_transforms_and_nulls_are_thrown_away():
    s = spec(filter={"type": "not", "field": {"type": "selector", "dimension": "page", "value": "Main"}})
    kept, thrown_away = s.transform_and_filter(TABLE)
    assert kept.column("page").to_pylist() == ["Talk"] and thrown_away == 2  # the null page is unknown, not kept
    assert s.apply(TABLE) is TABLE


def test_no_filter_keeps_everything():
    s = spec([("x", "1")])
    assert s.filter_mask(TABLE).to_pylist() == [True] * 3
    assert s.transform_and_filter(TABLE)[1] == 0
    assert TransformSpec().is_empty and TransformSpec().apply(TABLE) is TABLE


def test_a_time_transform_replaces_the_timestamp_keeping_its_type():
    s = spec([("__time", "timestamp_floor(__time, 'PT1S') + 500")])
    assert s.apply(TABLE).column("__time").to_pylist() == [1_500, 2_500, 3_500]
    assert s.apply(TABLE).column("__time").type == pa.int64()
    ts = TABLE.set_column(0, "__time", pa.array([1_000, 2_000, 3_000], pa.timestamp("ms")))
    out = s.apply(ts).column("__time")
    assert out.type == pa.timestamp("ms") and out.cast(pa.int64()).to_pylist() == [1_500, 2_500, 3_500]
    parsed = spec([("__time", "timestamp_parse(concat('2024-01-0', added / 10))")]).apply(TABLE).column("__time")
    assert parsed.to_pylist() == [1704067200000, 1704153600000, 1704240000000]
    as_text = spec([("__time", "concat(added)")]).apply(TABLE).column("__time")
    assert as_text.type == pa.int64() and as_text.to_pylist() == [10, 20, 30]


def test_record_batches_in_record_batches_out_and_chunked_tables():
    batch = TABLE.to_batches()[0]
    out = spec([("x", "added + 1")]).apply(batch)
    assert isinstance(out, pa.RecordBatch) and out.column(4).to_pylist() == [11, 21, 31]
    chunked = pa.concat_tables([TABLE.slice(0, 1), TABLE.slice(1)])
    out = spec([("x", "concat(page, added)")], {"type": "bound", "dimension": "x", "lower": "T"}).transform_and_filter(chunked)
    assert isinstance(out[0], pa.Table) and out[0].column("x").to_pylist() == ["Talk20"] and out[1] == 2


def test_required_columns():
    s = spec(
        [("delta", "added - deleted"), ("p", "upper(page)")],
        {"type": "and", "fields": [{"type": "selector", "dimension": "delta", "value": "9"},
                                   {"type": "selector", "dimension": "namespace", "value": "x"}]},
    )
    # the filter's "delta" is made by a transform, "namespace" comes from the input
    assert s.required_columns == {"added", "deleted", "page", "namespace"}
    assert s.output_columns == ["delta", "p"]
    assert spec([("a", "a + 1")]).required_columns == {"a"}


def test_parses_druid_json_and_dumps_it_back():
    data = {
        "transforms": [{"type": "expression", "name": "fullName", "expression": "concat(first, ' ', last)"}],
        "filter": {"type": "in", "dimension": "country", "values": ["FR", "DE"]},
    }
    s = TransformSpec.parse(data)
    assert s.model_dump() == data
    assert TransformSpec.parse(s.model_dump_json()) == s
    assert TransformSpec.parse({}) == TransformSpec()
    # "type" may be left out of a transform: expression is the only kind
    assert TransformSpec.parse({"transforms": [{"name": "a", "expression": "1"}]}).transforms[0].type == "expression"


@pytest.mark.parametrize(
    "data, path, message",
    [
        ({"transforms": [{"type": "expression", "name": "a", "expression": "1 +"}]}, "transformSpec.transforms[0].expression",
         "unexpected end of expression at position 3"),
        ({"transforms": [{"name": "a", "expression": "lower(x"}]}, "transformSpec.transforms[0].expression", "expected ',' or ')'"),
        ({"transforms": [{"name": "a", "expression": "nope(x)"}]}, "transformSpec.transforms[0].expression", "unknown function 'nope'"),
        ({"transforms": [{"name": "a", "expression": "1"}, {"name": "a", "expression": "2"}]}, "transformSpec.transforms[1].name",
         "used only once"),
        ({"transforms": [{"name": "", "expression": "1"}]}, "transformSpec.transforms[0].name", "at least 1 character"),
        ({"transforms": [{"type": "javascript", "name": "a", "function": "x"}]}, "transformSpec.transforms[0].type", "expression"),
        ({"transforms": [{"name": "a"}]}, "transformSpec.transforms[0].expression", "field required"),
        ({"filter": {"type": "selector"}}, "transformSpec.filter.dimension", "field required"),
        ({"filters": []}, "transformSpec.filters", "unknown field"),
    ],
)
def test_errors_name_the_field_path(data, path, message):
    with pytest.raises(SpecError) as exc:
        TransformSpec.parse(data, "transformSpec")
    assert exc.value.path == path, str(exc.value)
    assert message in str(exc.value)


def test_an_evaluation_error_names_the_transform_expression():
    s = spec([("bad", "page - page")])
    with pytest.raises(SpecError) as exc:
        s.apply(TABLE)
    assert "operator '-' is not supported on two strings" in str(exc.value)
    assert exc.value.value == "page - page"


def test_compile_expression_is_exported_for_aggregators():
    e = compile_expression("added * 2")
    assert e.required_columns == {"added"} and e.evaluate(TABLE).to_pylist() == [20, 40, 60]
    t = ExpressionTransform(name="x", expression="deleted + 1")
    assert t.evaluate(TABLE).to_pylist() == [2, 3, 4]

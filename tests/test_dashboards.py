"""OpenSearch Dashboards saved objects (include/dashboards/*.ndjson) agree with the index contract.

Dashboards would import a broken file without complaint and only fail when someone opens the
panel (a field that does not exist, a `text` field in a terms aggregation, a dangling reference).
So the file is checked offline against what it depends on: every line parses, ids are unique,
every reference resolves to an object in the file, and every field a visualization aggregates
on, a query or filter names, a saved search shows or sorts by, or an index pattern uses as its
time field exists in the shipped index template (`include/index_templates/`) of the index
pattern it reads, with a type that can do the job. Each negative case breaks one thing in a copy
of the shipped objects and expects the validator to name it, so the checks are known to bite.

Not covered here: loading the file into a real Dashboards (no Docker engine on this machine); the
import script is run against a loopback stand-in for Dashboards' `_import` endpoint instead.
"""

from __future__ import annotations

import copy
import fnmatch
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "include" / "dashboards"
TEMPLATE_DIR = REPO / "include" / "index_templates"
IMPORT_SCRIPT = REPO / "include" / "docker" / "dashboards-import.sh"
DEFAULT_PREFIX = "reko"  # REKO_INDEX_PREFIX's default: the titles of the shipped index patterns

# Latest migration version of each type in Dashboards 2.19 (a newer one makes the import fail).
MIGRATION_VERSIONS = {
    "index-pattern": "7.6.0",
    "visualization": "7.10.0",
    "search": "7.9.3",
    "dashboard": "7.9.3",
}
# Attributes each type's saved-object mapping declares (the .kibana index is strict).
ALLOWED_ATTRIBUTES = {
    "index-pattern": {
        "title",
        "timeFieldName",
        "fields",
        "fieldFormatMap",
        "sourceFilters",
        "type",
        "typeMeta",
    },
    "visualization": {
        "title",
        "description",
        "version",
        "uiStateJSON",
        "visState",
        "kibanaSavedObjectMeta",
        "savedSearchRefName",
    },
    "search": {"title", "description", "hits", "version", "columns", "sort", "kibanaSavedObjectMeta"},
    "dashboard": {
        "title",
        "description",
        "hits",
        "version",
        "timeRestore",
        "timeFrom",
        "timeTo",
        "refreshInterval",
        "optionsJSON",
        "panelsJSON",
        "kibanaSavedObjectMeta",
    },
}
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
AGGREGATABLE = {
    "keyword",
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "scaled_float",
    "date",
    "boolean",
}
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
# Aggregation type -> field types it accepts (None: no field).
AGG_FIELD_TYPES: dict[str, set[str] | None] = {
    "count": None,
    "terms": AGGREGATABLE,
    "significant_terms": {"keyword"},
    "cardinality": AGGREGATABLE,
    "histogram": NUMERIC,
    "range": NUMERIC,
    "date_histogram": {"date"},
    "date_range": {"date"},
    "sum": NUMERIC,
    "avg": NUMERIC,
    "median": NUMERIC,
    "percentiles": NUMERIC,
    "min": NUMERIC | {"date"},
    "max": NUMERIC | {"date"},
    "top_hits": AGGREGATABLE,
}
META_FIELDS = {"_id", "_index", "_score", "_source"}


# -- the contract ------------------------------------------------------------------------------


def template_fields(kind: str) -> dict[str, dict[str, Any]]:
    """Every field path of a template's mapping (objects flattened, multi-fields as `a.b`)."""
    template = json.loads((TEMPLATE_DIR / f"{kind}.json").read_text())
    out: dict[str, dict[str, Any]] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            if "properties" in spec:  # an object: only its leaves are fields
                walk(spec["properties"], f"{path}.")
                continue
            out[path] = spec
            for sub, sub_spec in spec.get("fields", {}).items():
                out[f"{path}.{sub}"] = sub_spec

    walk(template["template"]["mappings"]["properties"], "")
    return out


def template_patterns() -> dict[str, str]:
    """Index pattern title (default prefix) -> template kind, from each template's index_patterns."""
    patterns = {}
    for path in sorted(TEMPLATE_DIR.glob("*.json")):
        template = json.loads(path.read_text())
        for pattern in template["index_patterns"]:
            patterns[pattern.replace("{{prefix}}", DEFAULT_PREFIX)] = path.stem
    return patterns


def field_type(spec: dict[str, Any]) -> str:
    return spec.get("type", "object")


def is_aggregatable(spec: dict[str, Any]) -> bool:
    if field_type(spec) == "text":
        return bool(spec.get("fielddata"))
    return field_type(spec) in AGGREGATABLE and spec.get("doc_values", True) is not False


def is_searchable(spec: dict[str, Any]) -> bool:
    return spec.get("index", True) is not False


# -- reading the saved objects -----------------------------------------------------------------


def load_ndjson(path: Path) -> list[dict[str, Any]]:
    """The saved objects of one file; an export's trailing summary line is checked and dropped."""
    objects = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path.name}:{number} is not JSON: {exc}") from exc
        assert isinstance(obj, dict), f"{path.name}:{number} is not a JSON object"
        if "exportedCount" in obj:
            assert obj["exportedCount"] == len(objects), f"{path.name}: export summary miscounts"
            continue
        objects.append(obj)
    return objects


def ndjson_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.ndjson"))


def shipped_objects() -> list[dict[str, Any]]:
    return [obj for path in ndjson_files() for obj in load_ndjson(path)]


# -- the validator -----------------------------------------------------------------------------

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_KQL_FIELD = re.compile(r"(?<![\w.@])([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)")


def kql_fields(query: str) -> set[str]:
    """Field names in a KQL query (`field : value`, `field > n`); quoted values are ignored."""
    return set(_KQL_FIELD.findall(_QUOTED.sub('""', query)))


def filter_fields(filter_: dict[str, Any]) -> set[str]:
    """Fields an app-state filter names: its meta.key and the field of its query clause."""
    fields = set()
    if filter_.get("meta", {}).get("key"):
        fields.add(filter_["meta"]["key"])
    query = filter_.get("query", filter_)
    for clause in ("match_phrase", "match", "term", "terms", "range", "prefix", "wildcard"):
        fields.update(query.get(clause, {}))
    if "exists" in filter_:
        fields.add(filter_["exists"]["field"])
    return fields


class Validator:
    """Collects every problem of a set of saved objects (an empty list means the set is sound)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.problems: list[str] = []
        self.by_key = {(o.get("type"), o.get("id")): o for o in objects}
        self.patterns = template_patterns()
        self.fields = {kind: template_fields(kind) for kind in set(self.patterns.values())}

    def problem(self, obj: dict[str, Any], text: str) -> None:
        self.problems.append(f"{obj.get('type')} {obj.get('id')}: {text}")

    def run(self) -> list[str]:
        ids: dict[str, int] = {}
        for obj in self.objects:
            ids[obj.get("id")] = ids.get(obj.get("id"), 0) + 1
        for oid, count in ids.items():
            if count > 1:
                self.problems.append(f"id {oid!r} is used by {count} objects")
        for obj in self.objects:
            self.check_object(obj)
        return self.problems

    # generic shape

    def check_object(self, obj: dict[str, Any]) -> None:
        otype = obj.get("type")
        if otype not in ALLOWED_ATTRIBUTES:
            self.problem(obj, f"unknown saved object type {otype!r}")
            return
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            self.problem(obj, "has no id")
        if "version" in obj:  # an exported version makes overwrite-imports fail with 409 conflicts
            self.problem(obj, "carries an exported `version`; drop it so _import?overwrite=true works")
        attributes = obj.get("attributes")
        if not isinstance(attributes, dict) or not attributes.get("title"):
            self.problem(obj, "has no attributes.title")
            return
        unknown = set(attributes) - ALLOWED_ATTRIBUTES[otype]
        if unknown:
            self.problem(obj, f"attributes {sorted(unknown)} are not in the {otype} mapping")
        migration = obj.get("migrationVersion", {})
        for mtype, version in migration.items():
            if MIGRATION_VERSIONS.get(mtype) != version:
                self.problem(obj, f"migrationVersion {mtype}={version!r}, Dashboards 2.19 has {mtype}=")
        references = obj.get("references")
        if not isinstance(references, list):
            self.problem(obj, "has no references array")
            return
        names = [r.get("name") for r in references]
        if len(names) != len(set(names)):
            self.problem(obj, f"reference names repeat: {names}")
        for ref in references:
            if (ref.get("type"), ref.get("id")) not in self.by_key:
                self.problem(
                    obj,
                    f"reference {ref.get('name')} -> {ref.get('type')} {ref.get('id')!r} is not in the file",
                )
        getattr(self, "check_" + otype.replace("-", "_"))(obj, attributes)

    def json_attribute(self, obj: dict[str, Any], value: Any, what: str) -> Any:
        if not isinstance(value, str):
            self.problem(obj, f"{what} is not a JSON string")
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            self.problem(obj, f"{what} does not parse: {exc}")
            return None

    # index patterns

    def pattern_kind(self, pattern: dict[str, Any]) -> str | None:
        return self.patterns.get(pattern["attributes"].get("title"))

    def check_index_pattern(self, obj: dict[str, Any], attributes: dict[str, Any]) -> None:
        kind = self.pattern_kind(obj)
        if kind is None:
            self.problem(obj, f"title {attributes['title']!r} matches no shipped index template")
            return
        index = f"{DEFAULT_PREFIX}-{kind}"
        if not fnmatch.fnmatchcase(index, attributes["title"]):
            self.problem(obj, f"title {attributes['title']!r} does not match the index {index}")
        time_field = attributes.get("timeFieldName")
        if time_field:
            spec = self.fields[kind].get(time_field)
            if spec is None or field_type(spec) != "date":
                self.problem(obj, f"timeFieldName {time_field!r} is not a date field of {kind}")
        if "fieldFormatMap" in attributes:
            formats = self.json_attribute(obj, attributes["fieldFormatMap"], "fieldFormatMap") or {}
            for field in formats:
                if field not in self.fields[kind]:
                    self.problem(obj, f"fieldFormatMap names {field!r}, which {kind} does not map")
        if "fields" in attributes:
            listed = self.json_attribute(obj, attributes["fields"], "fields") or []
            for field in listed:
                name = field.get("name")
                if name not in self.fields[kind] and name not in META_FIELDS and not field.get("scripted"):
                    self.problem(obj, f"fields lists {name!r}, which {kind} does not map")

    # searches and visualizations read one index pattern through their search source

    def search_source(
        self, obj: dict[str, Any], attributes: dict[str, Any]
    ) -> tuple[dict | None, str | None]:
        """The parsed search source and the template kind of the index pattern it reads."""
        meta = attributes.get("kibanaSavedObjectMeta", {})
        source = self.json_attribute(obj, meta.get("searchSourceJSON"), "searchSourceJSON")
        if source is None:
            return None, None
        if "index" in source:
            self.problem(obj, "searchSourceJSON names an index id directly; use indexRefName + references")
        refs = {r.get("name"): r for r in obj.get("references", [])}
        kind = None
        ref_name = source.get("indexRefName")
        ref = refs.get(ref_name)
        if ref_name is None or ref is None:
            self.problem(obj, f"searchSourceJSON.indexRefName {ref_name!r} names no reference")
        elif ref.get("type") != "index-pattern":
            self.problem(obj, f"reference {ref_name} is a {ref.get('type')}, not an index-pattern")
        else:
            pattern = self.by_key.get(("index-pattern", ref.get("id")))
            kind = pattern and self.pattern_kind(pattern)
        query = source.get("query", {})
        if kind and query.get("language") == "kuery":
            for field in kql_fields(query.get("query", "")):
                self.check_field(obj, kind, field, "the query", searchable=True)
        for i, filter_ in enumerate(source.get("filter", [])):
            name = filter_.get("meta", {}).get("indexRefName")
            if name is not None and name not in refs:
                self.problem(obj, f"filter[{i}] indexRefName {name!r} names no reference")
            if kind:
                for field in filter_fields(filter_):
                    self.check_field(obj, kind, field, f"filter[{i}]", searchable=True)
        return source, kind

    def check_field(
        self,
        obj: dict[str, Any],
        kind: str,
        field: str,
        where: str,
        *,
        searchable: bool = False,
        aggregatable: bool = False,
        types: set[str] | None = None,
    ) -> None:
        spec = self.fields[kind].get(field)
        if spec is None:
            if field not in META_FIELDS:
                self.problem(obj, f"{where} names {field!r}, which the {kind} template does not map")
            return
        if searchable and not is_searchable(spec):
            self.problem(obj, f"{where} queries {field!r}, which {kind} does not index")
        if aggregatable and not is_aggregatable(spec):
            self.problem(
                obj, f"{where} aggregates on {field!r} ({field_type(spec)}), which is not aggregatable"
            )
        if types is not None and field_type(spec) not in types:
            self.problem(obj, f"{where} needs {sorted(types)} but {field!r} is {field_type(spec)}")

    def check_search(self, obj: dict[str, Any], attributes: dict[str, Any]) -> None:
        _, kind = self.search_source(obj, attributes)
        if not kind:
            return
        for column in attributes.get("columns", []):
            self.check_field(obj, kind, column, "columns")
        for sort in attributes.get("sort", []):
            field = sort[0] if isinstance(sort, list) else sort
            self.check_field(obj, kind, field, "sort", aggregatable=True)

    def check_visualization(self, obj: dict[str, Any], attributes: dict[str, Any]) -> None:
        _, kind = self.search_source(obj, attributes)
        state = self.json_attribute(obj, attributes.get("visState"), "visState")
        if state is None:
            return
        if state.get("title") != attributes["title"]:
            self.problem(obj, "visState.title differs from attributes.title")
        agg_ids = [agg.get("id") for agg in state.get("aggs", [])]
        if len(agg_ids) != len(set(agg_ids)):
            self.problem(obj, f"aggregation ids repeat: {agg_ids}")
        if not kind:
            return
        for agg in state.get("aggs", []):
            atype = agg.get("type")
            if atype not in AGG_FIELD_TYPES:
                self.problem(obj, f"aggregation {agg.get('id')} has an unchecked type {atype!r}")
                continue
            params = agg.get("params", {})
            where = f"aggregation {agg.get('id')} ({atype})"
            types = AGG_FIELD_TYPES[atype]
            if types is None:
                continue
            if "field" not in params:
                self.problem(obj, f"{where} has no field")
                continue
            self.check_field(obj, kind, params["field"], where, aggregatable=True, types=types)
            order_by = params.get("orderBy")
            if (
                atype == "terms"
                and order_by not in (None, "_key", "_count", "custom")
                and order_by not in agg_ids
            ):
                self.problem(obj, f"{where} orders by {order_by!r}, which is no aggregation of this chart")

    # dashboards

    def check_dashboard(self, obj: dict[str, Any], attributes: dict[str, Any]) -> None:
        meta = attributes.get("kibanaSavedObjectMeta", {})
        self.json_attribute(obj, meta.get("searchSourceJSON"), "searchSourceJSON")
        self.json_attribute(obj, attributes.get("optionsJSON", "{}"), "optionsJSON")
        panels = self.json_attribute(obj, attributes.get("panelsJSON"), "panelsJSON")
        if not isinstance(panels, list) or not panels:
            self.problem(obj, "panelsJSON holds no panels")
            return
        refs = {r.get("name"): r for r in obj.get("references", [])}
        used = set()
        indexes = [p.get("panelIndex") for p in panels]
        if len(indexes) != len(set(indexes)):
            self.problem(obj, f"panelIndex values repeat: {indexes}")
        for panel in panels:
            name = panel.get("panelRefName")
            ref = refs.get(name)
            if ref is None:
                self.problem(obj, f"panel {panel.get('panelIndex')} panelRefName {name!r} names no reference")
                continue
            used.add(name)
            if ref.get("type") not in ("visualization", "search"):
                self.problem(obj, f"panel {panel.get('panelIndex')} shows a {ref.get('type')}")
            grid = panel.get("gridData", {})
            if grid.get("i") != panel.get("panelIndex"):
                self.problem(obj, f"panel {panel.get('panelIndex')} gridData.i is {grid.get('i')!r}")
            if not (grid.get("x", -1) >= 0 and grid.get("w", 0) > 0 and grid["x"] + grid["w"] <= 48):
                self.problem(obj, f"panel {panel.get('panelIndex')} does not fit the 48-column grid")
        for name in set(refs) - used:
            self.problem(obj, f"reference {name} is shown by no panel")


def validate(objects: list[dict[str, Any]]) -> list[str]:
    return Validator(objects).run()


# -- the shipped file --------------------------------------------------------------------------


def test_saved_objects_exist_and_parse():
    files = ndjson_files()
    assert [f.name for f in files] == ["reko.ndjson"]
    objects = shipped_objects()
    types = {}
    for obj in objects:
        types.setdefault(obj["type"], []).append(obj["id"])
    patterns = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert {"reko-detections*", "reko-segments*", "reko-passes*", "reko-videos*"} <= patterns
    assert len(types["dashboard"]) == 1
    assert len(types["visualization"]) >= 4


def test_shipped_saved_objects_are_sound():
    assert validate(shipped_objects()) == []


def test_dashboard_shows_what_the_issue_asks_for():
    objects = {o["id"]: o for o in shipped_objects()}
    dashboard = next(o for o in objects.values() if o["type"] == "dashboard")
    shown = [objects[r["id"]] for r in dashboard["references"]]
    aggs = []
    for obj in shown:
        if obj["type"] == "visualization":
            aggs += [
                (a["type"], a["params"].get("field"))
                for a in json.loads(obj["attributes"]["visState"])["aggs"]
            ]
    assert ("histogram", "timestamp_ms") in aggs  # detections over (video) time
    assert ("date_histogram", "processed_at") in aggs  # and over wall-clock time
    assert ("terms", "value_norm") in aggs  # top texts
    assert ("terms", "video_id") in aggs  # per-video counts
    assert ("terms", "number") in aggs  # runner passes by bib
    assert ("sum", "counts.failed_frames") in aggs  # failed frames
    search = [o for o in shown if o["type"] == "search"]
    assert search and "failed_frames.reason" in search[0]["attributes"]["columns"]


def test_template_field_resolution():
    """The validator's view of the templates: objects flattened, multi-fields, types."""
    detections = template_fields("detections")
    assert field_type(detections["value"]) == "text" and not is_aggregatable(detections["value"])
    assert is_aggregatable(detections["value.keyword"])
    assert "bbox.left" in detections and "bbox" not in detections
    assert not is_searchable(detections["frame_uri"])
    videos = template_fields("videos")
    assert field_type(videos["failed_frames.reason"]) == "text"
    assert field_type(videos["processed_at"]) == "date"
    assert template_patterns()["reko-detections*"] == "detections"


def test_kql_field_extraction():
    assert kql_fields('counts.failed_frames > 0 and kind : "text:a > b"') == {"counts.failed_frames", "kind"}
    assert kql_fields("not status:complete or x >= 1") == {"status", "x"}
    assert kql_fields("") == set()


# -- the validator bites: one thing broken in a copy, named in the problems ---------------------


def _first(objects: list[dict], otype: str, pred: Callable[[dict], bool] = lambda o: True) -> dict:
    return next(o for o in objects if o["type"] == otype and pred(o))


def _edit_json(obj: dict, key: str, edit: Callable[[Any], None], *, meta: bool = False) -> None:
    holder = obj["attributes"]["kibanaSavedObjectMeta"] if meta else obj["attributes"]
    value = json.loads(holder[key])
    edit(value)
    holder[key] = json.dumps(value)


def _agg_field(objects: list[dict], field: str) -> None:
    vis = _first(objects, "visualization", lambda o: '"terms"' in o["attributes"]["visState"])
    _edit_json(
        vis,
        "visState",
        lambda s: next(a for a in s["aggs"] if a["type"] == "terms")["params"].update(field=field),
    )


def _set_query(objects: list[dict], query: str) -> None:
    vis = _first(objects, "visualization")
    _edit_json(vis, "searchSourceJSON", lambda s: s["query"].update(query=query), meta=True)


def _filter_field(objects: list[dict]) -> None:
    vis = _first(
        objects,
        "visualization",
        lambda o: (
            '"filter":[{' in o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].replace(" ", "")
        ),
    )
    _edit_json(
        vis,
        "searchSourceJSON",
        lambda s: s["filter"][0]["query"].update(match_phrase={"kinds": "text"}),
        meta=True,
    )


def _dangling_panel(objects: list[dict]) -> None:
    dashboard = _first(objects, "dashboard")
    dashboard["references"][0]["id"] = "reko-no-such-visualization"


def _panel_ref_name(objects: list[dict]) -> None:
    dashboard = _first(objects, "dashboard")
    _edit_json(dashboard, "panelsJSON", lambda panels: panels[0].update(panelRefName="panel_99"))


def _index_ref(objects: list[dict]) -> None:
    vis = _first(objects, "visualization")
    vis["references"][0]["name"] = "something-else"


def _wrong_pattern_type(objects: list[dict]) -> None:
    vis = _first(objects, "visualization")
    vis["references"][0]["type"] = "visualization"


def _duplicate_id(objects: list[dict]) -> None:
    objects.append(copy.deepcopy(_first(objects, "visualization")))


def _title_without_template(objects: list[dict]) -> None:
    _first(objects, "index-pattern")["attributes"]["title"] = "reko-frames*"


def _time_field_not_date(objects: list[dict]) -> None:
    _first(objects, "index-pattern", lambda o: "timeFieldName" in o["attributes"])["attributes"][
        "timeFieldName"
    ] = "duration_ms"


def _search_column(objects: list[dict]) -> None:
    _first(objects, "search")["attributes"]["columns"].append("failed_frames.why")


def _unknown_attribute(objects: list[dict]) -> None:
    _first(objects, "visualization")["attributes"]["panelsJSON"] = "[]"


def _future_migration(objects: list[dict]) -> None:
    _first(objects, "dashboard")["migrationVersion"] = {"dashboard": "8.0.0"}


def _histogram_on_keyword(objects: list[dict]) -> None:
    vis = _first(objects, "visualization", lambda o: '"histogram"' in o["attributes"]["visState"])
    _edit_json(
        vis,
        "visState",
        lambda s: next(a for a in s["aggs"] if a["type"] == "histogram")["params"].update(field="video_id"),
    )


BREAKAGES = {
    "field that does not exist": (lambda o: _agg_field(o, "bib_number"), "'bib_number', which the"),
    "terms on a text field": (lambda o: _agg_field(o, "value"), "'value' (text), which is not aggregatable"),
    "multi-field that does not exist": (lambda o: _agg_field(o, "value.raw"), "'value.raw', which the"),
    "histogram on a keyword": (_histogram_on_keyword, "but 'video_id' is keyword"),
    "query on a missing field": (lambda o: _set_query(o, "confidance > 90"), "the query names 'confidance'"),
    "query on an unindexed field": (lambda o: _set_query(o, 'frame_uri : "x"'), "queries 'frame_uri'"),
    "filter on a missing field": (_filter_field, "filter[0] names 'kinds'"),
    "dangling dashboard reference": (_dangling_panel, "'reko-no-such-visualization' is not in the file"),
    "panel without reference": (_panel_ref_name, "panelRefName 'panel_99' names no reference"),
    "search source without index reference": (_index_ref, "indexRefName"),
    "index reference of the wrong type": (_wrong_pattern_type, "not an index-pattern"),
    "duplicate id": (_duplicate_id, "is used by 2 objects"),
    "index pattern without template": (
        _title_without_template,
        "'reko-frames*' matches no shipped index template",
    ),
    "time field that is not a date": (_time_field_not_date, "timeFieldName 'duration_ms' is not a date"),
    "saved search column that does not exist": (_search_column, "'failed_frames.why'"),
    "attribute the type does not map": (
        _unknown_attribute,
        "['panelsJSON'] are not in the visualization mapping",
    ),
    "migration version from the future": (_future_migration, "migrationVersion dashboard='8.0.0'"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_validator_names_each_breakage(breakage: str):
    objects = copy.deepcopy(shipped_objects())
    breaker, expected = BREAKAGES[breakage]
    breaker(objects)
    problems = validate(objects)
    assert any(expected in p for p in problems), problems


def test_unparseable_line_is_reported(tmp_path: Path):
    broken = tmp_path / "broken.ndjson"
    lines = (DASHBOARDS_DIR / "reko.ndjson").read_text().splitlines()
    lines[2] = lines[2][:-1]  # a truncated object
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError, match="broken.ndjson:3 is not JSON"):
        load_ndjson(broken)


# -- the import script --------------------------------------------------------------------------


def test_import_script_is_valid_sh():
    sh = shutil.which("sh")
    assert sh, "no POSIX sh"
    result = subprocess.run([sh, "-n", str(IMPORT_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


class _FakeDashboards(http.server.BaseHTTPRequestHandler):
    """Answers /api/status and /api/saved_objects/_import like Dashboards, recording uploads."""

    uploads: list[dict[str, Any]]
    answer: Callable[[bytes], dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()  # as Node writes it
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/status":
            self._json(200, {"status": {"overall": {"state": "green"}}})
        else:
            self._json(404, {"statusCode": 404})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.uploads.append(
            {
                "path": self.path,
                "xsrf": self.headers.get("osd-xsrf"),
                "type": self.headers["Content-Type"],
                "body": body,
            }
        )
        self._json(200, self.server.answer(body))


@pytest.fixture
def fake_dashboards() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDashboards)
    server.uploads = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_import(server: http.server.HTTPServer, folder: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the import script (the compose service uses curlimages/curl)")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return subprocess.run(
        ["sh", str(IMPORT_SCRIPT)],
        env={**os.environ, "DASHBOARDS_URL": url, "DASHBOARDS_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_import_script_uploads_every_file(fake_dashboards, tmp_path: Path):
    fake_dashboards.answer = lambda body: {"successCount": body.count(b'"type":'), "success": True}
    shipped = (DASHBOARDS_DIR / "reko.ndjson").read_bytes()
    (tmp_path / "reko.ndjson").write_bytes(shipped)
    (tmp_path / "extra.ndjson").write_bytes(shipped.splitlines(keepends=True)[0])
    (tmp_path / "notes.txt").write_text("not a saved object file")
    result = _run_import(fake_dashboards, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [u["path"] for u in fake_dashboards.uploads] == ["/api/saved_objects/_import?overwrite=true"] * 2
    extra, reko = fake_dashboards.uploads  # the shell glob sorts
    for upload in (extra, reko):
        assert upload["xsrf"] == "true"
        assert upload["type"].startswith("multipart/form-data")
    assert b'filename="reko.ndjson"' in reko["body"] and shipped in reko["body"]
    assert b'filename="extra.ndjson"' in extra["body"]


def test_import_script_fails_when_dashboards_rejects_objects(fake_dashboards, tmp_path: Path):
    fake_dashboards.answer = lambda body: {
        "success": False,
        "successCount": 0,
        "errors": [{"id": "x", "type": "visualization", "error": {"type": "missing_references"}}],
    }
    shutil.copy(DASHBOARDS_DIR / "reko.ndjson", tmp_path / "reko.ndjson")
    result = _run_import(fake_dashboards, tmp_path)
    assert result.returncode == 1
    assert "was not imported cleanly" in result.stderr

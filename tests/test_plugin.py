"""The FiftyOne plugin @clothcurate/review: its operators executed through FiftyOne's own operator
executor (as the App runs them), on a small real CCP dataset in the real database; its
registration, checked by FiftyOne's plugin discovery.

Expected masks and tags are computed here (NumPy, the fix tests' helpers), never by the plugin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.plugins import PLUGIN_NAME, PLUGIN_SOURCE, plugin_link, register
from test_fix import C, _craft_suggestions, _read, _row, _snapshot, fixds, subset  # noqa: F401 (fixtures)

OPERATORS = ["accept_suggestions", "mark_ok", "mark_reject", "undo_correction"]


@pytest.fixture(scope="module")
def plugin():
    """The plugin linked into the session's plugins folder (FIFTYONE_PLUGINS_DIR, set by conftest)."""
    register()
    return PLUGIN_NAME


def _run(uri: str, view, *, selected=None, current=None, **params):
    """Execute an operator as the App does (FiftyOne's executor; input validation included)."""
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN_NAME}/{uri}", ctx={"view": view, "selected": selected or [],
                                                             "current_sample": current, "params": params})


def _ids(ds, keys: list[str]) -> list[str]:
    from fiftyone import ViewField as F

    return ds.match(F("key").is_in(keys)).values("id")


def _tags(ds) -> dict[str, list[str]]:
    ds.reload()
    return dict(zip(*ds.values(["key", "tags"])))


def _triggered(result) -> dict[str, list[dict]]:
    """The App operations the operator triggered: ``{operator: [params, ...]}``."""
    out: dict[str, list[dict]] = {}
    for req in result.executor.to_json()["requests"]:
        out.setdefault(req["operator_uri"], []).append(req["params"])
    return out


def test_registration_is_found_by_fiftyone_and_leaves_other_plugins_alone(tmp_path, monkeypatch):
    import fiftyone as fo
    import fiftyone.plugins as fop
    from fiftyone.operators.registry import OperatorRegistry

    plugins = tmp_path / "plugins"
    mine = plugins / "@me" / "tools"  # a user's own plugin in the same folder
    mine.mkdir(parents=True)
    (mine / "fiftyone.yml").write_text('name: "@me/tools"\n')
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins))
    assert PLUGIN_NAME not in [p.name for p in fop.list_plugins()]

    result = subprocess.run([sys.executable, "-m", "clothcurate.plugins", str(plugins)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    link = plugins / "@clothcurate" / "review"
    assert link.is_symlink() and link.resolve() == PLUGIN_SOURCE
    assert sorted(p.name for p in fop.list_plugins()) == ["@clothcurate/review", "@me/tools"]
    assert (mine / "fiftyone.yml").read_text() == 'name: "@me/tools"\n'
    uris = [op.uri for op in OperatorRegistry().list_operators()]
    assert [f"{PLUGIN_NAME}/{name}" for name in OPERATORS] == sorted(u for u in uris if u.startswith(PLUGIN_NAME))

    # again (make install, then review): the same link; a stale link (an old checkout) is replaced
    assert register(plugins) == link and link.resolve() == PLUGIN_SOURCE
    link.unlink()
    link.symlink_to(tmp_path / "old-checkout", target_is_directory=True)
    assert register(plugins) == link and link.resolve() == PLUGIN_SOURCE
    assert not [p for p in link.parent.iterdir() if p.name.startswith(".")]  # no temporary link left


def test_a_folder_in_the_way_is_refused_and_kept(tmp_path):
    from clothcurate.curation.review import register_plugin

    plugins = tmp_path / "plugins"
    there = plugin_link(plugins)
    there.mkdir(parents=True)
    (there / "notes.txt").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "clothcurate.plugins", str(plugins)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {there} exists and is not clothcurate's link")
    assert (there / "notes.txt").read_text() == "mine" and not there.is_symlink()
    assert register_plugin() is True  # the session's folder takes it


def test_mark_ok_and_reject_set_the_verdict_tags(fixds, plugin):
    before = _tags(fixds)
    assert not any({"ok", "reject"} & set(t) for t in before.values())

    result = _run("mark_reject", fixds.view(), selected=_ids(fixds, ["ccp_0003", "ccp_0004"]))
    tags = _tags(fixds)
    assert [k for k, t in tags.items() if "reject" in t] == ["ccp_0003", "ccp_0004"]
    assert not any("ok" in t for t in tags.values())
    assert result.result["keys"] == ["ccp_0003", "ccp_0004"]
    ops = _triggered(result)
    assert ops["notify"] == [{"message": f"dataset {fixds.name!r}: marked 2 samples 'reject'", "variant": "success"}]
    assert "reload_samples" in ops

    # ok on a rejected sample: one verdict per sample (export would count both as reject)
    result = _run("mark_ok", fixds.view(), selected=_ids(fixds, ["ccp_0004", "ccp_0019"]))
    tags = _tags(fixds)
    assert [k for k, t in tags.items() if "reject" in t] == ["ccp_0003"]
    assert [k for k, t in tags.items() if "ok" in t] == ["ccp_0004", "ccp_0019"]
    assert "(1 were 'reject': ccp_0004)" in result.result["summary"]

    # status counts them as it counts tags made in the App's tagging menu
    from clothcurate.curation.status import dataset_status

    counted = dataset_status(fixds.name)["tags"]
    assert counted.get("reject") == 1 and counted.get("ok") == 2

    # nothing selected, one sample open in the sample viewer: that sample
    result = _run("mark_reject", fixds.view(), current=_ids(fixds, ["ccp_0022"])[0])
    assert result.result["keys"] == ["ccp_0022"]
    assert [k for k, t in _tags(fixds).items() if "reject" in t] == ["ccp_0003", "ccp_0022"]


def test_no_selection_needs_the_confirmation_then_acts_on_the_view(fixds, plugin):
    from fiftyone import ViewField as F
    from fiftyone.operators.executor import ExecutionError

    view = fixds.match(F("key").is_in(["ccp_0019", "ccp_0022"]))
    before = _snapshot(fixds), _tags(fixds)
    for name in OPERATORS:
        with pytest.raises(ExecutionError, match="no sample is selected: select samples in the grid, or confirm"):
            _run(name, view)
    assert (_snapshot(fixds), _tags(fixds)) == before

    result = _run("mark_reject", view, confirm_view=True)
    assert [k for k, t in _tags(fixds).items() if "reject" in t] == ["ccp_0019", "ccp_0022"]
    assert result.result["keys"] == ["ccp_0019", "ccp_0022"]


def test_undo_restores_the_previous_mask_exactly_and_refuses_a_sample_without_history(fixds, plugin):
    from fiftyone.operators.executor import ExecutionError

    from clothcurate.curation.fix import relabel

    r0 = _row(fixds, "ccp_0004")
    png0 = Path(r0["ground_truth.mask_path"]).read_bytes()
    relabel(fixds.name, key="ccp_0004", from_class="coat", to_class="dress")
    fixds.reload()
    assert _row(fixds, "ccp_0004")["corrections"]

    # with a sample that has no history (after the corrected one): an error naming it, and the
    # corrected one is not undone either
    before = _snapshot(fixds)
    with pytest.raises(ExecutionError, match="sample ccp_0019 has no correction to undo"):
        _run("undo_correction", fixds.view(), selected=_ids(fixds, ["ccp_0004", "ccp_0019"]))
    assert _snapshot(fixds) == before

    result = _run("undo_correction", fixds.view(), selected=_ids(fixds, ["ccp_0004"]))
    fixds.reload()
    assert _row(fixds, "ccp_0004") == r0  # fields, ids, paths: as ingested
    assert Path(_row(fixds, "ccp_0004")["ground_truth.mask_path"]).read_bytes() == png0
    assert "ccp_0004: version 2 (relabel) undone; back to the ingested mask" in result.result["summary"]
    assert result.result["keys"] == ["ccp_0004"]

    # now nothing in the view is corrected: the confirmed whole-view undo says so and changes nothing
    before = _snapshot(fixds)
    with pytest.raises(ExecutionError, match="none of these 4 samples has a correction to undo"):
        _run("undo_correction", fixds.view(), confirm_view=True)
    assert _snapshot(fixds) == before


def test_accept_suggestions_matches_the_cli(fixds, plugin):
    from fiftyone.operators.executor import ExecutionError

    from clothcurate.curation.fix import undo

    before = _snapshot(fixds)
    with pytest.raises(ExecutionError, match="has no model suggestions"):  # flag-errors --model not run
        _run("accept_suggestions", fixds.view(), selected=_ids(fixds, ["ccp_0004"]))
    assert _snapshot(fixds) == before

    gt, parts = _craft_suggestions(fixds, "ccp_0004")
    with pytest.raises(ExecutionError, match="min_confidence"):  # the form's range
        _run("accept_suggestions", fixds.view(), selected=_ids(fixds, ["ccp_0004"]), min_confidence=1.5)
    # a selection without suggestions changes nothing
    other = _run("accept_suggestions", fixds.view(), selected=_ids(fixds, ["ccp_0003"]))
    assert other.result["keys"] == [] and "changed 0 samples" in other.result["summary"]

    app = _run("accept_suggestions", fixds.view(), selected=_ids(fixds, ["ccp_0003", "ccp_0004"]),
               min_confidence=0.9)
    assert app.result["keys"] == ["ccp_0004"]
    assert "left alone: 2 suggestion(s) below --min-confidence" in app.result["summary"]
    fixds.reload()
    by_app = _row(fixds, "ccp_0004")
    expected = gt.copy()
    expected[parts["coat"]] = C["dress"]
    np.testing.assert_array_equal(_read(by_app["ground_truth.mask_path"]), expected)
    ops = _triggered(app)
    assert "reload_dataset" in ops and "reload_samples" in ops  # the first correction adds fields

    undo(fixds.name, key="ccp_0004")
    cli = CliRunner().invoke(main, ["fix", "--dataset", fixds.name, "--accept-suggestions", "--min-confidence", "0.9"])
    assert cli.exit_code == 0, cli.output
    fixds.reload()
    by_cli = _row(fixds, "ccp_0004")
    np.testing.assert_array_equal(_read(by_cli["ground_truth.mask_path"]), _read(by_app["ground_truth.mask_path"]))
    volatile = {"at", "version", "mask"}  # when, and the version number (undone numbers are not reused)
    assert [{k: v for k, v in r.items() if k not in volatile} for r in by_cli["corrections"]] == \
        [{k: v for k, v in r.items() if k not in volatile} for r in by_app["corrections"]]
    assert {k: v for k, v in by_cli.items() if k not in ("corrections", "ground_truth.mask_path")} == \
        {k: v for k, v in by_app.items() if k not in ("corrections", "ground_truth.mask_path")}


@pytest.fixture
def flagged(tmp_path, ccp_dir, tmp_home):
    """The fix tests' samples and the background-only CCP 0536 (which flag-errors flags), ingested."""
    import fiftyone as fo

    from ccp_layout import make_ccp_subset
    from clothcurate.curation.ingest import ingest
    from test_fix import IDS

    ingest(ccp=make_ccp_subset(tmp_path / "ccp", ccp_dir, [*IDS, "0536"]), dataset="plugin-flagged",
           progress=False, workers=1)
    ds = fo.load_dataset("plugin-flagged")
    yield ds
    fo.delete_dataset(ds.name)


def test_review_shows_the_findings_on_the_sample(flagged):
    """review (before the App starts): flag-errors' ``issues`` get their element type (written by
    ``set_values`` as an untyped list, which the App shows as a bare name with no value), the
    findings are checked (shown on the tiles) and grouped first in the sidebar, expanded."""
    import fiftyone as fo

    from test_review import _free_port

    from clothcurate.curation.flags import flag_errors
    from clothcurate.curation.review import start

    flag_errors(flagged.name, progress=False, workers=1)
    _craft_suggestions(flagged, "ccp_0004")
    flagged.reload()
    issues = dict(zip(*flagged.values(["key", "issues"])))
    assert any(issues.values())
    described = flagged.get_field("issues").description
    session = start(flagged.name, port=_free_port(), address="127.0.0.1")
    session.close()

    ds = fo.load_dataset(flagged.name)
    ds.reload()
    field = ds.get_field("issues")
    assert isinstance(field, fo.ListField) and isinstance(field.field, fo.StringField)
    assert field.description == described and field.description.startswith("flag-errors reasons: ")
    assert dict(zip(*ds.values(["key", "issues"]))) == issues  # every value kept
    assert not [n for n in ds.get_field_schema() if n.endswith("_tmp")]
    assert ds.app_config.active_fields.paths == ["ground_truth", "label_issues", "person", "issues",
                                                 "label_quality", "label_findings"]
    groups = ds.app_config.sidebar_groups
    assert [g.name for g in groups][:3] == ["tags", "findings", "metadata"]
    assert groups[1].paths == ["issues", "label_quality", "label_findings"] and groups[1].expanded
    assert not any("issues" in g.paths for g in groups[2:])
    # flag-errors again onto the typed field: it stays typed
    flag_errors(flagged.name, progress=False, workers=1)
    ds.reload()
    assert isinstance(ds.get_field("issues").field, fo.StringField)


def test_review_registers_the_plugin_and_the_app_server_runs_it(fixds):
    """The App server (its own process, started by review) lists the four actions in the grid's
    action bar and executes one on a selection, as the browser asks it to."""
    import json
    import urllib.request

    from test_review import _free_port

    from clothcurate.curation.review import start

    link = plugin_link()
    if link.is_symlink():
        link.unlink()  # review makes it
    port = _free_port()
    session = start(fixds.name, port=port, address="127.0.0.1")
    try:
        assert link.is_symlink() and link.resolve() == PLUGIN_SOURCE

        def post(route: str, body: dict) -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{route}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.load(r)

        listed = post("/operators", {"dataset_name": fixds.name})
        ours = {op["uri"]: op for op in listed["operators"] if op["uri"].startswith(PLUGIN_NAME)}
        assert sorted(ours) == [f"{PLUGIN_NAME}/{name}" for name in OPERATORS]
        placed = post("/operators/resolve-placements", {"dataset_name": fixds.name, "view": []})["placements"]
        assert sorted(p["operator_uri"] for p in placed if p["operator_uri"].startswith(PLUGIN_NAME)) == sorted(ours)
        assert {p["placement"]["place"] for p in placed if p["operator_uri"] in ours} == {
            "samples-grid-secondary-actions"}

        done = post("/operators/execute", {"dataset_name": fixds.name, "operator_uri": f"{PLUGIN_NAME}/mark_reject",
                                           "view": [], "selected": _ids(fixds, ["ccp_0022"]), "params": {}})
        assert not done.get("error"), done
        assert done["result"]["keys"] == ["ccp_0022"]
        assert [k for k, t in _tags(fixds).items() if "reject" in t] == ["ccp_0022"]
    finally:
        session.close()

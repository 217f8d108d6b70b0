"""`mcpsim.audit`: replay recorded actions on fresh seeded instances and find the first divergent step."""

import mcpsim
from helpers.serve import server_script


async def test_audit_of_a_deterministic_server_finds_nothing(frozen_lake_server, tmp_path):
    path = tmp_path / "run.jsonl"
    envs = mcpsim.make(frozen_lake_server.mcp, dataset=[{"seed": 21}, {"seed": 22, "config": {"map_size": 6}}])
    recorded = await mcpsim.rollout(envs, mcpsim.RandomPolicy(5), steps=20, record=path)
    report = await mcpsim.audit(path, frozen_lake_server.mcp)
    assert report.ok, report.summary()
    assert report.episodes == 2
    assert report.steps_checked == sum(len(t.steps) for t in recorded)


async def test_audit_names_the_first_step_where_a_server_stops_being_deterministic(serve_factory, tmp_path):
    serve = serve_factory("--server", f"python {server_script('drifting.py')}")
    path = tmp_path / "run.jsonl"
    rows = [
        {"id": "early", "seed": 1, "config": {"drift_at": 3}},
        {"id": "late", "seed": 2, "config": {"drift_at": 5}},
        {"id": "never", "seed": 3, "config": {"drift_at": 100}},
    ]
    await mcpsim.rollout(mcpsim.make(serve.mcp, dataset=rows), mcpsim.RandomPolicy(2), steps=6, record=path)
    report = await mcpsim.audit(path, serve.mcp)
    assert not report.ok
    assert [(d.env_id, d.step, d.field) for d in report.divergences] == [
        ("early", 3, "observation"),
        ("late", 5, "observation"),
    ]
    early = report.divergences[0]
    assert "weather" in early.expected and "weather" in early.actual and early.expected != early.actual
    assert "early (seed 1): step 3: observation differs" in report.summary()


async def test_audit_against_a_server_that_is_not_there_reports_the_error(frozen_lake_server, tmp_path):
    path = tmp_path / "run.jsonl"
    await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), mcpsim.RandomPolicy(), steps=3, record=path)
    report = await mcpsim.audit(path, "http://127.0.0.1:9/mcp")
    (divergence,) = report.divergences
    assert divergence.step == 0 and divergence.field == "error"
    assert "cannot open an MCP session" in divergence.actual

"""Shared fixtures: real `mcpsim serve` processes (with the leak check at teardown); helpers live in `helpers/`."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER_PORT_SPAN = 4000
"""Ports each pytest-xdist worker owns above MCPSIM_TEST_PORT_BASE (the tests' fixed offsets stay below 2,000, the
conformance runner's and the bench's `--port-base` test's below 4,000), so two workers never bind the same fixed
port. Set before `helpers` is imported, and in the environment, so that subprocesses (the conformance runner) see
the worker's own base too. With the default base 12000, `make test`'s three workers own 12000-23999: below the
kernel's ephemeral ports (32768 on), above mcpsim's default `--port-range` 10000-11000, and below Ray Client's
specific-server ports 23000-23999 but for gw2's top 1,000 (only `make stress`, on two workers, runs Ray Client)."""

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    _base = int(os.environ.get("MCPSIM_TEST_PORT_BASE", "12000"))
    os.environ["MCPSIM_TEST_PORT_BASE"] = str(_base + WORKER_PORT_SPAN * int(_worker[2:]))

from helpers.serve import ServeProcess, start_serve, survivors  # noqa: E402


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator:
    """Start `mcpsim serve` processes; at teardown stop them and assert nothing they started survives."""
    started: list[ServeProcess] = []

    def factory(*args: str, **kwargs) -> ServeProcess:
        serve = start_serve(tmp_path, *args, **kwargs)
        started.append(serve)
        return serve

    yield factory
    for serve in started:
        serve.stop()
        left = survivors(serve.seen_descendants)
        assert not left, f"processes left behind by mcpsim serve: {left}\n{serve.log()[-3000:]}"


@pytest.fixture(scope="module")
def frozen_lake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One shared FrozenLake `mcpsim serve` (stdio backend, fork server for quick starts) for the many tests that
    need nothing special; plain spawns are covered by the toolbox tests and the transports matrix."""
    serve = start_serve(tmp_path_factory.mktemp("serve"), "--env", "frozen_lake", "--fork-server")
    yield serve
    serve.stop()
    left = survivors(serve.seen_descendants)
    assert not left, f"processes left behind: {left}"


FIRST_VARIANT_ONLY = {
    "tests/ray/test_ray.py::test_a_front_joins_by_auto_or_ray_client",
    "tests/server/test_conformance_2026.py::test_every_scenario_green_alone_is_green_through_mcpsim",
    "tests/sandbox/test_same_trajectories.py::test_same_seeded_trajectories_with_and_without_the_sandbox",
    "tests/sandbox/test_backends.py::test_http_and_sse_backends_give_the_same_trajectories_sandboxed",
    "tests/stress/test_load.py::test_load_and_churn_leave_nothing_behind",
    "tests/sandbox/test_backends.py::test_a_sandboxed_http_backend_reaches_nothing_but_what_its_level_allows",
    "tests/sandbox/test_limits.py::test_each_attack_ends_only_its_instance_with_the_limit_named",
    "tests/proc/test_descendants.py::test_stopping_serve_ends_every_daemon",
    "tests/proc/test_descendants.py::test_daemons_end_with_their_session_and_at_a_crash",
    "tests/branching/test_branching.py::test_copies_continue_like_unbranched_runs_and_the_source_is_undisturbed",
    "tests/sandbox/test_backends.py::test_forked_sandboxed_http_and_sse_backends_match_spawned_ones",
    "tests/ray/test_ray.py::test_a_killed_front",
    "tests/proc/test_fork_server.py::test_every_shipped_env_gives_the_same_episodes_forked_and_spawned",
    "tests/envs/test_envs.py::test_same_seed_and_actions_give_identical_observations_and_rewards",
    "tests/envs/test_eras.py::test_a_shipped_env_plays_the_same_in_both_eras",
    "tests/server/test_modern.py::test_serve_stdio_speaks_the_revision_of_its_clients_first_message",
    "tests/stress/test_hostile_starts.py::test_each_client_gets_the_protocol_version_it_asked_for",
    "tests/server/test_js_frozen_lake.py::test_a_2026_client_plays_the_handshake_only_server_through_translation",
    "tests/proc/test_shutdown.py::test_stopping_serve_leaves_no_process_behind",
    "tests/proc/test_fork_server.py::test_a_forked_instance_is_in_its_tracking_group_from_birth_or_moved_there",
    "tests/server/test_transports.py::test_all_front_back_pairs_give_the_same_trajectory",
}
"""Parametrized tests whose variants repeat one feature: `make test` runs the first variant, `make stress` all of
them (marker `long`), so that `make test` stays under its 20-minute budget on a slow 2-core CI machine."""
LONG_ONLY = {
    "tests/cli/test_bench.py::test_bench_compare_writes_every_field",
    "tests/cli/test_bench.py::test_bench_matrix_covers_every_front_backend_pair",
    "tests/sandbox/test_modes.py::test_a_venv_isolated_server_runs_sandboxed_with_its_venv_read_only",
    "tests/client/test_transports.py::test_streamable_http_sse_and_stdio_give_the_same_episodes",
    "tests/isolation/test_isolation.py::test_envs_check_gc_and_rm_act_and_verify",
    "tests/client/test_audit.py::test_audit_names_the_first_step_where_a_server_stops_being_deterministic",
    "tests/stress/test_hostile.py::test_fuzzed_messages_on_the_sse_front",
    "tests/server/test_sessions.py::test_thirty_two_concurrent_sessions_twenty_steps_then_nothing_left",
    "tests/branching/test_branching.py::test_replay_for_server_everything",
    "tests/pool/test_failures.py::test_chatty_backend_survives_500_calls_of_1_mb_stderr",
    "tests/server/test_conformance.py::test_json_response_mode_fails_only_what_the_sdk_server_itself_fails",
}
"""Tests `make stress` runs and `make test` does not: each repeats at length what a quicker test in `make test`
already covers (the bench's tiny `--protocol` and `--rollout` runs, the server-side transport matrix, the replay
and audit round trip, the stress load test, the other fuzz fronts)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `long` what only `make stress` runs (FIRST_VARIANT_ONLY beyond its first variant, LONG_ONLY)."""
    seen: set[str] = set()
    for item in items:
        function = item.nodeid.split("[")[0]
        if function in LONG_ONLY or (function in FIRST_VARIANT_ONLY and function in seen):
            item.add_marker(pytest.mark.long)
        seen.add(function)

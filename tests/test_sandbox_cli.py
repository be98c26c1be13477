"""The sandbox and the runbook agree: one state directory (`--state-dir` in both), the runbook's runs
against a sandbox recorded where `sandbox up` clears them, `sandbox down && sandbox up` on the same port,
and the former spelling `--dir` hidden but working. Real sandbox processes on free ports of 127.0.0.1."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ACCOUNTS, free_port

from fleetform.sandbox import server
from fleetform.scripts.main import cli
from fleetform.scripts.upgrade import cli as upgrade_cli


def fleetform(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _time_wait_on(port: int) -> bool:
    """A socket of 127.0.0.1:port in TIME_WAIT (state 06 in /proc/net/tcp)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True  # not Linux: cannot look; the test below still runs `up` again
    local = f"0100007F:{port:04X}"
    return any(line.split()[1] == local and line.split()[3] == "06" for line in lines)


def test_runbook_records_sandbox_runs_in_the_sandbox_state_dir(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "elsewhere" / "sandbox"  # not the default: the runbook must learn it from the sandbox
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        up = fleetform("sandbox", "up", "--port", port, "--state-dir", state, "--config", EXAMPLE_ACCOUNTS,
                       "--output", "json")
        assert up.exit_code == 0, up.output
        record = json.loads(up.stdout)
        assert record["state_dir"] == str(state.resolve()) and record["runs"] == str(state.resolve() / "upgrades")
        assert server.runs_dir(endpoint) == str(state.resolve() / "upgrades")
        shift = CliRunner().invoke(upgrade_cli, [
            "shift", "main", "--account", "prod", "--config", str(EXAMPLE_ACCOUNTS), "--steps", "100", "--bake", "0",
            "--yes", "--endpoint-url", endpoint, "--output", "json"])
        assert shift.exit_code in (0, 1), shift.output  # 1: the gates saw no traffic on green yet (paused)
        assert (state / "upgrades" / "prod-main.json").is_file() and (state / "upgrades" / "audit.jsonl").is_file()
        assert not (work / ".fleetform").exists()
        status = CliRunner().invoke(upgrade_cli, [
            "status", "main", "--account", "prod", "--config", str(EXAMPLE_ACCOUNTS), "--endpoint-url", endpoint,
            "--output", "json"])
        assert status.exit_code == 0 and json.loads(status.stdout)["actual_weights"]["green"] == 100, status.output

        # a client still connected when the sandbox stops: the server closes first, its port is in TIME_WAIT
        keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        keep_alive.request("GET", server.INFO_PATH)
        assert json.loads(keep_alive.getresponse().read())["state_dir"] == str(state.resolve())
        assert (state / "credentials").is_file()
        assert fleetform("sandbox", "down", "--state-dir", state).exit_code == 0
        assert not (state / "credentials").exists()  # the keys died with the sandbox
        keep_alive.close()
        assert _time_wait_on(port), "the test needs the stopped sandbox's port in TIME_WAIT"
        again = fleetform("sandbox", "up", "--port", port, "--state-dir", state, "--config", EXAMPLE_ACCOUNTS)
        assert again.exit_code == 0, again.output  # SO_REUSEADDR: not "port in use"
        assert not (state / "upgrades").exists()  # the last sandbox's runs went with it
        assert f"recorded in {state.resolve() / 'upgrades'}" in again.stdout
    finally:
        fleetform("sandbox", "down", "--state-dir", state)


def test_runs_against_another_loopback_server_go_to_the_default_sandbox_dir(moto_endpoint: str) -> None:
    assert server.runs_dir(moto_endpoint) == server.SANDBOX_STATE_DIR
    assert server.runs_dir(f"http://127.0.0.1:{free_port()}", timeout=0.5) == server.SANDBOX_STATE_DIR


@pytest.mark.parametrize("command", ["up", "down", "status", "alarm"])
def test_sandbox_says_state_dir_and_hides_its_former_name(command: str) -> None:
    result = fleetform("sandbox", command, "--help")
    assert result.exit_code == 0 and "--state-dir" in result.stdout
    assert "--dir " not in result.stdout and "--dir," not in result.stdout


def test_former_dir_option_still_works_with_a_note(tmp_path: Path) -> None:
    old = fleetform("sandbox", "status", "--dir", tmp_path / "sandbox", "--output", "json")
    assert old.exit_code == 1 and json.loads(old.stdout) == {"running": False}
    assert "--dir is now --state-dir" in old.stderr
    stopped = fleetform("sandbox", "down", "--dir", tmp_path / "sandbox")
    assert stopped.exit_code == 0 and stopped.stdout.strip() == "no sandbox running"
    both = fleetform("sandbox", "status", "--dir", tmp_path / "a", "--state-dir", tmp_path / "b")
    assert both.exit_code == 2 and "former name of --state-dir" in both.stderr and "Traceback" not in both.output


def test_every_endpoint_url_help_names_the_sandbox_port() -> None:
    """--endpoint-url's help (every command that has one) names the sandbox's real port."""
    import click

    from fleetform.scripts.upgrade import cli as upgrade_group

    seen = 0
    for root in (cli, upgrade_group):
        stack: list[click.Command] = [root]
        while stack:
            command = stack.pop()
            if isinstance(command, click.Group):  # lazy groups import their commands through get_command
                ctx = click.Context(command)
                stack += [command.get_command(ctx, name) for name in command.list_commands(ctx)]
                continue
            for param in command.params:
                if "--endpoint-url" in getattr(param, "opts", ()):
                    seen += 1
                    assert f":{server.DEFAULT_PORT}" in (param.help or ""), command.name
                    assert ":5000" not in (param.help or "")
    assert seen >= 20  # preflight, bastion, bootstrap, plan, apply, drift, ..., every cluster-upgrade phase

"""`prepare` and the YAML edits of `retire`: comments and layout kept, diff printed, exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade.yamledit import remove_slot


def prepare(config: Path, *args: str):
    return CliRunner().invoke(upgrade_cli.cli, ["prepare", *args, "--config", str(config)])


def test_prepare_adds_the_green_slot_keeping_comments_and_layout(accounts_copy: Path) -> None:
    stg = accounts_copy / "stg.yaml"
    before = stg.read_text()
    result = prepare(accounts_copy, "main", "--account", "stg", "--to", "1.36")
    assert result.exit_code == 0, result.output
    after = stg.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ['      green: {version: "1.36"}']
    assert after.replace('      green: {version: "1.36"}\n', "") == before  # nothing else moved
    assert after.index("blue:") < after.index("green:") < after.index("node_groups:")
    assert "+      green: {version: \"1.36\"}" in result.stdout and "next: commit" in result.stdout
    assert load_config(accounts_copy).account("stg").spec.clusters["main"].slots["green"].version == "1.36"
    again = prepare(accounts_copy, "main", "--account", "stg", "--to", "1.36", "--output", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["changed"] is False


def test_prepare_refuses_bad_targets_with_exit_2(accounts_copy: Path) -> None:
    stg = accounts_copy / "stg.yaml"
    before = stg.read_text()
    for args, message in ((["--to", "1.37"], "1 or 2 minor"), (["--to", "1.34"], "1 or 2 minor"),
                          (["--to", "latest"], "like 1.36")):
        result = prepare(accounts_copy, "main", "--account", "stg", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert prepare(accounts_copy, "main", "--account", "prod", "--to", "1.35").exit_code == 2  # green is at 1.36
    assert prepare(accounts_copy, "nope", "--to", "1.35").exit_code == 2
    assert prepare(accounts_copy, "main", "--to", "1.35").exit_code == 2  # main exists in several accounts
    assert stg.read_text() == before


def test_remove_slot_keeps_the_rest(accounts_copy: Path) -> None:
    prod = accounts_copy / "prod.yaml"
    before = prod.read_text()
    diff = remove_slot(prod, "main", "blue")
    after = prod.read_text()
    assert '-      blue: {version: "1.34"}' in diff
    assert [line for line in before.splitlines() if line not in after.splitlines()] == [
        '      blue: {version: "1.34"}']
    assert "# Production" in after and "# weighted records per slot" in after
    assert list(load_config(accounts_copy).account("prod").spec.clusters["main"].slots) == ["green"]

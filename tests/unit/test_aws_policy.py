"""docs/aws.md's minimal IAM policy grants every AWS action the code calls, on the resources it calls them on.

A policy that misses one fails mid-migration with AccessDenied (the code stops cleanly, but late); the
action names come from the ``self.call("service:Action", ...)`` labels every AWS request goes through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _policy() -> dict[str, object]:
    text = (ROOT / "docs" / "aws.md").read_text()
    block = re.search(r"## Minimal IAM policy.*?```json\n(.*?)```", text, re.S)
    assert block, "docs/aws.md has no JSON policy under 'Minimal IAM policy'"
    policy: dict[str, object] = json.loads(block.group(1))
    return policy


def _statements() -> list[dict[str, object]]:
    statements = _policy()["Statement"]
    assert isinstance(statements, list)
    return statements


def _as_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _called_actions() -> set[str]:
    actions: set[str] = set()
    for path in (ROOT / "migrator").rglob("*.py"):
        actions |= set(re.findall(r"\"((?:rds|route53|cloudwatch):[A-Za-z]+)\"", path.read_text()))
    return actions


def test_the_policy_grants_every_action_the_code_calls() -> None:
    granted = {action for s in _statements() for action in _as_list(s["Action"])}
    called = _called_actions()
    assert "rds:DescribeDBParameters" in called  # the scan itself works
    assert called - granted == set(), f"docs/aws.md's policy lacks {sorted(called - granted)}"


def test_describe_instances_covers_every_instance() -> None:
    # Freezing the source's parameter group is refused when another instance uses it, which needs
    # DescribeDBInstances over all instances of the account and region, not only the two we own.
    resources = {
        r
        for s in _statements()
        if "rds:DescribeDBInstances" in _as_list(s["Action"])
        for r in _as_list(s["Resource"])
    }
    assert "arn:aws:rds:REGION:ACCOUNT:db:*" in resources, resources


def test_the_parameter_group_actions_cover_the_source_group() -> None:
    for action in ("rds:ModifyDBParameterGroup", "rds:DescribeDBParameters", "rds:ResetDBParameterGroup"):
        resources = {
            r for s in _statements() if action in _as_list(s["Action"]) for r in _as_list(s["Resource"])
        }
        assert "arn:aws:rds:REGION:ACCOUNT:pg:SOURCE_PG" in resources, (action, resources)

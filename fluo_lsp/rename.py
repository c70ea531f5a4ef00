"""Renaming a rule id: where it is defined, and where the test files that load its rule file expect it.

A rule id is named nowhere else: rules do not name each other. The test files are those `references` finds
(`rule:` entries and `only:` lists of the test files that load the rule's file, `Workspace.loads`).
"""

from __future__ import annotations

import re

from fluo_lang import api
from fluo_lsp.testfiles import Name
from fluo_run.testing.update import flow_yaml

_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REQUEST_FAILED = -32803
"""LSP's RequestFailed: the request was valid, and the server cannot do it (a name that cannot be the new id)."""


def unfit_id(name: str) -> str | None:
    """Why `name` cannot be a rule id, as the parser says it (`my-rule`: write `my_rule`); None if it can."""
    if not name:
        return "a rule id cannot be empty"
    analysis = api.analyze([("rename.fluo", f"rule {name} {{ expect true }}\n")])
    if _ID.fullmatch(name) and [r.rule.id for r in analysis.rules] == [name] and not analysis.diagnostics:
        return None
    if _ID.fullmatch(name):
        return f"`{name}` cannot be a rule id: it is a keyword"
    said = next((d.message for d in analysis.diagnostics if "rule id" in d.message), None)  # with its fix
    return f"`{name}` cannot be a rule id: " + (said or "an id starts with a letter or `_`, then letters, digits, `_`")


def yaml_edit(text: str, name: Name, new_id: str) -> str:
    """What takes the place of `name` in a test file's text: the new id as written inside the quotes that hold
    the old one, else as YAML reads it back (`'yes'`, not `yes`, which is a bool)."""
    quoted = name.start > 0 and text[name.start - 1 : name.start] in ("'", '"')
    if quoted and text[name.end : name.end + 1] == text[name.start - 1]:
        return new_id  # a rule id has no quote or backslash to escape
    return flow_yaml(new_id)

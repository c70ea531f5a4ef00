"""The server's settings, section `fluo`, as the VS Code extension and other clients send them.

- `fluo.attributeKeys` (string[], default []): attribute keys to complete besides those
  found in the workspace's trace files.
- `fluo.strictness` ("default" | "strict"): `strict` reports warnings as errors.
- `fluo.diagnostics.debounceMs` (number from 0 to 10,000, default 150): how long to wait after a change
  before checking, so typing is not slowed by checks nobody sees.
- `fluo.completion.ruleSkeletons` (boolean, default true): offer rule skeletons where a
  rule may start. A client with templates of its own turns them off (the VS Code
  extension ships them as snippets, which would otherwise show twice).

They arrive in `initializationOptions` (either the section itself or `{"fluo": {...}}`)
and in `workspace/didChangeConfiguration` (or, when that carries none, the server pulls
the section); each change is the whole section, merged into the `initializationOptions`
ones, not into the last change. Values of the wrong type are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SECTION = "fluo"


@dataclass(frozen=True, slots=True)
class Settings:
    attribute_keys: tuple[str, ...] = ()
    strict: bool = False
    debounce_ms: float = 150.0
    rule_skeletons: bool = True

    def merged(self, raw: Any) -> Settings:
        """These settings updated from a client's JSON; unknown or ill-typed values are left out."""
        if not isinstance(raw, dict):
            return self
        if isinstance(raw.get(SECTION), dict):
            raw = raw[SECTION]
        keys = raw.get("attributeKeys")
        strictness = raw.get("strictness")
        diagnostics = raw.get("diagnostics")
        debounce = diagnostics.get("debounceMs") if isinstance(diagnostics, dict) else None
        completion = raw.get("completion")
        skeletons = completion.get("ruleSkeletons") if isinstance(completion, dict) else None
        return Settings(
            attribute_keys=tuple(k for k in keys if isinstance(k, str) and k)
            if isinstance(keys, list)
            else self.attribute_keys,
            strict=strictness == "strict" if strictness in ("default", "strict") else self.strict,
            debounce_ms=float(debounce)
            if isinstance(debounce, int | float) and not isinstance(debounce, bool) and 0 <= debounce <= 10_000
            else self.debounce_ms,
            rule_skeletons=skeletons if isinstance(skeletons, bool) else self.rule_skeletons,
        )

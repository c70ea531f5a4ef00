"""Paths shared by tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "examples" / "rules"
EXAMPLE_TRACES = sorted((ROOT / "examples" / "traces").glob("*.json*"))

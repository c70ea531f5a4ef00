"""`fluo test`: rule tests in YAML, run through the same compiled program as every other path.

A test file names rule files and cases; each case gives traces (OTLP files or
the compact inline form of `inline.py`) and the signals it expects. The
modules are the stages of one run: `document` reads YAML keeping line numbers,
`spec` turns it into checked test files, `runner` evaluates cases and matches
signals (`matching`), and `report` renders the results as text, JSON or JUnit.
"""

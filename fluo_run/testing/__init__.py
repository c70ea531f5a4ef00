"""`fluo test`: rule tests in YAML, run through the same compiled program as every other path.

A test file names rule files and cases; each case gives traces (OTLP files or
the compact inline form of `inline`) and the signals it expects. The modules
are the stages of one run: `document` reads YAML keeping line numbers, `spec`
finds test files and turns them into checked cases, `runner` evaluates cases
and pairs their signals with the expectations (`matching`), and `report`
renders the results as text, JSON or JUnit XML. `update` writes observed
signals back into a file, `coverage` counts the rules cases ran and made fire,
`progress` and `watch` serve long and repeated runs, and `cli` is the command.
"""

"""FLUO rule test runner, OTLP runtime and command line."""

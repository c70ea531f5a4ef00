"""FLUO language server."""

"""The OJALA-style transformer foundation model (DESIGN.md item 3)."""

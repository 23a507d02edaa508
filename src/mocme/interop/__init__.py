"""Bridges to other knowledge graph libraries (optional dependencies, imported on use)."""

"""Piper voices: the catalog, installing and removing them, and switching between them live."""

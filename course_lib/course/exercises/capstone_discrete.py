"""Placeholder: the discrete project check (being written)."""
PROJECT = ()

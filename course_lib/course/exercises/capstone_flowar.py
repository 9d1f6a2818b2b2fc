"""Placeholder: the flowar project check (being written)."""
PROJECT = ()

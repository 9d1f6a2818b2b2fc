"""Placeholder: the tarflow project check (being written)."""
PROJECT = ()

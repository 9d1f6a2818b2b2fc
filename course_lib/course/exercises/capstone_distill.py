"""Placeholder: the distill project check (being written)."""
PROJECT = ()

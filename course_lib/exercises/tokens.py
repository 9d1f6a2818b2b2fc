"""Exercises of notebook 02-03 (tokens); see course_lib.homework for the mechanism."""

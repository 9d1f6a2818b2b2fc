"""Exercises of notebook 01 (pixels and samples); see course_lib.homework for the mechanism."""

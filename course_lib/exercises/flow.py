"""Exercises of notebook 08 (flow matching in 2-D); see course_lib.homework for the mechanism."""

"""course_lib: the shared library of the Two World Lines course.

One module per idea of the course; notebooks import what earlier notebooks built.
"""
__version__ = "0.1.0"

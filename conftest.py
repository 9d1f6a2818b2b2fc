"""pytest set-up shared by the unit tests and nbval: every notebook runs in quick mode (unless
COURSE_TEST_MODE says otherwise), widgets draw their static view, plots go to a non-GUI backend."""
import os

os.environ["COURSE_MODE"] = os.environ.get("COURSE_TEST_MODE", "quick")
os.environ["COURSE_STATIC"] = "1"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

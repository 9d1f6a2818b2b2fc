"""What a page of the course site runs in the browser, from the site's own folder: a site opened from
disk, with no network, still typesets its formulas, and no request leaves the machine.

nbconvert's lab template loads MathJax 2.7 and require.js from a CDN. The site's template
(``site_page.html.j2`` beside this module) extends it: MathJax comes from ``mathjax/`` in the site,
and require.js, the widget manager and mermaid.js, which the pages do not use (widgets are drawn in
their static view; no notebook has a mermaid diagram), are left out.

MathJax's files come from the ``jupyter-server-mathjax`` package (the Jupyter project's package of
MathJax's files, made to serve them from a Jupyter server; it needs only ``jupyter-server``, which
JupyterLab already installs). It ships MathJax 2.7.9, the version the template's MathJax configuration is
written for, with its ``TeX-AMS-MML_HTMLorMML-full`` configuration, the HTML-CSS output and the
STIX-Web fonts. :data:`FILES` names what a page can load: the core, that configuration, the
extensions TeX macros load on demand, the HTML-CSS output's font data and fonts. Left out, loaded
only when a reader asks for them in MathJax's right-click menu: the menu's translations (2.1 MB;
MathJax speaks English unless the reader picks another language there) and the accessibility
explorer with its speech rules (3.6 MB).
"""
from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

FOLDER = "mathjax"                                     # under the site's folder
CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
URL = f"{FOLDER}/MathJax.js?config={CONFIG}"           # relative to a page of the site
TEMPLATE = Path(__file__).with_name("site_page.html.j2")
FILES = ("LICENSE", "MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "config/Safe.js",
         "extensions/*.js", "extensions/TeX/*.js", "extensions/HTML-CSS/*.js",
         "extensions/a11y/accessibility-menu.js",
         "jax/element/**/*.js", "jax/input/TeX/*.js", "jax/output/HTML-CSS/**/*.js",
         "fonts/HTML-CSS/STIX-Web/woff/**/*.woff")


def mathjax_source() -> Path:
    """The folder of MathJax's files installed by ``jupyter-server-mathjax``."""
    try:
        from jupyter_server_mathjax.app import STATIC_ASSETS_PATH
    except ImportError as e:
        raise RuntimeError("the course site bundles MathJax from the jupyter-server-mathjax package, which "
                           "is not installed: pip install -e . (or pip install jupyter-server-mathjax)") from e
    root = Path(STATIC_ASSETS_PATH)
    if not (root / "MathJax.js").is_file():
        raise RuntimeError(f"jupyter-server-mathjax has no MathJax.js in {root}: reinstall it")
    return root


def bundle_mathjax(site: Path | str) -> list[Path]:
    """Copy MathJax's files (:data:`FILES`) into ``<site>/mathjax``; returns the files copied
    (a file already there with the same content is kept)."""
    root, dest = mathjax_source(), Path(site) / FOLDER
    copied = []
    for pattern in FILES:
        files = [p for p in sorted(root.glob(pattern)) if p.is_file()]
        if not files:
            raise RuntimeError(f"jupyter-server-mathjax in {root} has no {pattern}: reinstall it")
        for src in files:
            dst = dest / src.relative_to(root)
            if dst.is_file() and filecmp.cmp(src, dst):            # already there, the same
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            copied.append(dst)
    return copied


def exporter_options() -> dict:
    """Keyword arguments for nbconvert's ``HTMLExporter``: the site's template, MathJax from the site."""
    return {"template_name": "lab", "template_file": str(TEMPLATE), "mathjax_url": URL}

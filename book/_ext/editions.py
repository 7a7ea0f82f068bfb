"""The course's language editions: one source (the English notebooks and pages), one site.

As a Sphinx extension (``_config.yml``, ``sphinx.local_extensions``) it

* puts a switch at the top of every page that opens the same page in the other edition, and
  ``<link rel="alternate" hreflang=...>`` tags for the same pages;
* in a translated edition, takes the site's own strings that live in ``_config.yml`` (title,
  search box, footer) from the catalog ``locales/<lang>/LC_MESSAGES/site.po``;
* in a translated edition, puts translated display equations on the page as they stand (Sphinx's
  own translation step turned each one into a bare "::" on a MyST page; :func:`translate_verbatim`);
* when the gettext builder runs, writes those strings to ``site.pot`` beside the pages' catalogs,
  and lists which messages are display equations (``display-maths.json``, for :func:`check`);
* extracts each figure's alt text (a notebook cell's ``mystnb: image: alt:`` metadata) into its
  page's catalog even though the extraction executes nothing, so a translated edition's figures
  carry translated alt text (:func:`figure_alt_texts`; Sphinx's own translation step puts it on the
  image);
* in a translated edition, lets a translated paragraph's ``{glue:text}`` roles find the notebook's
  glued values (:func:`_retrieve_glue_data`);
* renders the "Show code cell source" toggles of hidden cells without myst-nb's fixed English
  ``aria-label``, so the name a screen reader announces is the visible, translated label
  (:func:`visit_hidden_cell`), and makes the bibliography's entries list items
  (:func:`list_item_citations`); ``templates/`` does the same for the theme's search and
  colour-mode buttons. ``make site-check`` audits every page with axe-core.

As a script (the Makefile's ``book``, ``book-check`` and ``translate`` targets call it)::

    python book/_ext/editions.py build zh_CN [--strict]   # the edition in _build/html/zh_CN/
    python book/_ext/editions.py gettext [--out DIR]      # extract the English messages (.pot)
    python book/_ext/editions.py update                   # gettext, then sphinx-intl update, then check
    python book/_ext/editions.py check [--pot DIR]        # untranslated, fuzzy or damaged messages

Jupyter Book 1's command line cannot pass ``-D language=``, so ``build`` calls the function behind
``jupyter-book build``, ``jupyter_book.sphinx.build_sphinx``, with the same ``_config.yml`` and a
language override: the two editions cannot drift apart in configuration. The translated edition
reuses the English build's execution cache and refuses to build when a notebook is not in it, so
the notebooks are executed once.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "locales"
BUILD = ROOT / "_build"
# Each edition's place relative to the English site's root, and how its switch names it
# (a language is named in itself, as language menus do).
EDITIONS = {"en": ("", "English"), "zh_CN": ("zh_CN/", "中文")}
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}
SITE_CATALOG = "site"
# Written by the gettext build beside the .pot files: {page: [the messages that are display equations]}.
DISPLAY_MATHS = "display-maths.json"


# --------------------------------------------------------------------------- catalogs
def read_catalog(path):
    """A .po or .pot file as a babel Catalog."""
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


# Labels of the theme and of Sphinx that a reader sees, beside those in the themes' own catalogs
# (read by theme_labels): the book theme's header buttons, which it translates without a catalog
# entry, and Sphinx's heading links. (The sidebar toggles' tooltips, hard-coded in the theme, are
# made translatable by templates/; the gettext builder puts them in sphinx.po.)
EXTRA_LABELS = (
    "Launch on", "Launch interactive content", "Live Code", "Launch Thebe", "Repository",
    "Source repositories", "Show source", "Suggest edit", "Open issue", "Link to this heading",
)
# The site's own strings that come from the configuration rather than from a page: Sphinx settings,
# and options of the theme. The gettext builder extracts them into site.pot; a translated edition
# replaces them with site.po's translations.
SITE_CONFIG = ("html_title", "author", "nb_code_prompt_show", "nb_code_prompt_hide")
SITE_THEME_OPTIONS = ("search_bar_text", "extra_footer")


def site_strings(config):
    """The site's own strings that come from _config.yml rather than from a page."""
    opts = config.html_theme_options or {}
    strings = [config[k] for k in SITE_CONFIG] + [opts.get(k, "") for k in SITE_THEME_OPTIONS]
    return [s for s in strings if s]


def theme_labels():
    """(label, where it comes from) for every label of the themes a page can show."""
    import pydata_sphinx_theme
    import sphinx_book_theme

    found = {}
    pydata = Path(pydata_sphinx_theme.__file__).parent / "locale" / "sphinx.pot"
    book = next((Path(sphinx_book_theme.__file__).parent / "theme").rglob("booktheme.po"), None)
    for path, name in ((pydata, "pydata-sphinx-theme"), (book, "sphinx-book-theme")):
        if path is not None and path.exists():
            for m in read_catalog(path):
                if m.id and isinstance(m.id, str):
                    found.setdefault(m.id, name)
    for label in EXTRA_LABELS:
        found.setdefault(label, "book/_ext/editions.py")
    return sorted(found.items())


def site_translations(language):
    """msgid -> msgstr from site.po, translated and not fuzzy entries only."""
    path = LOCALES / language / "LC_MESSAGES" / f"{SITE_CATALOG}.po"
    if not path.exists():
        return {}
    return {m.id: m.string for m in read_catalog(path) if m.id and m.string and not m.fuzzy}


# --------------------------------------------------------------------------- Sphinx extension
def _language(config):
    lang = config.language or "en"
    return "en" if lang.startswith("en") else lang


def _config_inited(app, config):
    lang = _language(config)
    if lang not in EDITIONS:
        raise RuntimeError(
            f"editions: no edition for language {lang!r}; known: {', '.join(EDITIONS)}. "
            "Add it to EDITIONS in book/_ext/editions.py.")
    opts = dict(config.html_theme_options or {})
    # the switch sits before the theme's own buttons in the header of every page; templates/ also
    # holds the sidebar toggles with translatable tooltips, so it goes before the themes' components
    templates = str(Path(__file__).parent / "templates")
    if templates not in config.templates_path:
        config.templates_path = [templates, *config.templates_path]
    opts.setdefault("article_header_end", ["edition-switch.html", "article-header-buttons.html"])
    static = str(Path(__file__).parent / "static")
    if static not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, static]
    if lang != "en":
        tr = site_translations(lang)
        for key in SITE_CONFIG:
            if config[key] in tr:
                config[key] = tr[config[key]]
        for key in SITE_THEME_OPTIONS:
            if opts.get(key) in tr:
                opts[key] = tr[opts[key]]
        _install_theme_labels(app, tr)
    config.html_theme_options = opts
    _setup_search(app, config, lang)


class _Labels:
    """A gettext translator: our catalog's labels first, then the one it replaces."""

    def __init__(self, labels, fallback):
        self.labels, self.fallback = labels, fallback

    def gettext(self, message):
        return self.labels.get(message) or self.fallback.gettext(message)

    def ngettext(self, singular, plural, n):
        if n == 1 and singular in self.labels:
            return self.labels[singular]
        return self.fallback.ngettext(singular, plural, n)

    def __getattr__(self, name):  # info(), charset(), ... of the translator it wraps
        return getattr(self.fallback, name)


def _install_theme_labels(app, tr):
    """Put site.po's theme labels in front of Sphinx's and the themes' own translations."""
    from sphinx import locale

    for key in [("general", "sphinx"), ("general", "booktheme")]:
        old = locale.translators.get(key) or locale.NullTranslations()
        locale.translators[key] = _Labels(tr, old)
    app.translator = locale.translators[("general", "sphinx")]


def other_editions(pagename, language):
    """[(language, label, relative href)] of the same page in every other edition.

    An edition counts when it has catalogs (a copy of the book without locales/, such as
    ``make book-student``'s, has English only and no switch).
    """
    here_prefix, _ = EDITIONS[language]
    up = "../" * pagename.count("/") + "../" * here_prefix.count("/")
    return [(lang, label, f"{up}{prefix}{pagename}.html")
            for lang, (prefix, label) in EDITIONS.items()
            if lang != language and (lang == "en" or (LOCALES / lang).is_dir())]


def _page_context(app, pagename, templatename, context, doctree):
    lang = _language(app.config)
    others = other_editions(pagename, lang)
    context["edition_switch"] = [
        {"lang": HTML_LANG[o], "label": label, "href": href} for o, label, href in others]
    tags = "".join(
        f'<link rel="alternate" hreflang="{HTML_LANG[o]}" href="{html.escape(href)}" />\n'
        for o, _, href in others)
    context["metatags"] = context.get("metatags", "") + tags


def _write_site_pot(app, exception):
    if exception is not None or app.builder.name != "gettext":
        return
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    cat = Catalog(project=app.config.project, charset="utf-8")
    for s in site_strings(app.config):
        cat.add(s, locations=[("_config.yml", 0)])
    for label, origin in theme_labels():
        if label not in cat:
            cat.add(label, auto_comments=[f"a label of the site's theme ({origin})"])
    with open(Path(app.outdir) / f"{SITE_CATALOG}.pot", "wb") as f:
        write_po(f, cat, width=0, omit_header=False)


def display_maths_messages(doctree):
    """The messages of ``doctree``'s display equations (``math_block`` nodes), in page order."""
    from docutils import nodes
    from sphinx.util.nodes import extract_messages

    return [msg for node, msg in extract_messages(doctree) if isinstance(node, nodes.math_block)]


def _write_display_maths(app, exception):
    """Beside the .pot files, list which messages are display equations (DISPLAY_MATHS, read by check)."""
    if exception is not None or app.builder.name != "gettext":
        return
    from sphinx.util.i18n import docname_to_domain

    found = {}
    for docname in sorted(app.env.found_docs):
        msgs = display_maths_messages(app.env.get_doctree(docname))
        if msgs:
            found[docname_to_domain(docname, app.config.gettext_compact)] = msgs
    text = json.dumps(found, ensure_ascii=False, indent=1)
    (Path(app.outdir) / DISPLAY_MATHS).write_text(text + "\n", encoding="utf-8")


def _translating(app):
    """Whether this build translates pages (a translated edition, not the gettext extraction)."""
    return _language(app.config) != "en" and app.builder.name != "gettext"


def _page_catalog(app, docname):
    """The gettext translator of ``docname``'s catalog (``locales/<lang>/LC_MESSAGES/<page>.mo``)."""
    from sphinx import locale
    from sphinx.util.i18n import docname_to_domain

    domain = docname_to_domain(docname, app.config.gettext_compact)
    dirs = [str(Path(app.srcdir) / d) for d in app.config.locale_dirs]
    return locale.init(dirs, app.config.language, domain)[0]


def translate_verbatim(document, catalog):
    """Put the translations of ``document``'s display maths (and other verbatim blocks) in place.

    Returns how many blocks it translated. A display equation's message is its TeX, and its
    translation (the words inside ``\\text{...}`` in Chinese) must be taken as it stands. Sphinx's
    own translation step (``sphinx.transforms.i18n.Locale``) instead wraps such a msgstr as
    reStructuredText, ``"::"`` and an indented block, and parses it with the page's parser; MyST
    reads that ``::`` as a paragraph, so every translated equation became ``\\[::\\]``, a bare
    "::" on the page. The block is marked translated and no longer translatable, so that step then
    leaves it alone.
    """
    from docutils import nodes
    from sphinx.util.nodes import LITERAL_TYPE_NODES, extract_messages

    done = 0
    for node, msg in list(extract_messages(document)):
        if not isinstance(node, LITERAL_TYPE_NODES):
            continue
        msgstr = catalog.gettext(msg)
        if not msgstr.strip() or msgstr == msg:
            continue
        node[:] = [nodes.Text(msgstr)]
        node.rawsource = msgstr
        node["translated"] = True
        node["translatable"] = False
        done += 1
    return done


class TranslateVerbatim(SphinxTransform):
    """Runs :func:`translate_verbatim` on each page just before Sphinx's ``Locale`` transform (20)."""

    default_priority = 19

    def apply(self, **kwargs):
        if _translating(self.app):
            translate_verbatim(self.document, _page_catalog(self.app, self.env.docname))


# myst-nb keeps a notebook's glued values on the page's document (``document["nb_renderer"]``) while
# it parses the page. Sphinx's ``Locale`` transform then parses each translated paragraph as a small
# document of its own, which has none, so every glue role in a translated paragraph failed ("No key
# ... found in glue data for this document") and the Chinese page lost the number. The roles of the
# English paragraph, parsed first, note the page's renderer (in the environment's per-page
# ``temp_data``, cleared after each page); the translated paragraph's roles are given it.
_GLUE_RENDERER = "editions_nb_renderer"


def _retrieve_glue_data(document, key):
    """myst-nb's ``retrieve_glue_data``, falling back to the page's renderer in a translated paragraph."""
    from myst_nb.ext.glue.utils import retrieve_glue_data

    env = getattr(document.settings, "env", None)
    if env is not None:
        if "nb_renderer" in document:
            env.temp_data[_GLUE_RENDERER] = document["nb_renderer"]
        elif _GLUE_RENDERER in env.temp_data:
            document["nb_renderer"] = env.temp_data[_GLUE_RENDERER]
            try:
                return retrieve_glue_data(document, key)
            finally:  # the paragraph's nodes join the page, which is pickled: no renderer left on it
                del document["nb_renderer"]
    return retrieve_glue_data(document, key)


def _install_glue_fallback():
    """Point myst-nb's glue roles and directives at :func:`_retrieve_glue_data` (which calls myst-nb's own,
    still in ``myst_nb.ext.glue.utils``)."""
    from myst_nb.ext.glue import directives, roles

    roles.retrieve_glue_data = directives.retrieve_glue_data = _retrieve_glue_data


def _translate_toc_captions(app, doctree):
    """Translate the table of contents' part captions (Start here, Chapters, ...).

    sphinx-external-toc adds the toctrees after Sphinx's own translation step, so their captions
    would stay English; the gettext builder does extract them, into the root page's catalog.
    """
    if not _translating(app):
        return
    from sphinx import addnodes

    toctrees = list(doctree.findall(addnodes.toctree))
    if not any(t.get("caption") for t in toctrees):
        return
    catalog = _page_catalog(app, app.env.docname)
    for toctree in toctrees:
        if toctree.get("caption"):
            toctree["caption"] = catalog.gettext(toctree["caption"])
            toctree["rawcaption"] = toctree["caption"]


# --------------------------------------------------------------------------- Chinese search
# Sphinx indexes Chinese with jieba's word segmentation, but splits a reader's query only at spaces
# and punctuation, so a query such as 困惑度 or 语言模型的困惑度 finds nothing unless it happens to
# be one indexed word. The query splitter below segments runs of Chinese characters by longest match
# against the index's own words (single characters are never indexed, so they are dropped), and the
# glossary's Chinese terms are added to jieba's dictionary so that they are indexed whole.
_ZH_SPLITTER = r"""
var splitQuery = (query) => {
  const index = (typeof Search !== "undefined" && Search._index) || {terms: {}, titleterms: {}};
  const known = (w) => w in index.terms || w in index.titleterms;
  const out = [];
  for (const part of query.split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu)) {
    for (const run of part.match(/\p{Script=Han}+|[^\p{Script=Han}]+/gu) || []) {
      if (!/\p{Script=Han}/u.test(run)) { out.push(run); continue; }
      for (let i = 0; i < run.length;) {
        let j = Math.min(run.length, i + 8);
        while (j > i + 1 && !known(run.slice(i, j))) j--;
        if (j > i + 1) out.push(run.slice(i, j));
        i = j;
      }
    }
  }
  return out;
};
"""


_HAN = re.compile(r"[\u3400-\u9fff]")


def glossary_terms_zh():
    """The glossary's Chinese terms (its term lines read 'English · 中文')."""
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    words = set()
    for line in text.splitlines():
        if " · " in line and not line.startswith((" ", "#")):
            zh = line.split(" · ", 1)[1]
            for w in re.split(r"[（）()、，,\s]+", zh):
                if _HAN.search(w) and len(w) > 1:
                    words.add(w)
    return sorted(words)


def _search_language():
    from sphinx.search.zh import SearchChinese

    class SearchChineseQuery(SearchChinese):
        js_splitter_code = _ZH_SPLITTER

    return SearchChineseQuery


def _setup_search(app, config, lang):
    if not lang.startswith("zh"):
        return
    words = BUILD / f"search-words-{lang}.txt"
    words.parent.mkdir(parents=True, exist_ok=True)
    words.write_text("".join(f"{w} 100000\n" for w in glossary_terms_zh()), encoding="utf-8")
    config.html_search_options = {**(config.html_search_options or {}), "dict": str(words)}
    app.add_search_language(_search_language())


# --------------------------------------------------------------------------- accessibility
def figure_alt_texts(doctree):
    """``(cell, alt)`` for each notebook code cell whose metadata gives its figures alt text.

    The alt text is the cell's ``mystnb: {image: {alt: ...}}`` metadata, which myst-nb puts on every
    image the cell outputs (``<img alt="...">``).
    """
    from docutils import nodes

    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        meta = cell.get("cell_metadata") or {}
        alt = ((meta.get("mystnb") or {}).get("image") or {}).get("alt")
        if isinstance(alt, str) and alt.strip():
            yield cell, alt


def _extract_figure_alt_texts(app, doctree, docname):
    """In the gettext build, give each figure's alt text to the page's catalog.

    The extraction executes no notebook, so the cells have no image for Sphinx to extract the alt
    text from; a stand-in image node per cell (read only by the gettext builder) carries it. A
    translated build executes (or reuses) the notebooks, and Sphinx's ``Locale`` step translates
    the real images' alt text from the same message.
    """
    if app.builder.name != "gettext":
        return
    from uuid import uuid4

    from docutils import nodes

    for cell, alt in figure_alt_texts(doctree):
        if any(img.get("alt") == alt for img in cell.findall(nodes.image)):
            continue  # an executed notebook: its image already carries the text
        image = nodes.image(uri="", alt=alt)
        image.source, image.line = cell.source or doctree.get("source"), cell.line
        image.uid = uuid4().hex  # the gettext builder skips nodes without one
        cell += image


def visit_hidden_cell(self, node):
    """myst-nb's ``HideCodeCellNode`` visitor, less its summary's ``aria-label``.

    myst-nb labels every toggle's ``<summary>`` "Toggle hidden content", which is not the visible
    text ("Show code cell source", translated in the Chinese edition): WCAG 2.1's "Label in Name"
    (2.5.3; axe-core's ``label-content-name-mismatch``), and English on a Chinese page. Without the
    attribute the summary's accessible name is its visible text, and ``<details>`` tells a screen
    reader whether it is open.
    """
    classes = " ".join(node["classes"])
    self.body.append(f'<details class="admonition hide {classes}">\n')
    self.body.append("<summary>\n")
    self.body.append(f'<p class="collapsed admonition-title">{html.escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{html.escape(node["prompt_hide"])}</p>\n')
    self.body.append("</summary>\n")


def list_item_citations(body):
    """``body`` (a page's HTML) with each bibliography entry a list item of its list.

    docutils writes the bibliography as ``<div role="list">`` holding ``<div role="doc-biblioentry">``
    entries: a role that DPUB-ARIA 1.1 deprecated, and not the list item a list must hold (axe-core:
    ``aria-deprecated-role``, ``aria-required-children``). ``role="listitem"`` is what it replaced.
    """
    return body.replace('role="doc-biblioentry"', 'role="listitem"')


def _accessible_page(app, pagename, templatename, context, doctree):
    if isinstance(context.get("body"), str):
        context["body"] = list_item_citations(context["body"])


def _replace_hidden_cell_visitor(app):
    from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput

    app.setup_extension("myst_nb")  # registers the node first; ours then replaces its visitor
    app.add_node(HideCodeCellNode, override=True, html=(visit_hidden_cell, depart_HideCellInput))


def setup(app):
    app.add_css_file("editions.css")
    _replace_hidden_cell_visitor(app)
    app.connect("doctree-resolved", _extract_figure_alt_texts)
    app.connect("html-page-context", _accessible_page)
    app.connect("config-inited", _config_inited)
    app.add_transform(TranslateVerbatim)
    _install_glue_fallback()
    app.connect("doctree-read", _translate_toc_captions)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _write_site_pot)
    app.connect("build-finished", _write_display_maths)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --------------------------------------------------------------------------- checks
_DISPLAY = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$", re.S)
_MATH = re.compile(r"(?<!\\)\$\$?(.+?)(?<!\\)\$\$?", re.S)
_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_ROLE = re.compile(r"\{([a-z:]+)\}`([^`]+)`")
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
_LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>\s]+)>|href=\"([^\"]+)\"")
_TEXT_CMD = re.compile(r"\\text\s*\{")
_TEX_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\S")


def tex_outside_text(tex):
    r"""The TeX tokens of a formula without its words: every ``\text{...}`` left out.

    What a translated formula must keep. A translation may reword the words inside ``\text{}``,
    or add such a group where its word order needs one (``\text{仅当 } E < L \text{ 时存在}`` for
    "\text{which exists only if } E < L"); the rest must be the same TeX tokens (control words,
    escaped characters, other characters; spaces between them do not count).
    """
    out, i = [], 0
    while (m := _TEXT_CMD.search(tex, i)):
        depth, j = 1, m.end()
        while j < len(tex) and depth:
            if tex[j] == "\\":
                j += 2
                continue
            depth += {"{": 1, "}": -1}.get(tex[j], 0)
            j += 1
        out.append(tex[i:m.start()])
        i = j
    out.append(tex[i:])
    return _TEX_TOKEN.findall(" ".join(out))


def markup(text):
    """What a translation must keep: inline maths, display maths ($$...$$, but for the words in
    ``\\text{}``: :func:`tex_outside_text`), code, roles, link targets, %(name)s placeholders."""
    roles = Counter(f"{{{r}}}`{t}`" for r, t in _ROLE.findall(text))
    stripped = _ROLE.sub(" ", text)
    return {
        "maths": Counter(m.strip() for m in _MATH.findall(_DISPLAY.sub(" ", stripped))),
        "display maths": Counter(" ".join(tex_outside_text(m)) for m in _DISPLAY.findall(stripped)),
        "code": Counter(c for _, c in _CODE.findall(_MATH.sub(" ", stripped))),
        "roles": roles,
        "links": Counter(next(g for g in m if g) for m in _LINK.findall(text)),
        "placeholders": Counter(_PLACEHOLDER.findall(text)),
    }


def message_problems(msgid, msgstr, fuzzy, display=False):
    """Why a catalog entry is not a usable translation ([] when it is).

    ``display``: the message is a display equation (its whole text is TeX), whose translation must
    be the same TeX but for the words inside ``\\text{...}`` (:func:`tex_outside_text`).
    """
    if not msgstr.strip():
        return ["untranslated"]
    problems = ["fuzzy"] if fuzzy else []
    if display:
        problems += _formula_problems(msgid, msgstr)
    want, got = markup(msgid), markup(msgstr)
    for kind in want:
        missing, extra = want[kind] - got[kind], got[kind] - want[kind]
        if missing or extra:
            problems.append(f"{kind} differ from the English (missing {sorted(missing)}, "
                            f"added {sorted(extra)})")
    return problems


def _formula_problems(msgid, msgstr):
    """[a sentence naming where a translated display equation's TeX first differs] or []."""
    want, got = tex_outside_text(msgid), tex_outside_text(msgstr)
    if want == got:
        return []
    at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    span = slice(max(0, at - 4), at + 4)

    def show(tokens):  # a space only where TeX needs one, after a control word
        return "".join(t + " " if re.fullmatch(r"\\[A-Za-z]+", t) else t for t in tokens).strip()

    return ["display equation's TeX differs from the English outside \\text{...}: "
            f"English '{show(want[span])}', translation '{show(got[span])}'"]


def read_display_maths(pot_dir):
    """{page: set of messages that are display equations}, from the gettext build's DISPLAY_MATHS."""
    path = Path(pot_dir) / DISPLAY_MATHS
    if not path.exists():
        raise FileNotFoundError(f"no {DISPLAY_MATHS} beside the .pot files in {pot_dir}: "
                                "extract them again with `editions.py gettext`")
    return {page: set(msgs) for page, msgs in json.loads(path.read_text(encoding="utf-8")).items()}


def check(pot_dir, language="zh_CN"):
    """[(page, msgid, problem)] for every extracted message without a good translation."""
    pot_dir = Path(pot_dir)
    pots = sorted(pot_dir.rglob("*.pot"))
    if not pots:
        raise FileNotFoundError(f"no .pot files under {pot_dir}: run `editions.py gettext` first")
    display = read_display_maths(pot_dir)
    out = []
    for pot in pots:
        page = pot.relative_to(pot_dir).with_suffix("")
        po = LOCALES / language / "LC_MESSAGES" / page.with_suffix(".po")
        entries = {}
        if po.exists():
            entries = {m.id: m for m in read_catalog(po) if m.id}
        for m in read_catalog(pot):
            if not m.id:
                continue
            e = entries.get(m.id)
            if e is None:
                out.append((str(page), m.id, f"missing from {po.relative_to(ROOT)} (run make translate)"))
                continue
            for p in message_problems(m.id, e.string, e.fuzzy, m.id in display.get(str(page), ())):
                out.append((str(page), m.id, p))
    return out


def report(problems, limit=None):
    lines = []
    for page, msgid, problem in problems[:limit]:
        short = msgid if len(msgid) <= 160 else msgid[:157] + "..."
        lines.append(f"{page}: {problem}: {short!r}")
    if limit is not None and len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------- builds
def _cached_notebooks_missing(cache_path):
    """Chapter notebooks whose current code has no execution in the jupyter cache."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(cache_path)
    missing = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            missing.append(path.name)
    return missing


def build(builder, outdir, language="en", strict=False, overrides=None):
    from jupyter_book.sphinx import build_sphinx

    conf = {"language": language, "latex_individualpages": False, **(overrides or {})}
    if strict:
        conf["nitpicky"] = True
    result = build_sphinx(
        ROOT, Path(outdir), noconfig=True, path_config=ROOT / "_config.yml", confoverrides=conf,
        doctreedir=BUILD / f".doctrees-{builder}-{language}", builder=builder,
        warningiserror=strict, keep_going=strict)
    if result != 0:
        raise SystemExit(f"editions: the {builder} build ({language}) failed: {result}")


def build_edition(language, strict=False):
    if language not in EDITIONS or language == "en":
        raise SystemExit(f"editions: no translated edition {language!r}; known: "
                         f"{', '.join(k for k in EDITIONS if k != 'en')}")
    cache = BUILD / ".jupyter_cache"
    missing = _cached_notebooks_missing(cache) if cache.exists() else ["(no cache at all)"]
    if missing:
        raise SystemExit(
            "editions: the translated edition reuses the English build's executed notebooks, and "
            f"these have none in {cache.relative_to(ROOT)}: {', '.join(missing)}. "
            "Run `jupyter-book build .` (make book) first.")
    build("html", BUILD / "html" / EDITIONS[language][0], language, strict,
          {"nb_execution_mode": "cache", "nb_execution_cache_path": str(cache)})


def gettext(outdir):
    build("gettext", outdir, "en", overrides={"nb_execution_mode": "off"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build a translated edition into _build/html/<lang>/")
    b.add_argument("language")
    b.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    g = sub.add_parser("gettext", help="extract the English messages into .pot files")
    g.add_argument("--out", default=str(BUILD / "gettext"))
    u = sub.add_parser("update", help="extract, update the catalogs, list what needs translating")
    u.add_argument("--language", default="zh_CN")
    c = sub.add_parser("check", help="list untranslated, fuzzy or damaged messages; exit 1 if any")
    c.add_argument("--pot", default=str(BUILD / "gettext"))
    c.add_argument("--language", default="zh_CN")
    c.add_argument("--page", action="append", help="only these pages, e.g. notebooks/03_attention")
    args = ap.parse_args(argv)

    if args.cmd == "build":
        build_edition(args.language, args.strict)
    elif args.cmd == "gettext":
        gettext(args.out)
    elif args.cmd == "update":
        pot = BUILD / "gettext"
        gettext(pot)
        subprocess.run([sys.executable, "-m", "sphinx_intl", "update", "-p", str(pot),
                        "-d", str(LOCALES), "-l", args.language, "-w", "0"], check=True)
        problems = check(pot, args.language)
        print(report(problems) or "All messages are translated.")
        print(f"{len(problems)} message(s) need translating in locales/{args.language}/LC_MESSAGES/.")
    elif args.cmd == "check":
        problems = check(args.pot, args.language)
        if args.page:
            problems = [p for p in problems if p[0] in args.page]
        if problems:
            print(report(problems))
            raise SystemExit(f"{len(problems)} message(s) untranslated, fuzzy or damaged")
        print("All messages are translated.")


if __name__ == "__main__":
    main()

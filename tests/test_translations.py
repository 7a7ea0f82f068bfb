"""The Chinese edition's catalogs (locales/zh_CN/LC_MESSAGES) against the English source.

``test_every_message_is_translated`` extracts the English messages afresh (Sphinx's gettext builder,
about ten seconds, nothing executed) and fails when any of them has no translation, a fuzzy one, or
one whose maths, code, roles or link targets differ from the English, printing the page and the
string. A display equation's translation must be the same TeX but for the words inside
``\\text{...}``. After editing English prose, ``make translate`` updates the catalogs and lists the
same.

The tiny builds below show the translated edition's display equations reaching the page
(``editions.TranslateVerbatim``) and what they became without it (``\\[::\\]``).
"""
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("editions", ROOT / "book" / "_ext" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
sys.modules["editions"] = editions
_spec.loader.exec_module(editions)


def _po(path, entries, fuzzy=()):
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    cat = Catalog(locale="zh_CN")
    for msgid, msgstr in entries.items():
        cat.add(msgid, msgstr, flags=["fuzzy"] if msgid in fuzzy else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        write_po(f, cat, width=0)


def test_markup_finds_maths_code_roles_and_links():
    m = editions.markup(r"Costs $6ND$ FLOPs, see `train()` and {cite:p}`kaplan2020scaling`, "
                        r"or [the docs](https://example.org) and $$L = E$$.")
    assert set(m["maths"]) == {"6ND"}
    assert set(m["display maths"]) == {"L = E"}
    assert set(m["code"]) == {"train()"}
    assert set(m["roles"]) == {"{cite:p}`kaplan2020scaling`"}
    assert set(m["links"]) == {"https://example.org"}


@pytest.mark.parametrize("msgstr, fuzzy, expect", [
    ("", False, ["untranslated"]),
    ("训练 $D$ 个词元，调用 `train()`。", False, []),
    ("训练 $D$ 个词元，调用 `train()`。", True, ["fuzzy"]),
    ("训练 D 个词元，调用 `train()`。", False, ["maths"]),
    ("训练 $D$ 个词元，调用 train()。", False, ["code"]),
])
def test_message_problems(msgstr, fuzzy, expect):
    found = editions.message_problems("Train on $D$ tokens with `train()`.", msgstr, fuzzy)
    assert [p.split(" ")[0] for p in found] == expect


def test_link_targets_and_roles_must_survive():
    en = "See [How to use](how-to-use.md) and {cite:t}`hoffmann2022training`."
    assert editions.message_problems(en, "见[如何使用](how-to-use.md)与 {cite:t}`hoffmann2022training`。", False) == []
    assert "links" in editions.message_problems(en, "见[如何使用](intro.md)与 {cite:t}`hoffmann2022training`。", False)[0]
    assert "roles" in editions.message_problems(en, "见[如何使用](how-to-use.md)与 {cite:t}`kaplan`。", False)[0]


ENTROPY = r"L = -\frac{1}{T} \sum_t \ln P(x_t) \quad \text{nats per token}."
LIMIT = r"D = \left(\frac{B}{L_\text{5-gram} - E}\right)^{1/\beta}, \quad \text{which exists only if } E < L_\text{5-gram}."


def test_tex_outside_text_leaves_out_the_words_and_the_spaces():
    assert editions.tex_outside_text(r"L_\text{5-gram} \quad\text{a {b} \} c}x^{2}") == [
        "L", "_", "\\quad", "x", "^", "{", "2", "}"]


@pytest.mark.parametrize("msgid, msgstr", [
    (ENTROPY, ENTROPY),
    (ENTROPY, ENTROPY.replace("nats per token", "奈特/词元")),
    (ENTROPY, ENTROPY.replace("  ", " ").replace(" \\quad", "\\quad")),  # spaces do not count
    # Chinese word order: a \text group added after the condition
    (LIMIT, LIMIT.replace("which exists only if ", "仅当 ").replace("5-gram}.", "5-gram} \\text{ 时存在}.")),
])
def test_a_formula_may_translate_the_words_inside_text(msgid, msgstr):
    assert editions.message_problems(msgid, msgstr, False, display=True) == []


@pytest.mark.parametrize("msgstr, where", [
    ("::\n\n   " + ENTROPY, "translation '::L='"),                 # Sphinx's literal-block wrapping
    ("$$" + ENTROPY + "$$", "translation '$$L='"),                   # no longer the equation itself
    (ENTROPY.replace("\\ln", "\\log"), "translation '}\\sum _t\\log P("),  # a command changed
    (ENTROPY.replace("\\quad", "\\quadx"), "translation 'x_t)\\quadx .'"),   # no space after it
    (ENTROPY[:-1], "English '_t)\\quad .'"),                              # the full stop dropped
    ("L 是每个词元的交叉熵。", "translation 'L是每个"),                       # turned into prose
])
def test_a_formula_with_other_tex_is_named(msgstr, where):
    problems = editions.message_problems(ENTROPY, msgstr, False, display=True)
    assert problems and problems[0].startswith("display equation's TeX differs")
    assert where in problems[0], problems[0]


def test_display_maths_in_prose_must_stay_display_maths():
    en = "So $$C = 6ND \\quad \\text{FLOPs}$$ holds."
    assert editions.message_problems(en, "所以 $$C = 6ND \\quad \\text{次浮点运算}$$ 成立。", False) == []
    found = editions.message_problems(en, "所以 $C = 6ND \\quad \\text{FLOPs}$ 成立。", False)
    assert [p.split(" differ")[0] for p in found] == ["maths", "display maths"]


def test_check_names_page_and_string(tmp_path, monkeypatch):
    pot = tmp_path / "gettext"
    _po(pot / "notebooks" / "09_x.pot", {"Hello": "", "World": "", "New": "", ENTROPY: ""})
    (pot / editions.DISPLAY_MATHS).write_text(json.dumps({"notebooks/09_x": [ENTROPY]}))
    monkeypatch.setattr(editions, "LOCALES", tmp_path / "locales")
    monkeypatch.setattr(editions, "ROOT", tmp_path)
    _po(tmp_path / "locales" / "zh_CN" / "LC_MESSAGES" / "notebooks" / "09_x.po",
        {"Hello": "你好", "World": "世界", ENTROPY: "::\n\n   " + ENTROPY}, fuzzy={"World"})
    problems = editions.check(pot)
    assert [(p, m, why.split(" ")[0]) for p, m, why in problems] == [
        ("notebooks/09_x", "World", "fuzzy"), ("notebooks/09_x", "New", "missing"),
        ("notebooks/09_x", ENTROPY, "display")]
    text = editions.report(problems)
    assert "notebooks/09_x: fuzzy: 'World'" in text and "make translate" in text
    assert "notebooks/09_x: display equation's TeX differs" in text


def test_check_needs_the_list_of_display_equations(tmp_path):
    _po(tmp_path / "gettext" / "book" / "intro.pot", {"Hello": ""})
    with pytest.raises(FileNotFoundError, match="editions.py gettext"):
        editions.check(tmp_path / "gettext")


# A tiny book, a Markdown page and a notebook, each with display equations whose words are translated.
TINY_PAGE = f"""# Page

Prose.

$${ENTROPY}$$

```{{math}}
:label: eq-compute
C = 6ND \\quad \\text{{FLOPs}}
```
"""
TINY_CELL = "# Notebook\n\n$$\nE = mc^2 \\quad \\text{energy}\n$$\n"
TINY_ZH = {
    "index": {"Page": "页面", "Prose.": "文字。", ENTROPY: ENTROPY.replace("nats per token", "奈特/词元"),
              "C = 6ND \\quad \\text{FLOPs}": "C = 6ND \\quad \\text{次浮点运算}"},
    "notebook": {"Notebook": "笔记本", "\nE = mc^2 \\quad \\text{energy}\n": "\nE = mc^2 \\quad \\text{能量}\n"},
}


def _sphinx_build(src, out, builder, conf, setup=None, warning=None):
    """Build the book in ``src`` with Sphinx and myst-nb (nothing executed) into ``out``, with ``conf`` added to
    the common settings; ``setup(app)`` runs before the build. Returns the Sphinx app. Sphinx keeps each
    page's catalog for the rest of the process, so the translators it had before are put back after."""
    from sphinx import locale
    from sphinx.application import Sphinx

    conf = {"extensions": ["myst_nb"], "nb_execution_mode": "off", "locale_dirs": ["locales/"],
            "gettext_compact": False, **conf}
    saved = dict(locale.translators)
    try:
        app = Sphinx(src, None, out, out / ".doctrees", builder, confoverrides=conf,
                     status=None, warning=warning, freshenv=True)
        if setup is not None:
            setup(app)
        app.build()
    finally:
        locale.translators.clear()
        locale.translators.update(saved)
    return app


def _tiny_build(tmp_path, builder, language, translate_verbatim=True):
    """Build the tiny book with Sphinx (myst-nb, nothing executed); returns the Sphinx app."""
    import nbformat

    src = tmp_path / "src"
    if not src.exists():
        src.mkdir()
        (src / "index.md").write_text(TINY_PAGE + "\n```{toctree}\nnotebook\n```\n", encoding="utf-8")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(TINY_CELL)])
        nbformat.write(nb, src / "notebook.ipynb")
        for page, entries in TINY_ZH.items():
            _po(src / "locales" / "zh_CN" / "LC_MESSAGES" / f"{page}.po", entries)

    def setup(app):
        if translate_verbatim:
            app.add_transform(editions.TranslateVerbatim)
        app.connect("build-finished", editions._write_display_maths)

    return _sphinx_build(src, tmp_path / f"{builder}-{language}-{translate_verbatim}", builder,
                         {"myst_enable_extensions": ["dollarmath", "amsmath"], "language": language}, setup)


def _equations(app, docname):
    from docutils import nodes

    return [n.astext() for n in app.env.get_doctree(docname).findall(nodes.math_block)]


def test_translated_equations_reach_the_page(tmp_path):
    app = _tiny_build(tmp_path, "dummy", "zh_CN")
    assert _equations(app, "index") == [TINY_ZH["index"][ENTROPY], "C = 6ND \\quad \\text{次浮点运算}"]
    assert _equations(app, "notebook") == ["\nE = mc^2 \\quad \\text{能量}\n"]
    # the labelled equation keeps its label and number
    from docutils import nodes
    labelled = [n for n in app.env.get_doctree("index").findall(nodes.math_block) if n.get("label")]
    assert [n["label"] for n in labelled] == ["eq-compute"]


def test_without_translate_verbatim_equations_become_colons(tmp_path):
    # Sphinx's own translation step alone: what the Chinese site showed, \[::\] for each equation.
    app = _tiny_build(tmp_path, "dummy", "zh_CN", translate_verbatim=False)
    assert _equations(app, "index") == ["::", "::"] and _equations(app, "notebook") == ["::"]


def test_gettext_lists_the_display_equations(tmp_path):
    app = _tiny_build(tmp_path, "gettext", "en")
    listed = json.loads((Path(app.outdir) / editions.DISPLAY_MATHS).read_text(encoding="utf-8"))
    assert listed == {"index": [ENTROPY, "C = 6ND \\quad \\text{FLOPs}"],
                      "notebook": ["\nE = mc^2 \\quad \\text{energy}\n"]}


def test_language_switch_links_the_same_page():
    assert editions.other_editions("notebooks/03_attention", "en") == [
        ("zh_CN", "中文", "../zh_CN/notebooks/03_attention.html")]
    assert editions.other_editions("notebooks/03_attention", "zh_CN") == [
        ("en", "English", "../../notebooks/03_attention.html")]
    assert editions.other_editions("search", "zh_CN") == [("en", "English", "../search.html")]


def test_no_switch_to_an_edition_without_catalogs(tmp_path, monkeypatch):
    monkeypatch.setattr(editions, "LOCALES", tmp_path / "locales")  # e.g. make book-student's copy
    assert editions.other_editions("book/intro", "en") == []


def test_every_message_is_translated(tmp_path):
    """Fails on any untranslated, fuzzy or damaged message of the real catalogs, naming page and string."""
    editions.gettext(tmp_path / "gettext")
    assert (tmp_path / "gettext" / "site.pot").exists()
    problems = editions.check(tmp_path / "gettext")
    assert not problems, (f"{len(problems)} message(s) of the Chinese edition need translating "
                          f"(run `make translate`, then edit locales/zh_CN/LC_MESSAGES/):\n"
                          + editions.report(problems, limit=60))


def test_the_extension_installs_the_fix_and_the_list():
    calls = []

    class App:  # records what editions.setup asks of Sphinx
        def __getattr__(self, name):
            return lambda *args, **kwargs: calls.append((name, args))

    editions.setup(App())
    assert ("add_transform", (editions.TranslateVerbatim,)) in calls
    assert ("connect", ("build-finished", editions._write_display_maths)) in calls


# A tiny notebook with a hidden-input figure cell whose metadata gives the figure's alt text.
FIGURE_ALT = "Loss against parameters on log-log axes: the points fall along a straight line."
FIGURE_ALT_ZH = "对数坐标下损失与参数量的关系：各点落在一条直线上。"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def _figure_build(tmp_path, builder, language, outputs=True):
    """Build a one-notebook book with myst-nb (nothing executed) and the editions' accessibility hooks."""
    import nbformat

    src = tmp_path / f"src-{outputs}"
    if not src.exists():
        src.mkdir()
        (src / "index.md").write_text("# Book\n\n```{toctree}\nfigures\n```\n", encoding="utf-8")
        cell = nbformat.v4.new_code_cell("plt.plot([1, 2]); plt.show()", metadata={
            "tags": ["hide-input"], "mystnb": {"image": {"alt": FIGURE_ALT}}})
        if outputs:
            cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Figures"), cell])
        nbformat.write(nb, src / "figures.ipynb")
        _po(src / "locales" / "zh_CN" / "LC_MESSAGES" / "figures.po", {"Figures": "图", FIGURE_ALT: FIGURE_ALT_ZH})

    def setup(app):
        editions._replace_hidden_cell_visitor(app)
        app.connect("doctree-resolved", editions._extract_figure_alt_texts)

    app = _sphinx_build(src, tmp_path / f"{builder}-{language}-{outputs}", builder, {"language": language}, setup)
    return Path(app.outdir)


def test_figures_carry_their_alt_text_in_both_editions(tmp_path):
    en = (_figure_build(tmp_path, "html", "en") / "figures.html").read_text(encoding="utf-8")
    zh = (_figure_build(tmp_path, "html", "zh_CN") / "figures.html").read_text(encoding="utf-8")
    assert f'alt="{FIGURE_ALT}"' in en and "_images/" not in en.split('alt="')[1].split('"')[0]
    assert f'alt="{FIGURE_ALT_ZH}"' in zh and FIGURE_ALT not in zh


def test_the_extraction_finds_alt_text_without_executing_the_notebook(tmp_path):
    # the gettext build executes nothing, so the cell has no image: the alt text is still a message
    out = _figure_build(tmp_path, "gettext", "en", outputs=False)
    messages = [m.id for m in editions.read_catalog(out / "figures.pot") if m.id]
    assert messages == ["Figures", FIGURE_ALT]
    # the same when the notebook has its figure (an executed build)
    out = _figure_build(tmp_path, "gettext", "en", outputs=True)
    assert [m.id for m in editions.read_catalog(out / "figures.pot") if m.id] == ["Figures", FIGURE_ALT]


def test_code_cell_toggles_are_named_by_their_visible_label(tmp_path):
    # myst-nb's aria-label="Toggle hidden content" differs from the visible "Show code cell source"
    # (axe-core: label-content-name-mismatch) and stays English on a Chinese page
    html = (_figure_build(tmp_path, "html", "en") / "figures.html").read_text(encoding="utf-8")
    summary = html.split("<summary", 1)[1].split("</summary>", 1)[0]
    assert summary.startswith(">") and "aria-label" not in summary
    assert "Show code cell source" in summary and "Hide code cell source" in summary


def test_bibliography_entries_become_list_items():
    body = ('<div role="list" class="citation-list">\n<div class="citation" id="id12" role="doc-biblioentry">'
            '<p>Ba et al.</p></div>\n</div>')
    assert editions.list_item_citations(body) == body.replace('role="doc-biblioentry"', 'role="listitem"')
    context = {"body": body}
    editions._accessible_page(None, "book/bibliography", "page.html", context, None)
    assert 'role="doc-biblioentry"' not in context["body"] and context["body"].count('role="listitem"') == 1


# A tiny notebook whose prose pastes a glued value ({glue:text}), translated.
GLUE_PROSE = "The loss is {glue:text}`loss:.3f` bits/char."
GLUE_PROSE_ZH = "损失为 {glue:text}`loss:.3f` 比特/字符。"


def _glue_build(tmp_path, language, fallback=True):
    """Build a one-notebook book whose executed cell glued ``loss`` (nothing executed at build time)."""
    import nbformat

    src = tmp_path / "src-glue"
    if not src.exists():
        src.mkdir()
        (src / "index.md").write_text("# Book\n\n```{toctree}\nglued\n```\n", encoding="utf-8")
        cell = nbformat.v4.new_code_cell('glue("loss", 2.7672)')
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={"application/papermill.record/text/plain": "2.7672"},
            metadata={"scrapbook": {"name": "loss", "mime_prefix": "application/papermill.record/"}})]
        nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("# Glued\n\n" + GLUE_PROSE)])
        nbformat.write(nb, src / "glued.ipynb")
        _po(src / "locales" / "zh_CN" / "LC_MESSAGES" / "glued.po", {"Glued": "粘贴", GLUE_PROSE: GLUE_PROSE_ZH})
    from myst_nb.ext.glue import directives, roles, utils
    saved_retrieve = roles.retrieve_glue_data, directives.retrieve_glue_data
    warnings = io.StringIO()
    try:
        roles.retrieve_glue_data = directives.retrieve_glue_data = utils.retrieve_glue_data  # myst-nb's own
        if fallback:
            editions._install_glue_fallback()
        app = _sphinx_build(src, tmp_path / f"html-{language}-{fallback}", "html", {"language": language},
                            warning=warnings)
    finally:
        roles.retrieve_glue_data, directives.retrieve_glue_data = saved_retrieve
    return (Path(app.outdir) / "glued.html").read_text(encoding="utf-8"), warnings.getvalue()


def test_a_translated_paragraph_pastes_the_glued_value(tmp_path):
    page, warnings = _glue_build(tmp_path, "zh_CN")
    assert "损失为" in page and '<span class="pasted-text">2.767</span>' in page, warnings
    assert "glue data" not in warnings
    page, _ = _glue_build(tmp_path, "en")
    assert "The loss is" in page and '<span class="pasted-text">2.767</span>' in page


def test_without_the_fallback_a_translated_paragraph_loses_the_value(tmp_path):
    # myst-nb alone: the translated paragraph is parsed without the page's glue data
    page, warnings = _glue_build(tmp_path, "zh_CN", fallback=False)
    assert "损失为" in page and "pasted-text" not in page
    assert "No key 'loss' found in glue data" in warnings

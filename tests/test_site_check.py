"""The HTML checks of tests/site_check.py, on small pages, without a browser."""
import time

import pytest

import site_check as sc


def test_text_in_code_scripts_and_typeset_maths_is_not_prose():
    html = """<html><head><title>\\(t\\)</title><script>var a = "$$";</script></head><body>
    <p>Prose with <code>\\(x\\)</code> inline code.</p>
    <div class="highlight"><span>$$ in a code cell</span></div>
    <pre>\\begin{align}</pre>
    <mjx-container><mjx-assistive-mml><math>\\(y\\)</math></mjx-assistive-mml></mjx-container>
    <p>After</p></body></html>"""
    assert [t.strip() for t in sc.visible_text(html)] == ["Prose with", "inline code.", "After"]


def test_myst_ignore_classes_do_not_hide_raw_tex():
    # myst marks whole pages tex2jax_ignore; TeX left there is still seen by the reader.
    html = '<section class="tex2jax_ignore mathjax_ignore"><p><span class="math">\\(V\\)</span></p></section>'
    assert sc.raw_tex(sc.visible_text(html)) and "inline delimiter" in sc.raw_tex(sc.visible_text(html))[0]


@pytest.mark.parametrize("text, meaning", [
    ("the loss \\(L(N)\\) falls", "inline delimiter"),
    ("\\[ L = E + A/N^\\alpha \\]", "display delimiter \\["),
    ("so $$x^2$$ here", "$$"),
    ("\\begin{align} a &= b \\end{align}", "environment"),
    ("a price $\\alpha$ fitted", "$...$ holding a TeX command"),
])
def test_raw_tex_is_found_and_named(text, meaning):
    found = sc.raw_tex([text])
    assert len(found) == 1 and meaning in found[0]


@pytest.mark.parametrize("text", ["costs $5 and $10", "a path like C:/data", "x < y and y > z", "50 % of it"])
def test_ordinary_prose_is_not_raw_tex(text):
    assert sc.raw_tex([text]) == []


def test_typeset_page_has_no_raw_tex():
    html = ('<p>Loss <mjx-container class="MathJax"><mjx-math>L</mjx-math>'
            '<mjx-assistive-mml><math><mi>L</mi></math></mjx-assistive-mml></mjx-container> falls.</p>')
    assert sc.raw_tex(sc.visible_text(html)) == []


def test_mathjax_errors_are_collected():
    html = '<mjx-container><mjx-merror data-mjx-error="Undefined control sequence \\foo"></mjx-merror></mjx-container>'
    assert sc.parse_page(html).tex_errors == ["Undefined control sequence \\foo"]


@pytest.mark.parametrize("url, expected", [
    ("https://example.org/x", None),
    ("mailto:a@b.c", None),
    ("data:image/png;base64,AAAA", None),
    ("//cdn.example.org/x.js", None),
    ("", None),
    ("#", None),
    ("#sec", ("notebooks/05.html", "sec")),
    ("../book/notation.html#symbols", ("book/notation.html", "symbols")),
    ("06.html?v=3", ("notebooks/06.html", "")),
    ("../_static/a%20b.css", ("_static/a b.css", "")),
    ("sub/", ("notebooks/sub/index.html", "")),
])
def test_local_target_resolves_relative_links(url, expected):
    assert sc.local_target("notebooks/05.html", url) == expected


@pytest.fixture
def site(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "style.css").write_text("")
    (tmp_path / "index.html").write_text('<meta http-equiv="refresh" content="0; url=book/intro.html">')
    (tmp_path / "book" / "intro.html").write_text('<h1 id="intro">Intro</h1><a name="old"></a>')
    return tmp_path


def test_links_to_existing_files_and_anchors_pass(site):
    html = ('<link rel="stylesheet" href="../_static/style.css?v=1"><a href="intro.html#intro">a</a>'
            '<a href="intro.html#old">b</a><a href="#here">c</a><p id="here"></p>'
            '<a href="https://example.org/#nowhere">d</a><img src="data:image/png;base64,AA">')
    assert sc.broken_links(site, "book/page.html", html) == []


def test_broken_internal_links_are_reported(site):
    html = ('<a href="missing.html">a</a><a href="intro.html#nope">b</a><a href="#gone">c</a>'
            '<img src="../_images/fig.png"><script src="../_static/mathjax/tex-chtml.js"></script>'
            '<a href="../../outside.html">d</a><a href="/book/intro.html">e</a>')
    problems = sc.broken_links(site, "book/page.html", html)
    assert problems == [
        "missing file: <a> missing.html",
        "missing anchor: <a> intro.html#nope",
        "missing anchor: <a> #gone",
        "missing file: <img> ../_images/fig.png",
        "missing file: <script> ../_static/mathjax/tex-chtml.js",
        "link leaves the site: <a> ../../outside.html",
        "absolute path (breaks when the site is opened from disk): <a> /book/intro.html",
    ]


def test_a_redirect_must_point_at_a_page(site):
    assert sc.broken_links(site, "index.html", (site / "index.html").read_text()) == []
    html = '<meta http-equiv="Refresh" content="0; url=book/gone.html" />'
    assert sc.broken_links(site, "index.html", html) == ["missing file: <meta> book/gone.html"]


def test_site_pages_skip_sphinx_asset_folders(site):
    (site / "_static" / "page.html").write_text("")
    assert sc.site_pages(site) == ["book/intro.html", "index.html"]
    assert sc.screenshot_name("notebooks/05_power_laws.html") == "notebooks-05_power_laws.png"


def test_missing_site_and_missing_browser_are_reported(tmp_path, monkeypatch, capsys):
    assert sc.main([str(tmp_path / "nothing")]) == 2
    assert "make book" in capsys.readouterr().err
    (tmp_path / "index.html").write_text("<p>hi</p>")
    monkeypatch.setattr(sc, "find_browser", lambda: None)
    assert sc.main([str(tmp_path), "--skip-without-chromium"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert sc.main([str(tmp_path)]) == 2
    assert "apt-get install chromium chromium-driver" in capsys.readouterr().err


def _edition_page(lang, switch_href, prose):
    return (f'<html lang="{lang}"><body><a class="edition-switch" href="{switch_href}">x</a>'
            f"<p>{prose}</p></body></html>")


def test_a_page_in_each_edition_passes():
    en = _edition_page("en", "../zh_CN/notebooks/01_x.html", "English prose.")
    zh = _edition_page("zh-CN", "../../notebooks/01_x.html", "语言模型的困惑度" * 3)
    assert sc.edition_problems("notebooks/01_x.html", sc.parse_page(en)) == []
    assert sc.edition_problems("zh_CN/notebooks/01_x.html", sc.parse_page(zh)) == []


def test_edition_problems_are_named():
    wrong_lang = _edition_page("en", "../../notebooks/01_x.html", "语言模型的困惑度" * 3)
    assert "<html lang>" in sc.edition_problems("zh_CN/notebooks/01_x.html", sc.parse_page(wrong_lang))[0]
    other_page = _edition_page("en", "../zh_CN/notebooks/02_y.html", "Prose.")
    assert "no language switch" in sc.edition_problems("notebooks/01_x.html", sc.parse_page(other_page))[0]
    untranslated = _edition_page("zh-CN", "../../notebooks/01_x.html", "Still English prose.")
    assert "Chinese characters" in sc.edition_problems("zh_CN/notebooks/01_x.html", sc.parse_page(untranslated))[0]


def test_a_redirect_page_has_no_edition_to_check():
    html = '<html><head><meta http-equiv="refresh" content="0; url=book/intro.html"></head></html>'
    assert sc.edition_problems("zh_CN/index.html", sc.parse_page(html)) == []
    assert sc.edition_of("zh_CN/index.html") == "zh_CN/" and sc.edition_of("index.html") == ""


def _maths_page(*equations, prose="Prose."):
    """A built page: prose, then each equation as Sphinx writes display maths (the second numbered)."""
    divs = []
    for i, tex in enumerate(equations):
        number = (f'<span class="eqno">({i})<a class="headerlink" href="#equation-{i}">¶</a></span>'
                  if i == 1 else "")
        divs.append(f'<div class="math notranslate nohighlight" id="equation-{i}">\n{number}\\[{tex}\\]</div>')
    return f'<html><body><section><p>{prose}</p>{"".join(divs)}</section></body></html>'


ENTROPY = r"L = -\frac{1}{T} \sum_t \ln P(x_t) \quad \text{nats per token}."
ENTROPY_ZH = ENTROPY.replace("nats per token", "奈特/词元")


def test_display_equations_are_read_as_built():
    html = _maths_page(ENTROPY, "C = 6ND") + (
        '<div class="math notranslate nohighlight">\n\\begin{align} a &= b \\end{align}</div>')
    assert sc.parse_page(html).display_maths == [ENTROPY, "C = 6ND", "\\begin{align} a &= b \\end{align}"]


def test_typeset_display_equations_are_counted():
    html = ('<mjx-container class="MathJax" display="true"><mjx-math>L</mjx-math></mjx-container>'
            '<p>inline <mjx-container class="MathJax">x</mjx-container></p>'
            '<mjx-container class="MathJax" display="true">C</mjx-container>')
    assert sc.parse_page(html).typeset_display == 2


def test_a_translated_page_with_the_same_equations_passes():
    en, zh = sc.parse_page(_maths_page(ENTROPY, "C = 6ND")), sc.parse_page(_maths_page(ENTROPY_ZH, "C = 6ND"))
    assert sc.display_maths_problems(en) == []
    assert sc.display_maths_problems(zh, en) == []


def test_equations_that_became_colons_are_found():
    # what the Chinese site showed: Sphinx's "::" literal-block marker, read by MyST as the equation
    en = sc.parse_page(_maths_page(ENTROPY, "C = 6ND"))
    zh = sc.parse_page(_maths_page("::", "C = 6ND"))
    problems = sc.display_maths_problems(zh, en)
    assert problems[0] == "a display equation is a bare '::': \\[::\\]"
    assert problems[1].startswith("display equation 1 is not the English page's")
    assert len(problems) == 2


def test_a_bare_double_colon_in_prose_is_found():
    page = sc.parse_page(_maths_page(prose="The loss is ::"))
    assert sc.display_maths_problems(page) == ["bare '::' in the prose: ...The loss is ::..."]
    for prose in ("std::vector", "a[::2]", "ratio 1:1", "Note: see"):
        assert sc.display_maths_problems(sc.parse_page(_maths_page(prose=prose))) == [], prose


def test_missing_or_changed_equations_on_a_translated_page_are_named():
    en = sc.parse_page(_maths_page(ENTROPY, "C = 6ND"))
    fewer = sc.display_maths_problems(sc.parse_page(_maths_page(ENTROPY_ZH)), en)
    assert fewer == ["1 display equations, the English page has 2"]
    changed = sc.display_maths_problems(sc.parse_page(_maths_page(ENTROPY_ZH, "C = 2ND")), en)
    assert changed == ["display equation 2 is not the English page's outside \\text{...}: "
                       "\\[C = 2ND\\] against \\[C = 6ND\\]"]


def test_typeset_equation_counts_are_compared_across_editions():
    assert sc.english_page("zh_CN/notebooks/01_x.html") == "notebooks/01_x.html"
    assert sc.english_page("notebooks/01_x.html") is None
    typeset = {"notebooks/01_x.html": 5, "zh_CN/notebooks/01_x.html": 5, "zh_CN/notebooks/02_y.html": 1}
    assert sc.typeset_problems("zh_CN/notebooks/01_x.html", typeset) == []
    assert sc.typeset_problems("zh_CN/notebooks/02_y.html", typeset) == []  # no English page checked
    typeset["zh_CN/notebooks/01_x.html"] = 4
    assert sc.typeset_problems("zh_CN/notebooks/01_x.html", typeset) == [
        "MathJax typeset 4 display equations, on the English page 5"]


# --- accessibility: alt text and the axe-core audit's report ----------------------------------------

FIGURE_ALT = "Loss against parameters on log-log axes: the points fall along a straight line."


def _figure_page(*images):
    """A built page with one <img> per (src, alt); alt None writes no alt attribute."""
    tags = "".join(f'<img src="{src}"/>' if alt is None else f'<img alt="{alt}" src="{src}"/>'
                   for src, alt in images)
    return sc.parse_page(f"<html><body><p>Prose.</p>{tags}</body></html>")


def test_images_are_read_with_their_alt_text():
    html = '<img src="a.png" alt="A figure"><img src="b.png"><img src="c.png" alt><img alt="" src="d.png"/>'
    assert sc.parse_page(html).images == [("a.png", "A figure"), ("b.png", None), ("c.png", ""), ("d.png", "")]


def test_an_image_with_alt_text_that_says_what_it_shows_passes():
    assert sc.alt_text_problems(_figure_page(("../_images/ab12.png", FIGURE_ALT))) == []


@pytest.mark.parametrize("alt, problem", [
    (None, "image without alt text: ../_images/ab12.png"),
    ("", "image without alt text: ../_images/ab12.png"),
    ("   ", "image without alt text: ../_images/ab12.png"),
    # what Sphinx writes for a figure without alt text: its own path
    ("../_images/ab12.png", "image whose alt text is a file name: ../_images/ab12.png (alt '../_images/ab12.png')"),
    ("figure_3.PNG", "image whose alt text is a file name: ../_images/ab12.png (alt 'figure_3.PNG')"),
    ("plot.svg", "image whose alt text is a file name: ../_images/ab12.png (alt 'plot.svg')"),
])
def test_missing_empty_or_file_name_alt_text_is_named(alt, problem):
    assert sc.alt_text_problems(_figure_page(("../_images/ab12.png", alt))) == [problem]


def test_alt_text_that_mentions_a_file_type_in_prose_is_not_a_file_name():
    alt = "Compression in characters per token: PNG and JPEG files compress less than text."
    assert sc.alt_text_problems(_figure_page(("../_images/ab12.png", alt))) == []


def test_a_translated_page_must_carry_the_translated_alt_text():
    english = _figure_page(("../_images/ab12.png", FIGURE_ALT), ("../_images/cd34.png", "Second figure."))
    untranslated = _figure_page(("../_images/ab12.png", FIGURE_ALT), ("../_images/cd34.png", "第二张图。"))
    problems = sc.alt_text_problems(untranslated, english, translated={FIGURE_ALT, "Second figure."})
    assert problems == ["image with the English alt text although the catalogs translate it: "
                        f"../_images/ab12.png ({FIGURE_ALT!r})"]
    # no translation in the catalogs (the catalog check names the message): not this check's failure
    assert sc.alt_text_problems(untranslated, english, translated={"Second figure."}) == []
    # matched by file name, not by position
    swapped = _figure_page(("../_images/cd34.png", "第二张图。"), ("../_images/ab12.png", "对数坐标下的损失。"))
    assert sc.alt_text_problems(swapped, english, translated={FIGURE_ALT, "Second figure."}) == []


def test_translated_messages_come_from_the_catalogs_without_fuzzy_or_empty_ones(tmp_path):
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    cat = Catalog(locale="zh_CN")
    cat.add(FIGURE_ALT, "对数坐标下的损失。")
    cat.add("Fuzzy one.", "模糊。", flags=["fuzzy"])
    cat.add("Not yet.", "")
    po = tmp_path / "zh_CN" / "LC_MESSAGES" / "notebooks" / "05_x.po"
    po.parent.mkdir(parents=True)
    with open(po, "wb") as f:
        write_po(f, cat)
    assert sc.translated_messages(tmp_path, "zh_CN") == {FIGURE_ALT}


AXE_RESULT = {"version": "4.14.1", "violations": [
    {"id": "label-content-name-mismatch", "impact": "serious",
     "help": "Ensure that elements labelled through their content must have their visible text as part of their accessible name",
     "nodes": [f"#cell-{i} > details > summary" for i in range(8)]},
    {"id": "color-contrast", "impact": "serious", "help": "Elements must meet minimum color contrast ratio thresholds",
     "nodes": [".footer-item > p > a"]},
]}


def test_axe_violations_name_rule_impact_and_elements():
    problems = sc.axe_problems(AXE_RESULT, shown=3)
    assert problems == [
        "WCAG violation label-content-name-mismatch (serious): Ensure that elements labelled through their content "
        "must have their visible text as part of their accessible name; 8 element(s): #cell-0 > details > summary; "
        "#cell-1 > details > summary; #cell-2 > details > summary; ... and 5 more",
        "WCAG violation color-contrast (serious): Elements must meet minimum color contrast ratio thresholds; "
        "1 element(s): .footer-item > p > a",
    ]


def test_a_page_without_violations_passes_and_a_failed_audit_is_a_problem():
    assert sc.axe_problems({"version": "4.14.1", "violations": []}) == []
    assert sc.axe_problems({"error": "axe-core is not on the page"}) == [
        "the accessibility audit (axe-core) failed to run: axe-core is not on the page"]
    assert sc.WCAG_TAGS == ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def test_a_check_without_axe_core_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    monkeypatch.setattr(sc, "find_browser", lambda: ("/usr/bin/chromium", "/usr/bin/chromedriver"))
    monkeypatch.setattr(sc, "open_browser", lambda *a: pytest.fail("the browser must not start without axe-core"))
    monkeypatch.delenv("AXE_CORE", raising=False)
    assert sc.main([str(tmp_path)]) == 2
    assert "make axe-core" in capsys.readouterr().err
    assert sc.main([str(tmp_path), "--axe", str(tmp_path / "missing.js")]) == 2
    assert "missing.js" in capsys.readouterr().err
    # without Chromium, --skip-without-chromium still skips before looking for axe-core
    monkeypatch.setattr(sc, "find_browser", lambda: None)
    assert sc.main([str(tmp_path), "--skip-without-chromium"]) == 0


def test_a_violation_in_dark_mode_says_so():
    result = {"violations": [{"id": "color-contrast", "impact": "serious", "help": "Contrast", "nodes": ["p > a"]}]}
    assert sc.axe_problems(result, mode="dark mode") == [
        "WCAG violation color-contrast in dark mode (serious): Contrast; 1 element(s): p > a"]
    assert sc.axe_problems({"error": "timeout"}, mode="dark mode") == [
        "the accessibility audit (axe-core) in dark mode failed to run: timeout"]


def _glued_page(*values, prose="The loss is"):
    spans = " ".join(f'<span class="pasted-text">{v}</span>' for v in values)
    return f'<html lang="en"><body><p>{prose} {spans} bits/char.</p></body></html>'


def test_a_translated_page_shows_every_glued_value():
    en = sc.parse_page(_glued_page("2.767", "320"))
    assert en.pasted == ["2.767", "320"]
    assert sc.pasted_value_problems(sc.parse_page(_glued_page("320", "2.767", prose="损失为")), en) == []
    # a glue role that failed in translation leaves nothing on the page
    (problem,) = sc.pasted_value_problems(sc.parse_page(_glued_page("320", prose="损失为")), en)
    assert "missing ['2.767']" in problem
    (problem,) = sc.pasted_value_problems(sc.parse_page(_glued_page("2.767", "321")), en)
    assert "missing ['320']" in problem and "['321']" in problem


def test_pages_are_shared_among_browsers_one_page_each_at_a_time_and_reported_in_order():
    import threading

    busy, lock, seen = set(), threading.Lock(), []

    def check(browser, page):
        with lock:
            assert browser not in busy, f"{browser} was given {page} while still checking another page"
            busy.add(browser)
        time.sleep(0.01 * (page % 3))  # pages finish out of order
        with lock:
            busy.discard(browser)
            seen.append(browser)
        return page * 10

    pages = list(range(12))
    assert sc.check_in_browsers(pages, ["b1", "b2"], check) == [p * 10 for p in pages]
    assert set(seen) == {"b1", "b2"}  # both browsers did work
    assert sc.check_in_browsers(pages, ["only"], check) == [p * 10 for p in pages]

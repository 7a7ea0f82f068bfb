"""Open every page of the built website in headless Chromium and check what a reader would see.

``make site-check`` runs ``python tests/site_check.py --axe <axe.min.js> _build/html`` (``make axe-core``
installs axe-core from the npm registry first); ``make test`` runs it after the book build with
``--skip-without-chromium``. For each page it checks:

* **maths**: after MathJax has run, no text outside code still holds TeX (``\\(``, ``\\[``, ``$$``,
  ``\\begin{``, ...), and MathJax reported no TeX error;
* **images**: every ``<img>`` loaded (``naturalWidth > 0``);
* **JavaScript**: the browser console logged no error (level SEVERE);
* **links**: every link to a local file points at a file in the site, and every ``#anchor`` at an
  id on the target page;
* **editions**: the page declares its edition's language (``<html lang>``), links to the same page
  in every other edition (the switch at its top), and a translated page's prose is in its
  language; a browser font draws that language's characters (not empty boxes);
* **display equations**: no bare ``::`` in the prose or in place of an equation, and a translated
  page has the English page's display equations, the same TeX but for the words inside
  ``\\text{...}``, and as many of them typeset by MathJax;
* **accessibility**: axe-core (Deque's rules, the npm package that ``make axe-core`` installs)
  audits the rendered page with its WCAG 2.1 A and AA rules (tags ``wcag2a``, ``wcag2aa``,
  ``wcag21a``, ``wcag21aa``), and its colour contrast again in the theme's dark mode; any
  violation fails, named by rule, impact and the elements' CSS selectors. Every image has alt text that is not empty and not a file name (what Sphinx writes
  when a figure has none), and on a translated page not the English page's text when the
  edition's catalogs translate it.

Then, in every edition, a search for a word returns the page that explains it.

Pages are checked by ``--jobs`` browsers at once (default 2: a page spends much of its time in the
browser's own processes, so two browsers keep a 2-core machine busy); the English pages first, so that
every translated page is compared with its English page's typeset equations. The report keeps the
pages' order.

Pages are opened from disk (``file://``) with every host name made unresolvable, as a reader
without a network would open them, so a page that needs a CDN fails. A screenshot of each page's
first screen goes to ``_build/site-check/``. The browser is Debian's ``chromium`` with its
``chromedriver`` (``apt-get install chromium chromium-driver``), driven by Selenium with that
driver's path given explicitly, so Selenium Manager never looks for or downloads one.

The HTML checks (:func:`visible_text`, :func:`raw_tex`, :func:`broken_links`, ...) are plain
functions of HTML text, tested without a browser in ``tests/test_site_check.py``.
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Elements whose text is code, scripts or already-typeset maths: TeX there is not a rendering failure.
SKIP_TAGS = frozenset({"head", "script", "style", "noscript", "template", "textarea", "pre", "code",
                       "kbd", "samp", "tt", "svg", "math", "mjx-container", "mjx-assistive-mml"})
# Classes that mark code. (Not MathJax's tex2jax_ignore: myst puts it on whole pages, and TeX a
# reader sees is a failure wherever it is.)
SKIP_CLASSES = frozenset({"highlight"})
VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                       "param", "source", "track", "wbr"})
# (what it means, pattern) for TeX that MathJax should have turned into maths.
RAW_TEX = (
    ("inline delimiter \\( or \\)", re.compile(r"\\[()]")),
    ("display delimiter \\[ or \\]", re.compile(r"\\[\[\]]")),
    ("display delimiter $$", re.compile(r"\$\$")),
    ("environment \\begin{...} or \\end{...}", re.compile(r"\\(?:begin|end)\{")),
    ("$...$ holding a TeX command", re.compile(r"\$(?=\S)[^$]*\\[A-Za-z]+[^$]*\$")),
)
MAX_SHOWN = 12  # problems printed per page
# Attributes that load or link to another file: (tag, attribute).
LINK_ATTRS = {("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"),
              ("source", "src"), ("iframe", "src")}


@dataclass
class PageHTML:
    """What :func:`parse_page` finds in one page's HTML."""

    texts: list[str] = field(default_factory=list)      # text nodes outside code and maths
    links: list[tuple[str, str]] = field(default_factory=list)  # (tag, url) of loads and links
    ids: set[str] = field(default_factory=set)           # id="..." and <a name="...">
    tex_errors: list[str] = field(default_factory=list)  # MathJax's messages for TeX it could not parse
    lang: str = ""                                        # <html lang="...">
    switches: list[str] = field(default_factory=list)    # hrefs of the language switch (a.edition-switch)
    redirect: bool = False                               # a <meta http-equiv="refresh"> page
    display_maths: list[str] = field(default_factory=list)  # TeX of each display equation (div.math), as built
    typeset_display: int = 0                             # display equations MathJax typeset (<mjx-container display="true">)
    images: list[tuple[str, str | None]] = field(default_factory=list)  # (src, alt; None without one) of each <img>
    pasted: list[str] = field(default_factory=list)      # text of each value a notebook glued in (span.pasted-text)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = PageHTML()
        self._stack: list[tuple[str, bool]] = []  # (tag, inside a skipped element)
        self._maths: tuple[int, list[str]] | None = None  # (stack depth of an open div.math, its text)
        self._eqno: int | None = None  # stack depth of an open span.eqno (an equation's number)
        self._pasted: tuple[int, list[str]] | None = None  # (stack depth of an open span.pasted-text, its text)

    def _skipping(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def handle_starttag(self, tag, attrs):
        self._element(tag, attrs, closes=tag in VOID_TAGS)

    def handle_startendtag(self, tag, attrs):
        self._element(tag, attrs, closes=True)

    def _element(self, tag, attrs, closes):
        if tag == "img":
            alt = next((v or "" for k, v in attrs if k == "alt"), None)
            self.page.images.append((dict(attrs).get("src") or "", alt))
        attrs = {k: (v or "") for k, v in attrs}
        if attrs.get("id"):
            self.page.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.page.ids.add(attrs["name"])
        for attr in ("href", "src"):
            if (tag, attr) in LINK_ATTRS and attr in attrs:
                self.page.links.append((tag, attrs[attr]))
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            match = re.search(r"url\s*=\s*['\"]?([^'\"\s]+)", attrs.get("content", ""), re.I)
            if match:  # a redirect page (the site's index.html): its target must exist
                self.page.links.append(("meta", match.group(1)))
                self.page.redirect = True
        if tag == "html":
            self.page.lang = attrs.get("lang", "")
        if tag == "a" and "edition-switch" in attrs.get("class", "").split():
            self.page.switches.append(attrs.get("href", ""))
        if tag == "mjx-merror":
            self.page.tex_errors.append(attrs.get("data-mjx-error") or "TeX error")
        if tag == "mjx-container" and attrs.get("display") == "true":
            self.page.typeset_display += 1
        classes = set(attrs.get("class", "").split())
        if not closes and tag == "div" and "math" in classes and self._maths is None:
            self._maths = (len(self._stack), [])
        if not closes and tag == "span" and "pasted-text" in classes and self._pasted is None:
            self._pasted = (len(self._stack), [])
        if not closes and "eqno" in classes and self._maths is not None and self._eqno is None:
            self._eqno = len(self._stack)
        if not closes:
            skip = self._skipping() or tag in SKIP_TAGS or bool(classes & SKIP_CLASSES)
            self._stack.append((tag, skip))

    def handle_endtag(self, tag):
        # Close up to the matching element; a stray end tag (no match) is ignored.
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                if self._eqno is not None and len(self._stack) <= self._eqno:
                    self._eqno = None
                if self._pasted is not None and len(self._stack) <= self._pasted[0]:
                    self.page.pasted.append("".join(self._pasted[1]).strip())
                    self._pasted = None
                if self._maths is not None and len(self._stack) <= self._maths[0]:
                    self.page.display_maths.append(_display_tex("".join(self._maths[1])))
                    self._maths = None
                return

    def handle_data(self, data):
        if self._pasted is not None:
            self._pasted[1].append(data)
        if self._maths is not None and self._eqno is None:
            self._maths[1].append(data)
        if data.strip() and not self._skipping():
            self.page.texts.append(data)


def _display_tex(text: str) -> str:
    """The TeX of a built display equation: what is between ``\\[`` and ``\\]``, else all of it."""
    match = re.fullmatch(r"\s*\\\[(.*)\\\]\s*", text, re.S)
    return (match.group(1) if match else text).strip()


def parse_page(html: str) -> PageHTML:
    """Parse one page: its visible text nodes, the files it loads or links to, its ids, TeX errors."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


def visible_text(html: str) -> list[str]:
    """The text nodes of ``html`` that a reader sees as prose: outside code, scripts and typeset maths."""
    return parse_page(html).texts


def raw_tex(texts: list[str]) -> list[str]:
    """One message per text node that still holds TeX (a delimiter, ``$$``, ``\\begin{``, ...).

    Run on :func:`visible_text` after MathJax has typeset the page, anything found is maths a
    reader sees as source.
    """
    found = []
    for text in texts:
        for meaning, pattern in RAW_TEX:
            match = pattern.search(text)
            if match:
                start = max(0, match.start() - 30)
                snippet = " ".join(text[start:match.end() + 30].split())
                found.append(f"raw TeX ({meaning}): ...{snippet}...")
                break
    return found


def local_target(page: str, url: str) -> tuple[str, str] | None:
    """Where a link on ``page`` (a path relative to the site root) points inside the site.

    Returns ``(path relative to the site root, fragment)``; the path is ``page`` itself for a link
    like ``#section``. Returns ``None`` for links that leave the site (a scheme such as
    ``https:``, ``mailto:`` or ``data:``, or a host) and for empty links (``""``, ``"#"``).
    """
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        return None
    path, fragment = unquote(parts.path), unquote(parts.fragment)
    if not path:
        return (page, fragment) if fragment else None
    if path.startswith("/"):
        return path, fragment  # absolute: :func:`broken_links` reports it
    joined = Path(os.path.normpath(Path(page).parent / path)).as_posix()
    if path.endswith("/"):
        joined = f"{joined}/index.html"
    return joined, fragment


def broken_links(site: Path, page: str, html: str, ids_of=None) -> list[str]:
    """One message per link or load on ``page`` that points at a missing file or anchor of ``site``.

    ``page`` is the page's path relative to ``site``. ``ids_of(path)`` returns the ids of another
    page (default: read and parse it); anchors are checked on ``<a>`` links to HTML pages.
    """
    parsed = parse_page(html)
    cache: dict[str, set[str]] = {page: parsed.ids}

    def ids(path: str) -> set[str]:
        if path not in cache:
            if ids_of is not None:
                cache[path] = set(ids_of(path))
            else:
                cache[path] = parse_page((site / path).read_text(encoding="utf-8", errors="replace")).ids
        return cache[path]

    problems = []
    for tag, url in parsed.links:
        target = local_target(page, url)
        if target is None:
            continue
        path, fragment = target
        if path.startswith("/"):
            problems.append(f"absolute path (breaks when the site is opened from disk): <{tag}> {url}")
        elif path == ".." or path.startswith("../"):
            problems.append(f"link leaves the site: <{tag}> {url}")
        elif path != page and not (site / path).is_file():
            problems.append(f"missing file: <{tag}> {url}")
        elif tag == "a" and fragment and path.endswith(".html") and fragment not in ids(path):
            problems.append(f"missing anchor: <a> {url}")
    return problems


def site_pages(site: Path) -> list[str]:
    """The site's HTML pages, relative to ``site``, without Sphinx's asset folders (``_static`` ...)."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site)
        if not any(part.startswith("_") for part in rel.parts[:-1]):
            pages.append(rel.as_posix())
    return pages


def screenshot_name(page: str) -> str:
    """The screenshot file for ``page``: ``notebooks/05_power_laws.html`` -> ``notebooks-05_power_laws.png``."""
    return page[:-len(".html")].replace("/", "-") + ".png"


# The site's editions: the folder of each under the English root and its <html lang>, and a word
# whose search must find a page (relative to the edition's folder).
EDITIONS = {"": "en", "zh_CN/": "zh-CN"}
SEARCH_PROBES = {"": [("perplexity", "notebooks/01_language_models.html")],
                 # a word, and a phrase that only a segmenting query splitter can find
                 "zh_CN/": [("困惑度", "notebooks/01_language_models.html"),
                            ("幂律的指数", "notebooks/05_power_laws.html")]}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MIN_CJK = 20  # characters of Chinese prose on a page of the Chinese edition, at least


def edition_of(page: str, editions=EDITIONS) -> str:
    """The folder of the edition ``page`` belongs to ("" for the English root)."""
    return max((p for p in editions if page.startswith(p)), key=len)


def edition_problems(page: str, parsed: PageHTML, editions=EDITIONS) -> list[str]:
    """What is wrong with ``page``'s edition (``parsed``: its HTML through :func:`parse_page`):
    its language, its switch, the language of its prose."""
    if parsed.redirect:  # nothing to read: the page it redirects to is checked
        return []
    here = edition_of(page, editions)
    problems = []
    if parsed.lang != editions[here]:
        problems.append(f"<html lang> is {parsed.lang!r}, expected {editions[here]!r}")
    rest = page[len(here):]
    for folder in editions:
        if folder == here:
            continue
        want = f"{folder}{rest}"
        got = [local_target(page, h) for h in parsed.switches]
        if not any(t is not None and t[0] == want for t in got):
            problems.append(f"no language switch to the same page in the other edition ({want})")
    if editions[here].startswith("zh"):
        cjk = sum(len(_CJK.findall(t)) for t in parsed.texts)
        if cjk < MIN_CJK:
            problems.append(f"only {cjk} Chinese characters in the page's prose: is it translated?")
    return problems


_BARE_COLONS = re.compile(r"(?:^|\s)::(?:\s|$)")


def _editions():
    """book/_ext/editions.py as a module (its rule for comparing a translated formula with the English)."""
    import importlib.util

    if "editions" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "book" / "_ext" / "editions.py"
        spec = importlib.util.spec_from_file_location("editions", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["editions"] = module
        spec.loader.exec_module(module)
    return sys.modules["editions"]


def english_page(page: str, editions=EDITIONS) -> str | None:
    """The same page in the English edition, or ``None`` for a page of the English edition."""
    here = edition_of(page, editions)
    return page[len(here):] if here else None


def display_maths_problems(parsed: PageHTML, english: PageHTML | None = None) -> list[str]:
    """What is wrong with a page's display equations (``parsed``: the page as built).

    A bare ``::`` in the prose or as a whole equation: what a translated equation became when
    reStructuredText's literal-block marker reached MyST (``\\[::\\]``). For a translated page,
    ``english`` is the same page of the English edition: the page must have as many display
    equations, in the same order, each the same TeX but for the words inside ``\\text{...}``
    (``editions.tex_outside_text``, the rule the catalog check applies to the messages).
    """
    problems = []
    for text in parsed.texts:
        match = _BARE_COLONS.search(text)
        if match:
            snippet = " ".join(text[max(0, match.start() - 40):match.end() + 40].split())
            problems.append(f"bare '::' in the prose: ...{snippet}...")
    problems += [f"a display equation is a bare '::': \\[{tex}\\]"
                 for tex in parsed.display_maths if _BARE_COLONS.search(tex)]
    if english is None:
        return problems
    ours, theirs = parsed.display_maths, english.display_maths
    if len(ours) != len(theirs):
        problems.append(f"{len(ours)} display equations, the English page has {len(theirs)}")
    outside = _editions().tex_outside_text
    for i, (mine, en) in enumerate(zip(ours, theirs), 1):
        if outside(mine) != outside(en):
            problems.append(f"display equation {i} is not the English page's outside \\text{{...}}: "
                            f"\\[{' '.join(mine.split())}\\] against \\[{' '.join(en.split())}\\]")
    return problems


def pasted_value_problems(parsed: PageHTML, english: PageHTML) -> list[str]:
    """A translated page must show every value its notebook glued into the English page's prose
    (``{glue:text}`` roles, span.pasted-text), the same values, in any order (a translation may
    reorder a sentence): a role that failed in translation leaves nothing on the page."""
    missing = Counter(english.pasted) - Counter(parsed.pasted)
    extra = Counter(parsed.pasted) - Counter(english.pasted)
    if not missing and not extra:
        return []
    return [f"glued values differ from the English page's: {len(parsed.pasted)} against "
            f"{len(english.pasted)}; missing {sorted(missing.elements())}, not on the English page "
            f"{sorted(extra.elements())}"]


def typeset_problems(page: str, typeset: dict[str, int], editions=EDITIONS) -> list[str]:
    """A translated page whose MathJax typeset a different number of display equations than the
    English page's (``typeset``: page -> count, from :attr:`PageHTML.typeset_display` after MathJax)."""
    english = english_page(page, editions)
    if english is None or english not in typeset or page not in typeset:
        return []
    if typeset[page] != typeset[english]:
        return [f"MathJax typeset {typeset[page]} display equations, on the English page "
                f"{typeset[english]}"]
    return []


# An image file's name (Sphinx's alt text for a figure without one is its path, ../_images/<hash>.png).
_IMAGE_FILE = re.compile(r"(?:^|[/\\])[^/\\\s]+\.(?:png|jpe?g|gif|svg|webp|bmp|tiff?)$", re.I)


def _image_name(src: str) -> str:
    """The file name of an image's ``src``: the same figure has the same name in every edition."""
    return unquote(urlsplit(src).path).rsplit("/", 1)[-1]


def alt_text_problems(parsed: PageHTML, english: PageHTML | None = None,
                      translated: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """What is wrong with the alt text of a page's images (``parsed``: the page as built).

    Every ``<img>`` needs alt text that says what it shows: not missing or empty, not a file name
    (Sphinx's stand-in, ``../_images/<hash>.png``). On a translated page, ``english`` is the same
    page of the English edition and ``translated`` the English messages that the edition's
    catalogs translate: an image (matched by file name) whose alt text is still the English
    page's, although the catalogs translate it, did not get its translation.
    """
    problems = []
    for src, alt in parsed.images:
        text = (alt or "").strip()
        if not text:
            problems.append(f"image without alt text: {src}")
        elif _IMAGE_FILE.search(text) or text == src:
            problems.append(f"image whose alt text is a file name: {src} (alt {text!r})")
    if english is None:
        return problems
    theirs = {_image_name(src): (alt or "").strip() for src, alt in english.images}
    for src, alt in parsed.images:
        text = (alt or "").strip()
        if text and theirs.get(_image_name(src)) == text and text in translated:
            short = text if len(text) <= 80 else text[:77] + "..."
            problems.append(f"image with the English alt text although the catalogs translate it: {src} "
                            f"({short!r})")
    return problems


def translated_messages(locales: Path, language: str) -> frozenset[str]:
    """The English messages that ``locales/<language>/LC_MESSAGES/**/*.po`` translate (not fuzzy)."""
    found = set()
    for po in sorted((Path(locales) / language / "LC_MESSAGES").rglob("*.po")):
        found.update(m.id for m in _editions().read_catalog(po)
                     if isinstance(m.id, str) and m.id and m.string and not m.fuzzy)
    return frozenset(found)


# The WCAG 2.1 levels A and AA, as axe-core tags its rules.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
MAX_SELECTORS = 6  # elements named per violated rule


def axe_problems(result: dict, shown: int = MAX_SELECTORS, mode: str = "") -> list[str]:
    """One message per WCAG rule that axe-core found violated on a page (``result``: what
    :data:`_AXE_RUN` returned): the rule, its impact, what it asks, and the elements' selectors.
    ``mode`` names the colour mode audited, when it is not the default (e.g. ``"dark mode"``)."""
    where = f" in {mode}" if mode else ""
    if "error" in result:
        return [f"the accessibility audit (axe-core){where} failed to run: {result['error']}"]
    problems = []
    for v in result.get("violations", []):
        nodes = v.get("nodes", [])
        named = "; ".join(nodes[:shown]) + (f"; ... and {len(nodes) - shown} more" if len(nodes) > shown else "")
        problems.append(f"WCAG violation {v.get('id')}{where} ({v.get('impact') or 'no impact given'}): "
                        f"{v.get('help', '')}; {len(nodes)} element(s): {named}")
    return problems


def default_axe() -> Path | None:
    """axe-core's ``axe.min.js``: ``$AXE_CORE`` if set (``make site-check`` passes ``--axe``)."""
    return Path(os.environ["AXE_CORE"]) if os.environ.get("AXE_CORE") else None


# --- the browser ---------------------------------------------------------------------------------

_WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
(async () => {
  let mathjax = "absent";
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    mathjax = "typeset";
  }
  const images = Array.from(document.images);
  images.forEach(img => { if (img.loading === "lazy") img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(resolve => {
    img.addEventListener("load", resolve); img.addEventListener("error", resolve);
    setTimeout(resolve, 15000);
  })));
  const broken = [];
  for (const img of images) {
    if (img.naturalWidth > 0) continue;
    const decodes = await img.decode().then(() => true, () => false);  // an SVG may have no natural size
    if (!decodes) broken.push(img.getAttribute("src") || "(no src)");
  }
  done({mathjax: mathjax, formulas: document.querySelectorAll("mjx-container").length,
        broken_images: broken, html: document.documentElement.outerHTML});
})().catch(err => done({error: String(err)}));
"""


def find_browser() -> tuple[str, str] | None:
    """Chromium and its chromedriver: ``$CHROMIUM``/``$CHROMEDRIVER``, else the ones on ``PATH``."""
    browser = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_browser(browser: str, driver: str, width: int = 1280, height: int = 900):
    """Start headless Chromium through ``driver``; no network lookups, none by Selenium either."""
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager is not called anyway
    # Talk to chromedriver on this machine directly, never through a proxy from the environment.
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = ",".join(filter(None, (no_proxy, "localhost", "127.0.0.1")))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium skips Selenium Manager (no download, no network).
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(60)
    chrome.set_script_timeout(60)
    return chrome


def check_page(chrome, site: Path, page: str, shots: Path,
               typeset: dict[str, int] | None = None, axe: str | None = None,
               translated: frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """Open ``page`` in ``chrome``; return its problems and how many formulas MathJax typeset.

    ``typeset`` (page -> display equations MathJax typeset) gets this page's count; a translated
    page's is compared with its English page's, when that was checked before it. ``axe`` is the
    source of axe-core, injected to audit the rendered page; ``translated``, the English messages
    the translated edition's catalogs translate (for the alt-text check).
    """
    from selenium.common.exceptions import WebDriverException

    for attempt in (1, 2):  # a redirect page can navigate away while the script runs: try once more
        try:
            chrome.get((site / page).resolve().as_uri())
            result = chrome.execute_async_script(_WAIT_FOR_PAGE)
            break
        except WebDriverException as err:
            if attempt == 2:
                result = {"error": str(err).splitlines()[0]}
            time.sleep(1)
    problems = []
    if "error" in result:
        problems.append(f"the page check itself failed: {result['error']}")
        result = {"html": chrome.page_source, "broken_images": [], "formulas": 0}
    chrome.save_screenshot(str(shots / screenshot_name(page)))
    built = (site / page).read_text(encoding="utf-8", errors="replace")
    parsed_built = parse_page(built)
    if axe is not None and not parsed_built.redirect and "error" not in result:
        problems += audit(chrome, axe)  # before the log is read: it is this page's
    for entry in chrome.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(f"JavaScript error: {entry.get('message', '')[:300]}")
    # What the reader sees, from the rendered DOM; a redirect page's DOM is its target's, perhaps
    # not typeset yet (the target is checked as a page of its own).
    if not parsed_built.redirect:
        problems += [f"image did not load: {src}" for src in result["broken_images"]]
        parsed = parse_page(result["html"])
        problems += [f"MathJax could not parse TeX: {msg}" for msg in parsed.tex_errors]
        problems += raw_tex(parsed.texts)
        if typeset is not None:
            typeset[page] = parsed.typeset_display
            problems += typeset_problems(page, typeset)
    # Links, editions and equations' TeX are checked on the file as built (the rendered DOM adds
    # MathJax's own elements).
    problems += broken_links(site, page, built)
    problems += edition_problems(page, parsed_built)
    english = english_page(page)
    if english is not None and (site / english).is_file():
        english_built = parse_page((site / english).read_text(encoding="utf-8", errors="replace"))
        problems += display_maths_problems(parsed_built, english_built)
        problems += pasted_value_problems(parsed_built, english_built)
        problems += alt_text_problems(parsed_built, english_built, translated)
    else:
        problems += display_maths_problems(parsed_built)
        problems += alt_text_problems(parsed_built)
    if (EDITIONS[edition_of(page)].startswith("zh") and not parsed_built.redirect
            and not chrome.execute_script(_DRAWS_CJK)):
        problems.append("no font draws Chinese characters: they show as empty boxes "
                        "(Debian: apt-get install fonts-noto-cjk)")
    return problems, result.get("formulas", 0)


_AXE_RUN = """
const done = arguments[arguments.length - 1];
if (!window.axe) { done({error: "axe-core is not on the page"}); return; }
// preload: false, since fetching the stylesheets again (for its CSS-object-model rules) is refused
// on file:// pages and logs an error
axe.run(document, {runOnly: arguments[0], resultTypes: ["violations"], preload: false})
  .then(r => done({version: axe.version, violations: r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.map(t => Array.isArray(t) ? t.join(" >>> ") : t).join(", "))}))}))
  .catch(err => done({error: String(err)}));
"""


# Colours are audited as they end up, not halfway through the theme's transitions (its buttons fade
# their colours over 0.15 s): transitions and animations off, then two frames drawn.
_SETTLE = """
const done = arguments[arguments.length - 1];
if (!document.getElementById("site-check-settle")) {
  const style = document.createElement("style");
  style.id = "site-check-settle";
  style.textContent = "*, *::before, *::after { transition: none !important; animation: none !important; }";
  document.head.appendChild(style);
}
if (arguments[0]) {  // the theme's dark mode, as its colour-mode button sets it
  document.documentElement.dataset.mode = "dark";
  document.documentElement.dataset.theme = "dark";
}
document.body.getBoundingClientRect();
requestAnimationFrame(() => requestAnimationFrame(() => done(getComputedStyle(document.body).backgroundColor)));
"""


def audit(chrome, axe: str) -> list[str]:
    """Audit the page open in ``chrome`` with axe-core (``axe``: axe.min.js's source): every WCAG 2.1
    A/AA rule in the theme's default (light) colours, then colour contrast again in its dark mode,
    which a reader can switch to. Returns the problems (:func:`axe_problems`)."""
    chrome.execute_script(axe)
    chrome.execute_async_script(_SETTLE, False)
    problems = axe_problems(chrome.execute_async_script(_AXE_RUN, {"type": "tag", "values": list(WCAG_TAGS)}))
    chrome.execute_async_script(_SETTLE, True)
    dark = chrome.execute_async_script(_AXE_RUN, {"type": "rule", "values": ["color-contrast"]})
    return problems + axe_problems(dark, mode="dark mode")


# Does the page's own font stack draw a Chinese character, rather than the box of a missing glyph?
# Compared with a code point no font has (U+10FFFD, private use).
_DRAWS_CJK = r"""
const font = getComputedStyle(document.body).fontSize + " " + getComputedStyle(document.body).fontFamily;
function pixels(ch) {
  const c = document.createElement("canvas"); c.width = 64; c.height = 64;
  const g = c.getContext("2d"); g.font = font.replace(/^[^ ]+/, "40px"); g.fillText(ch, 4, 48);
  return g.getImageData(0, 0, 64, 64).data.join(",");
}
const missing = pixels("\u{10FFFD}"), han = pixels("\u5f8b"), han2 = pixels("\u7387");
return han !== missing && han2 !== missing && han !== han2;
"""

_SEARCH = """
const done = arguments[arguments.length - 1];
const t0 = Date.now();
(function poll() {
  const items = Array.from(document.querySelectorAll("#search-results ul.search li a"));
  const summary = document.querySelector("#search-results .search-summary");
  // the summary is written once every result is listed (results appear one by one)
  if ((summary && summary.textContent.trim()) || Date.now() - t0 > 30000) {
    done({hrefs: items.map(a => a.getAttribute("href")), summary: summary ? summary.textContent : ""});
  } else { setTimeout(poll, 200); }
})();
"""


def check_in_browsers(pages: list[str], browsers: list, check) -> list:
    """``check(browser, page)`` for every page, each browser checking one page at a time; results in the
    pages' order. One browser: one page after another, in order."""
    free: queue.Queue = queue.Queue()
    for browser in browsers:
        free.put(browser)

    def one(page):
        browser = free.get()
        try:
            return check(browser, page)
        finally:
            free.put(browser)

    with ThreadPoolExecutor(max_workers=len(browsers)) as pool:
        return list(pool.map(one, pages))


def check_search(chrome, site: Path) -> list[str]:
    """In each edition, search for probe words; the page that explains each must be among the results."""
    from urllib.parse import quote

    problems = []
    for folder, probes in SEARCH_PROBES.items():
        page = site / folder / "search.html"
        if not page.is_file():
            continue
        for word, expected in probes:
            chrome.get(page.resolve().as_uri() + "?q=" + quote(word))
            result = chrome.execute_async_script(_SEARCH)
            found = [urlsplit(h).path for h in result["hrefs"]]
            ok = any(h.endswith(expected) for h in found)
            print(f"{'ok  ' if ok else 'FAIL'} search {folder or '(English)'} {word!r}: {len(found)} results")
            if not ok:
                problems.append(f"search in {folder or 'the English edition'} for {word!r} does not find "
                                f"{expected} (results: {found[:5]}; {result['summary'].strip()[:120]})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default="_build/html", help="the built website (default _build/html)")
    parser.add_argument("--screenshots", default=None,
                        help="folder for screenshots (default: site-check/ beside the site folder)")
    parser.add_argument("--skip-without-chromium", action="store_true",
                        help="say 'skipped' and succeed when Chromium or chromedriver is not installed")
    parser.add_argument("--axe", default=default_axe(), type=Path,
                        help="axe-core's axe.min.js (default $AXE_CORE; `make axe-core` installs it)")
    parser.add_argument("--locales", type=Path, default=Path(__file__).resolve().parents[1] / "locales",
                        help="the catalogs the translated editions were built from (default: the checkout's)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="browsers checking pages at once (default 2)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")

    site = Path(args.site)
    if not (site / "index.html").is_file():
        print(f"site-check: no website at {site}/index.html; build it first with `make book`.", file=sys.stderr)
        return 2
    found = find_browser()
    if found is None:
        message = ("Chromium and chromedriver are not installed (Debian/Ubuntu: "
                   "apt-get install chromium chromium-driver)")
        if args.skip_without_chromium:
            print(f"site-check: skipped: {message}.")
            return 0
        print(f"site-check: {message}.", file=sys.stderr)
        return 2
    if args.axe is None or not args.axe.is_file():
        print(f"site-check: axe-core's axe.min.js not found ({args.axe or 'no --axe or $AXE_CORE given'}): "
              "`make axe-core` installs it from the npm registry (needs npm: apt-get install nodejs npm), "
              "and `make site-check` passes it.", file=sys.stderr)
        return 2
    axe = args.axe.read_text(encoding="utf-8")
    translated = {folder: translated_messages(args.locales, folder.strip("/"))
                  for folder in EDITIONS if folder}
    shots = Path(args.screenshots) if args.screenshots else site.parent / "site-check"
    shots.mkdir(parents=True, exist_ok=True)

    pages = sorted(site_pages(site), key=lambda p: (edition_of(p) != "", p))  # English pages first
    start = time.perf_counter()
    browsers = []
    failed = 0
    typeset: dict[str, int] = {}  # display equations MathJax typeset, per page

    def check(chrome, page):
        return check_page(chrome, site, page, shots, typeset, axe, translated.get(edition_of(page), frozenset()))

    try:
        browsers = [open_browser(*found) for _ in range(min(args.jobs, len(pages)) or 1)]
        # the English pages first, all of them: a translated page is compared with its English page
        for group in ([p for p in pages if edition_of(p) == ""], [p for p in pages if edition_of(p) != ""]):
            for page, (problems, formulas) in zip(group, check_in_browsers(group, browsers, check)):
                status = "FAIL" if problems else "ok  "
                print(f"{status} {page} ({formulas} formulas)")
                for problem in problems[:MAX_SHOWN]:
                    print(f"       {problem}")
                if len(problems) > MAX_SHOWN:
                    print(f"       ... and {len(problems) - MAX_SHOWN} more")
                failed += bool(problems)
        search_problems = check_search(browsers[0], site)
        for problem in search_problems:
            print(f"       {problem}")
        failed += len(search_problems)
    finally:
        for chrome in browsers:
            chrome.quit()
    version = re.search(r"axe v([\d.]+)", axe[:300])
    print(f"Checked {len(pages)} pages in headless Chromium ({len(browsers)} at once) in "
          f"{time.perf_counter() - start:.0f} s, with "
          f"axe-core {version.group(1) if version else '(version unknown)'}'s WCAG 2.1 A/AA rules; "
          f"screenshots in {shots}/")
    print(f"site-check: {len(pages) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

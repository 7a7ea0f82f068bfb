"""The Chinese edition's catalogs (locales/zh_CN/LC_MESSAGES) against the English source.

``test_every_message_is_translated`` extracts the English messages afresh (Sphinx's gettext builder,
about ten seconds, nothing executed) and fails when any of them has no translation, a fuzzy one, or
one whose maths, code, roles or link targets differ from the English, printing the page and the
string. After editing English prose, ``make translate`` updates the catalogs and lists the same.
"""
import importlib.util
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
    assert set(m["maths"]) == {"6ND", "L = E"}
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


def test_check_names_page_and_string(tmp_path, monkeypatch):
    pot = tmp_path / "gettext"
    _po(pot / "notebooks" / "09_x.pot", {"Hello": "", "World": "", "New": ""})
    monkeypatch.setattr(editions, "LOCALES", tmp_path / "locales")
    monkeypatch.setattr(editions, "ROOT", tmp_path)
    _po(tmp_path / "locales" / "zh_CN" / "LC_MESSAGES" / "notebooks" / "09_x.po",
        {"Hello": "你好", "World": "世界"}, fuzzy={"World"})
    problems = editions.check(pot)
    assert [(p, m, why.split(" ")[0]) for p, m, why in problems] == [
        ("notebooks/09_x", "World", "fuzzy"), ("notebooks/09_x", "New", "missing")]
    text = editions.report(problems)
    assert "notebooks/09_x: fuzzy: 'World'" in text and "make translate" in text


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

"""The autograder is tested like the rest of the course (utils/assignments.py, nbgrader).

For every chapter with graded items, built from the chapter notebook alone: the reference answers get
full marks; the blank student notebook gets zero on every item and runs to its end with no error outside
the items; and a plausible wrong answer loses the marks of its item. Each chapter is built and graded in
a course directory of its own, two chapters at a time (about three minutes on a 2-core machine).
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("nbgrader")

from utils import assignments  # noqa: E402

CHAPTERS = {assignments.assignment_id(p): p for p in assignments.chapters()}

# Chapters whose graded items are still to be marked (see "For instructors"): they must build, as a
# notebook with title and set-up only.
PENDING: set[str] = set()

# Plausible wrong answers: {assignment: {submission: [(solution cell, text of the reference answer,
# what a student might write instead)]}}. Every item named must lose all its points.
WRONG = {
    "ch01": {"wrong": [
        ("ch01-add-k-solution", "+ k * n_symbols", "+ k"),               # k added once, not once per character
        ("ch01-loss-solution", "np.log(", "np.log2("),                    # bits instead of nats
    ]},
    "ch02": {"wrong": [
        ("ch02-encode-solution", "256 + k", "255 + k"),                   # off by one in the new token ids
        ("ch02-bpc-solution", "(n_chars * math.log(2))", "n_chars"),      # nats per character, not bits
    ]},
    "ch03": {
        "wrong-mask": [
            ("ch03-causal-solution", "diagonal=1", "diagonal=0"),         # off by one: a query cannot see itself
            ("ch03-flops-solution", "12 * n_layer * n_ctx * d_model", "6 * n_layer * n_ctx * d_model"),  # Kaplan's half
        ],
        "wrong-scale": [
            ("ch03-causal-solution", " / math.sqrt(d_k)", ""),            # the missing 1/sqrt(d_k)
        ],
    },
    "ch04a": {"wrong": [
        ("ch04a-mha-solution", "t.view(B, T, n_head, d // n_head).transpose(1, 2)",
         "t.reshape(B, n_head, T, d // n_head)"),                         # heads split without the transpose
        ("ch04a-block-solution", "h = h + block.attn(block.ln1(h))", "h = block.ln1(h + block.attn(h))"),  # post-LN
    ]},
    "ch04b": {"wrong": [
        ("ch04b-lr-solution", "(step + 1) / warmup_iters", "step / warmup_iters"),  # warm-up starts at zero
        ("ch04b-step-solution", "    optimizer.zero_grad(set_to_none=True)\n", ""),  # gradients accumulate
    ]},
    "ch05": {"wrong": [
        ("ch05-huber-solution", "0.5 * r**2", "r**2"),                    # the quadratic part without its 1/2
        ("ch05-loglog-solution", "np.polyfit(np.log(x), np.log(y), 1)", "np.polyfit(x, np.log(y), 1)"),  # semi-log
    ]},
    "ch06": {
        "wrong": [
            ("ch06-flops-solution", " + n_vocab * d)", ")"),                # the tied output head left out
            ("ch06-parabola-solution", "np.polyfit(np.log(N), loss, 2)", "np.polyfit(N, loss, 2)"),  # parabola in N
        ],
        "wrong-points": [
            ("ch06-cluster-solution", "drawn[index]",
             "np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups))"),  # points, not groups
        ],
    },
    "ch07": {"wrong": [
        ("ch07-allocation-solution", "(C / 6) **", "C **"),               # the budget C, not C / 6
        ("ch07-lifetime-solution", "2 * N * inference_tokens", "6 * N * inference_tokens"),  # inference priced as training
    ]},
}


def _mutate(reference: dict[str, str], changes) -> dict[str, str]:
    answers = dict(reference)
    for cell, old, new in changes:
        assert old in answers[cell], f"{cell} no longer contains {old!r}: update WRONG in {__file__}"
        answers[cell] = answers[cell].replace(old, new)
    return answers


def _grade(root, aid):
    out = root / aid
    t0 = time.perf_counter()
    summary = assignments.build(out, [CHAPTERS[aid]])[aid]
    built = time.perf_counter() - t0
    if summary["pending"]:
        return {"summary": summary, "built_s": built}
    reference = assignments.solutions(out, aid)
    assignments.submit(out, aid, "reference", reference)
    assignments.submit(out, aid, "blank")
    for student, changes in WRONG.get(aid, {}).items():
        assignments.submit(out, aid, student, _mutate(reference, changes))
    t1 = time.perf_counter()
    assignments.autograde(out, aid)
    students = 2 + len(WRONG.get(aid, {}))
    return {"summary": summary, "built_s": built, "grade_s_per_submission": (time.perf_counter() - t1) / students,
            "scores": assignments.scores(out, aid),
            "errors": {s: assignments.errors_outside_items(out, aid, s) for s in ("reference", "blank")},
            "release": out / "release" / aid}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("assignments")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CHAPTERS, pool.map(lambda aid: _grade(root, aid), CHAPTERS)))


GRADED = [aid for aid in CHAPTERS if aid not in PENDING]


def test_every_chapter_has_three_graded_items_and_a_wrong_answer():
    for aid, path in CHAPTERS.items():
        items = assignments.graded_items(assignments.load(path))
        if aid in PENDING:
            assert not items, f"{aid} has graded items now: remove it from PENDING and add a wrong answer to WRONG"
            continue
        assert len(items) >= 3, f"{aid} has {len(items)} graded items; the course asks for at least 3"
        assert WRONG.get(aid), f"{aid} has no wrong answer in WRONG"


def test_markers_are_consistent_with_the_website_and_the_grader():
    """Tests are hidden on the website (remove-cell), solutions shown in drop-downs (hide-input) and
    written inside a function, so that a blank notebook runs on; grade ids are unique across chapters."""
    seen = set()
    for path in CHAPTERS.values():
        for cell in assignments.load(path)["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader")
            if not meta:
                continue
            gid, tags, src = meta["grade_id"], cell["metadata"].get("tags", []), "".join(cell["source"])
            assert gid not in seen, f"grade id {gid} used twice"
            seen.add(gid)
            assert gid.startswith(assignments.assignment_id(path) + "-"), f"{gid}: start grade ids with the assignment id"
            if meta.get("grade"):
                assert meta["points"] > 0 and "remove-cell" in tags and meta.get("locked"), gid
            if meta.get("solution"):
                assert "hide-input" in tags and src.count("### BEGIN SOLUTION") == 1 == src.count("### END SOLUTION"), gid
                begin = next(ln for ln in src.splitlines() if "### BEGIN SOLUTION" in ln)
                assert begin.startswith("    "), f"{gid}: put the solution region inside a function body"


@pytest.mark.parametrize("aid", GRADED)
def test_reference_answers_get_full_marks(graded, aid):
    scores = graded[aid]["scores"]["reference"]
    assert set(scores) == {it["grade_id"] for it in graded[aid]["summary"]["items"]}
    lost = {gid: s for gid, s in scores.items() if s[0] != s[1]}
    assert not lost, f"{aid}: the reference answers lose points on {lost}"
    assert graded[aid]["errors"]["reference"] == []


@pytest.mark.parametrize("aid", GRADED)
def test_blank_notebook_gets_zero_and_runs_to_the_end(graded, aid):
    scores = graded[aid]["scores"]["blank"]
    assert scores and all(score == 0 for score, _ in scores.values()), scores
    assert graded[aid]["errors"]["blank"] == [], f"{aid}: cells outside the graded items failed"
    release = next(graded[aid]["release"].glob("*.ipynb")).read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in release and "BEGIN HIDDEN TESTS" not in release


@pytest.mark.parametrize("aid", GRADED)
def test_wrong_answer_loses_its_marks(graded, aid):
    for student, changes in WRONG[aid].items():
        scores = graded[aid]["scores"][student]
        for cell, old, new in changes:
            item = cell.removesuffix("-solution")
            assert scores[item][0] == 0, f"{aid}: {student} ({old!r} -> {new!r}) still gets {scores[item]} on {item}"


@pytest.mark.parametrize("aid", GRADED)
def test_grading_one_submission_takes_under_two_minutes(graded, aid):
    assert graded[aid]["grade_s_per_submission"] < 120


@pytest.mark.parametrize("aid", sorted(PENDING))
def test_pending_chapter_builds_a_notebook_without_items(graded, aid):
    assert graded[aid]["summary"]["pending"]


@pytest.mark.parametrize("path", list(CHAPTERS.values()), ids=lambda p: p.stem)
def test_student_site_keeps_prompts_and_drops_solutions(path):
    nb = assignments.load(path)
    stripped = assignments.strip_solutions(nb)
    text = json.dumps(stripped)
    assert "BEGIN SOLUTION" not in text and "{admonition} Solution" not in text
    assert not any(assignments.is_graded(c) or assignments.is_solution(c) for c in stripped["cells"])
    before = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "Exercise" in "".join(c["source"])]
    after = [c for c in stripped["cells"] if c["cell_type"] == "markdown" and "Exercise" in "".join(c["source"])]
    assert len(after) == len(before)  # the exercises are still asked

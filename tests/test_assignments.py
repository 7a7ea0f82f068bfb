"""The autograder is tested like the rest of the course (utils/assignments.py, utils/grading.py, nbgrader).

For every chapter with graded items, built from the chapter notebook alone: the reference answers get
full marks; the blank student notebook gets zero on every item and runs to its end with no error outside
the items; a plausible wrong answer loses the marks of its item; answers that delegate to a course helper
the exercise forbids, or that fake a count, lose theirs (CHEATS); correct answers that print warnings or
progress bars keep theirs (NOISY). Each chapter is built and graded in a course directory of its own, two
chapters at a time. Then: a course directory in use is never deleted or polluted (build, check), chapters
are named by id, the scan of submissions flags kernel tampering, and the exchange cycle of a hub runs
for one chapter as the instructors' page describes it.

ASSIGNMENTS_NOTEBOOKS=DIR grades the chapter notebooks of DIR instead of notebooks/ (to try a change first).
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from utils import assignments, grading  # noqa: E402

NOTEBOOKS = Path(os.environ.get("ASSIGNMENTS_NOTEBOOKS") or assignments.NOTEBOOKS)
CHAPTERS = {assignments.assignment_id(p): p for p in assignments.chapters(NOTEBOOKS)}

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


# Answers that must lose their items (issue 21): {assignment: {submission: {solution cell: source}}}. Every
# item named loses all its points: a forbidden helper raises while the student's function runs, counts are
# checked by type, randomised answers by the property that matters.
_ALWAYS_EQUAL = """
class _AlwaysEqual(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__
"""
CHEATS = {
    "ch02": {"cheat": {
        "ch02-encode-solution": "def bpe_encode(text, merges):\n    return bpe.BPETokenizer(merges).encode(text).tolist()\n",
    }},
    "ch03": {"cheat": {
        "ch03-causal-solution": "def causal_attention(q, k, v):\n"
                                "    return F.scaled_dot_product_attention(q, k, v, is_causal=True)\n",
        "ch03-flops-solution": _ALWAYS_EQUAL + "\n\ndef training_flops_per_token(n_layer, d_model, n_ctx, n_vocab):\n"
                               "    return _AlwaysEqual(0)\n",
    }},
    "ch04a": {"cheat": {
        "ch04a-block-solution": "def pre_ln_block(block, h):\n    return block(h)\n",
        "ch04a-params-solution": "def block_params(d, bias):\n    config = GPTConfig(vocab_size=8, n_ctx=8, n_layer=1, "
                                 "n_head=1, n_embd=d, bias=bias)\n"
                                 "    return sum(p.numel() for p in reference.Block(config).parameters())\n",
    }},
    "ch04b": {"cheat": {
        "ch04b-lr-solution": "def learning_rate(step, lr, min_lr, warmup_iters, total_iters):\n"
                             "    tc_ = TrainConfig(lr=lr, min_lr=min_lr, warmup_iters=warmup_iters, max_iters=total_iters)\n"
                             "    return lr_at(step, tc_, total_iters)\n",
    }},
    "ch05": {"cheat": {
        "ch05-loglog-solution": "def fit_loglog(x, y):\n    fit = scaling.fit_power_law(x, y)\n    return fit.a, fit.b\n",
        "ch05-huber-solution": "def huber_loss(r, delta):\n    return scaling.huber(np.asarray(r, dtype=float), delta)\n",
        "ch05-bootstrap-solution": "def bootstrap_alpha(x, y, n_boot, seed):\n"
                                   "    fit = scaling.fit_saturating_power_law(x, y, n_bootstrap=n_boot, seed=seed)\n"
                                   "    return fit.alpha, fit.alpha_ci[0], fit.alpha_ci[1]\n",
    }},
    "ch06": {"cheat": {
        "ch06-flops-solution": _ALWAYS_EQUAL + "\n\ndef train_flops(n_layer, d, n_ctx, n_vocab):\n    return _AlwaysEqual(0)\n",
        "ch06-cluster-solution": "def cluster_weights(groups, rng):\n    return np.ones(len(groups), dtype=int)\n",
    }},
    "ch07": {"cheat": {
        "ch07-allocation-solution": "def chinchilla_allocation(C, consts):\n    best = scaling.compute_optimal(C, consts)\n"
                                    "    return best.N_opt, best.D_opt\n",
        "ch07-isoflop-solution": "def isoflop_loss(N, C, consts):\n"
                                 "    return scaling.chinchilla_loss(N, C / (6 * np.asarray(N, dtype=float)), consts)\n",
        "ch07-penalty-solution": "def misallocation_penalty(C, factor, consts):\n"
                                 "    best = scaling.compute_optimal(C, consts)\n    n = factor * best.N_opt\n"
                                 "    return float(scaling.chinchilla_loss(n, C / (6 * n), consts)) - best.loss\n",
    }},
}

# Correct answers that write to stderr (a NumPy warning, a progress bar) and must keep all their points:
# {assignment: {submission: [(solution cell, text of the reference answer, replacement)]}}.
NOISY = {
    "ch01": {"noisy": [
        ("ch01-temperature-solution",  # log(0) = -inf, with a divide-by-zero RuntimeWarning on stderr
         "    scaled = np.full(p.shape, -np.inf)\n    scaled[p > 0] = np.log(p[p > 0]) / tau\n",
         "    scaled = np.log(p) / tau\n"),
    ]},
    "ch05": {"noisy": [
        ("ch05-bootstrap-solution", "for _ in range(n_boot):", "for _ in tqdm(range(n_boot), desc=\"bootstrap\"):"),
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
    for student, answers in CHEATS.get(aid, {}).items():
        assignments.submit(out, aid, student, {**reference, **answers})
    for student, changes in NOISY.get(aid, {}).items():
        assignments.submit(out, aid, student, _mutate(reference, changes))
    t1 = time.perf_counter()
    assignments.autograde(out, aid)
    students = 2 + len(WRONG.get(aid, {})) + len(CHEATS.get(aid, {})) + len(NOISY.get(aid, {}))
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


@pytest.mark.parametrize("aid", sorted(CHEATS))
def test_answers_that_delegate_or_fake_a_count_lose_their_marks(graded, aid):
    for student, answers in CHEATS[aid].items():
        scores = graded[aid]["scores"][student]
        for cell in answers:
            item = cell.removesuffix("-solution")
            assert scores[item][0] == 0, f"{aid}: {student}'s answer to {item} still gets {scores[item]}"
        kept = {gid: s for gid, s in scores.items() if gid + "-solution" not in answers and s[0] != s[1]}
        assert not kept, f"{aid}: {student} lost points on items it answered honestly: {kept}"


@pytest.mark.parametrize("aid", sorted(NOISY))
def test_correct_answers_that_print_warnings_or_progress_bars_keep_their_marks(graded, aid):
    for student in NOISY[aid]:
        lost = {gid: s for gid, s in graded[aid]["scores"][student].items() if s[0] != s[1]}
        assert not lost, f"{aid}: {student} (correct, writes to stderr) loses points on {lost}"


def _students(out: Path) -> set[str]:
    with sqlite3.connect(out / "gradebook.db") as con:
        return {row[0] for row in con.execute("SELECT id FROM student")}


def test_build_refuses_to_delete_a_course_in_use(graded, tmp_path):
    out = graded["ch07"]["release"].parent.parent
    before = _students(out)
    with pytest.raises(ValueError, match="submitted/.*--keep.*--discard-grades"):
        assignments.build(out, [CHAPTERS["ch07"]])
    assert (out / "submitted" / "reference").is_dir() and _students(out) == before
    course = tmp_path / "course"
    (course / "feedback").mkdir(parents=True)
    (course / "feedback" / "x.html").write_text("report")
    (course / "grades.csv").write_text("student,score\n")
    found = assignments.grading_data(course)
    assert found == ["feedback/", "grades.csv"]
    rc = assignments.main(["build", "--out", str(course), "ch07"])
    assert rc == 2 and (course / "grades.csv").exists()


def test_check_grades_in_a_copy_and_leaves_the_course_alone(graded, capsys):
    out = graded["ch07"]["release"].parent.parent
    before = _students(out), sorted(p.name for p in (out / "submitted").iterdir())
    result = assignments.check(out, ["ch07"])["ch07"]
    assert result["reference"] == result["total"] > 0 and result["blank"] == 0
    assert (_students(out), sorted(p.name for p in (out / "submitted").iterdir())) == before


def test_chapters_are_named_by_id_and_unknown_ones_are_refused(tmp_path, capsys):
    assert assignments.resolve_chapters(["ch01", "4a", "07"], NOTEBOOKS) == [
        CHAPTERS["ch01"], CHAPTERS["ch04a"], CHAPTERS["ch07"]]
    assert assignments.resolve_chapters([str(CHAPTERS["ch05"])]) == [CHAPTERS["ch05"]]
    with pytest.raises(ValueError, match="there is no chapter 'ch99'; the chapters are ch01, "):
        assignments.resolve_chapters(["ch99"], NOTEBOOKS)
    assert assignments.main(["check", "--out", str(tmp_path), "ch99"]) == 2
    assert "no assignments.json" in capsys.readouterr().err


def test_scan_flags_an_input_transformer_and_passes_honest_work(graded, tmp_path):
    out = graded["ch03"]["release"].parent.parent
    trick = ("def causal_attention(q, k, v):\n    raise NotImplementedError()\n\n\n"
             "ip = get_ipython()\n"
             "ip.input_transformers_post.append(lambda lines: [ln.replace('assert ', 'pass  # ') for ln in lines])\n")
    cheat = assignments.submit(out, "ch03", "transformer", {"ch03-causal-solution": trick})
    honest = out / "submitted" / "reference"
    assert grading.scan([honest]) == []
    found = grading.scan([cheat])
    assert any("rewrites the code of later cells" in f for f in found), found
    done = subprocess.run([sys.executable, "-m", "utils.grading", "scan", str(out / "submitted")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "transformer" in done.stdout and "reference" not in done.stdout


def _nbgrader(args, cwd, exchange, **env):
    run_env = dict(os.environ, JUPYTER_PREFER_ENV_PATH="1", PYDEVD_DISABLE_FILE_VALIDATION="1", **env)
    run_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), run_env.get("PATH", "")])
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--Exchange.root={exchange}",
                           f"--CourseDirectory.course_id={assignments.COURSE_ID}"],
                          cwd=cwd, env=run_env, capture_output=True, text=True)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_the_exchange_cycle_of_the_instructors_page(tmp_path):
    """release -> fetch -> submit -> collect -> autograde -> generate, release and fetch feedback, with a
    shared exchange created as the page says (world-writable, sticky), for Chapter 7; feedback leaves the
    hidden tests out when the generated config's ClearHiddenTests lines are switched on."""
    course, student, exchange = tmp_path / "course", tmp_path / "student", tmp_path / "exchange"
    exchange.mkdir(mode=0o1777)
    os.chmod(exchange, 0o1777)
    student.mkdir()
    assignments.build(course, [CHAPTERS["ch07"]])
    config = course / "nbgrader_config.py"
    text = config.read_text(encoding="utf-8")
    assert '# c.Exchange.root = "/srv/nbgrader/exchange"' in text and "c.IgnorePattern.enabled = True" in text
    switched = text.replace("# c.GenerateFeedback.preprocessors", "c.GenerateFeedback.preprocessors").replace(
        "#                                     \"nbconvert", "                                     \"nbconvert")
    config.write_text(switched, encoding="utf-8")
    _nbgrader(["release_assignment", "ch07"], course, exchange)
    _nbgrader(["fetch_assignment", "ch07"], student, exchange)
    fetched = next((student / "ch07").glob("*.ipynb"))
    nb = assignments.load(fetched)
    reference = assignments.solutions(course, "ch07")
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in reference:
            cell["source"] = reference[gid]
    assignments._write(fetched, nb)
    _nbgrader(["submit", "ch07"], student, exchange)
    _nbgrader(["collect", "ch07"], course, exchange)
    _nbgrader(["autograde", "ch07"], course, exchange, COURSE_PROGRESS="0")
    got = assignments.scores(course, "ch07")
    assert len(got) == 1 and all(s == m for s, m in next(iter(got.values())).values()), got
    _nbgrader(["generate_feedback", "ch07"], course, exchange)
    _nbgrader(["release_feedback", "ch07"], course, exchange)
    _nbgrader(["fetch_feedback", "ch07"], student, exchange)
    reports = list((student / "ch07" / "feedback").rglob("*.html"))
    assert reports, "no feedback fetched"
    html = reports[0].read_text(encoding="utf-8")
    assert "BEGIN HIDDEN TESTS" not in html and "BESIROGLU_2024" not in html  # a name only the hidden tests use
    assert "chinchilla_allocation" in html

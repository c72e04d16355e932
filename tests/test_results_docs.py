"""The results store and the docs generated from it: every results file records its command, every generated table
is current (regenerated in a temp copy and compared), and a stale table or a missing command fails the check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments import report, rerun
from mft_jax import io

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def copy(tmp_path):
    """README.md, docs/index.md, docs/results/ and results/ copied to a temp root (the generator may write there)."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "index.md", tmp_path / "docs" / "index.md")
    shutil.copytree(ROOT / "docs" / "results", tmp_path / "docs" / "results")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    return tmp_path


def test_every_results_file_records_a_command():
    results = report.Results(ROOT / "results")
    assert results.files(), "no results files"
    assert report.missing_commands(results) == []


def test_generated_tables_are_current(copy):
    assert report.main(["--root", str(copy)]) == 0
    for path in report.documents(copy):
        original = ROOT / path.relative_to(copy)
        assert path.read_text() == original.read_text(), f"{original} is stale: run `python -m experiments.report`"
    assert report.main(["--root", str(copy), "--check"]) == 0


def test_a_changed_result_makes_its_table_stale(copy, capsys):
    """Wrong twin: the clover theory loss 10% off in its results file must make the docs stale."""
    path = copy / "results" / "clover" / "main.json"
    data = json.loads(path.read_text())
    data["theory"]["loss"] *= 1.1
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "stale" in capsys.readouterr().err


def test_a_results_file_without_a_command_fails_the_check(copy, capsys):
    path = copy / "results" / "linear" / "main.json"
    data = json.loads(path.read_text())
    del data["meta"]["command"], data["meta"]["argv"]
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "no command" in capsys.readouterr().err


def test_an_unknown_table_name_is_reported(copy, capsys):
    (copy / "docs" / "results" / "extra.md").write_text("<!-- table:no_such_table -->\n<!-- /table:no_such_table -->\n")
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "no_such_table" in capsys.readouterr().err


def test_rerun_reads_the_recorded_command(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"meta": {"argv": ["python", "-m", "experiments.linear", "--quick"]}}))
    [argv] = rerun.commands(path)
    assert argv[1:] == ["-m", "experiments.linear", "--quick"]
    path.write_text(json.dumps({"meta": {"commands": ["python -m a --x 1", "python -m b"]}}))
    assert [c[1:] for c in rerun.commands(path)] == [["-m", "a", "--x", "1"], ["-m", "b"]]
    path.write_text(json.dumps({"meta": {}}))
    assert rerun.main([str(path)]) == 2


def test_run_metadata_records_the_command():
    meta = io.run_metadata({"a": 1}, 0, argv=["--quick", "--config", "x.toml"])
    assert meta["argv"][-3:] == ["--quick", "--config", "x.toml"] and meta["command"].endswith("--quick --config x.toml")
    assert io.CODE_PATHS == ("mft_jax", "experiments", "benchmarks", "configs")


def test_checked_pages_have_no_typed_numbers():
    """Every decimal in the prose of a checked page is generated (a ``value:``/``table:`` span), code, or a setting;
    every generated document is checked (no page is pending; a new results page is checked too)."""
    pages = {path.relative_to(ROOT).as_posix() for path in report.checked(ROOT)}
    assert {"README.md", "docs/index.md", "docs/results/index.md", "docs/results/modular_grokking.md",
            "docs/results/teacher_student.md", "docs/results/dynamics.md"} <= pages
    assert report.PENDING == () and pages == {path.relative_to(ROOT).as_posix() for path in report.documents(ROOT)}
    for path in report.checked(ROOT):
        assert report.typed_numbers(path.read_text()) == [], path


def test_a_changed_teacher_student_result_makes_its_value_stale(copy, capsys):
    """Wrong twin: the scale-1/2 kernel-regression theory 10% off in its results file changes the generated gap."""
    path = copy / "results" / "teacher_student" / "theory_scale0.5_4096.json"
    data = json.loads(path.read_text())
    data["scales"]["1/2"]["training_set_theory"]["points"][0]["f3_kernel_regression"] *= 1.1
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "teacher_student.md: generated tables are stale" in capsys.readouterr().err


def test_a_typed_number_in_prose_is_caught(copy, capsys):
    """Wrong twin: a generated value replaced by the same number typed by hand fails the check; settings do not."""
    assert report.typed_numbers("at beta = 0.5, h = 0.01 and sigma^2 = 0.25, 0.5 the run `--lr 0.3` took ~1.5 min") == []
    assert report.typed_numbers("the loss is <!-- value:x -->0.52<!-- /value:x --> here") == []
    assert len(report.typed_numbers("the loss is 0.52 here, 1.7e5 there")) == 2
    page = copy / "docs" / "results" / "linear.md"
    text = page.read_text()
    typed = report.MARKER.sub(lambda m: m.group("body") if m.group("name") == "linear_g_infinity" else m.group(0), text)
    assert typed != text
    page.write_text(typed)
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "typed by hand" in capsys.readouterr().err
    page.write_text(text)
    (copy / "docs" / "results" / "new_page.md").write_text("A new page: the loss is 0.52.\n")
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "new_page.md: number typed by hand" in capsys.readouterr().err


def test_a_changed_result_makes_its_value_stale(copy, capsys):
    """Wrong twin for ``value:`` spans: g* at beta -> infinity 10% off in its results file makes the linear page stale."""
    path = copy / "results" / "linear" / "main.json"
    data = json.loads(path.read_text())
    data["g_infinity"] *= 1.1
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "linear.md: generated tables are stale" in capsys.readouterr().err


def test_value_lookup_and_an_unknown_value_name(copy, capsys):
    assert report.lookup({"a": [{"b": 1.5}, {"b": 2.5}]}, "a.-1.b") == 2.5
    g = json.loads((copy / "results" / "linear" / "main.json").read_text())["g_infinity"]
    assert report.Value("linear/main", "g_infinity", ".2f")(report.Results(copy / "results")) == f"{g:.2f}"
    (copy / "docs" / "results" / "extra.md").write_text("x <!-- value:no_such_value -->1<!-- /value:no_such_value -->\n")
    assert report.main(["--root", str(copy), "--check"]) == 1
    assert "no generator for value 'no_such_value'" in capsys.readouterr().err


def test_a_changed_dynamics_result_makes_its_page_and_the_index_stale(copy, capsys):
    """Wrong twin for the training-dynamics page: the clover networks' max |z| at the largest width 10% off makes the
    page's table and the experiments index (README, site home) stale; a law distance 10% off changes the page."""
    path = copy / "results" / "dynamics" / "default.json"
    original = path.read_text()
    data = json.loads(original)
    data["settings"]["clover"]["networks"][-1]["loss"]["max_abs_z"] *= 1.1
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    err = capsys.readouterr().err
    assert all(f"{page}: generated tables are stale" in err for page in ("README.md", "index.md", "dynamics.md"))
    data = json.loads(original)
    data["settings"]["teacher_student"]["networks"][0]["laws"][-1]["distance"] *= 1.1
    path.write_text(json.dumps(data))
    assert report.main(["--root", str(copy), "--check"]) == 1
    err = capsys.readouterr().err
    assert "dynamics.md: generated tables are stale" in err and "README.md" not in err


def test_a_changed_grokking_dynamics_result_makes_its_page_stale(copy, capsys):
    """Wrong twin for the grokking-in-time section: the theory's end level at the largest M 10% off, or one network
    seed's grokking time 10% off, makes docs/results/dynamics.md stale."""
    path = copy / "results" / "dynamics" / "grokking.json"
    original = path.read_text()
    for change in ("theory", "networks"):
        data = json.loads(original)
        fraction = data["fractions"][-1]
        if change == "theory":
            fraction["theory"][-1]["test_loss_relative"][-1] *= 1.1
        else:
            crossing = fraction["networks"][0]["grokking_time"]["1"]
            crossing["mean"] *= 1.1
        path.write_text(json.dumps(data))
        assert report.main(["--root", str(copy), "--check"]) == 1
        assert "dynamics.md: generated tables are stale" in capsys.readouterr().err

"""tools/readme_tables.py: README tables generated from benchmark result files, and its --check."""

import importlib.util
import json
import os

import pytest

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "readme_tables.py")
spec = importlib.util.spec_from_file_location("readme_tables", TOOL)
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

MACHINE = {"cpu": "AMD EPYC", "cpu_family": "25", "cpu_model": "17", "flags": ["avx2", "avx512f"], "cores": 2,
           "threads": 2, "torch": "2.13.0+cpu", "transformers": "4.57.6", "onnxruntime": "1.32.0"}
ROOFLINE = {"MKL sgemm (torch.matmul)": 188.4, "oneDNN fp32 (prepacked)": 437.6}
RESULTS = "benchmarks/results/bench_peers_amd-epyc_abc1234_base.json"
MARKER = f"<!-- table: cpu-roofline {RESULTS} -->"


def write_results(folder, roofline=ROOFLINE, path=RESULTS, date="2026-12-04T20:00:00+00:00"):
    record = {"script": "bench_peers", "variant": "base", "command": "python benchmarks/bench_peers.py --rounds 5",
              "date": date, "commit": "abc1234", "dirty": False, "uncommitted": [],
              "machine": MACHINE, "load_average": [1.0, 1.2, 0.9], "settings": {"size": "base"}, "rows": [],
              "roofline_gflop_s": roofline}
    path = folder / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def readme(folder, body=""):
    path = folder / "README.md"
    path.write_text(f"# Speed\n\n{MARKER}\n{body}<!-- /table -->\n\nAfter.\n")
    return path


def test_a_results_file_becomes_the_table_with_its_source(tmp_path):
    write_results(tmp_path)
    path = readme(tmp_path)
    assert readme_tables.main(["--readme", str(path)]) == 0
    assert path.read_text() == (
        f"# Speed\n\n{MARKER}\n"
        "| backend | GFLOP/s |\n"
        "|---|---|\n"
        "| MKL sgemm (torch.matmul) | 188 |\n"
        "| oneDNN fp32 (prepacked) | 438 |\n"
        "\n"
        "Generated from benchmarks/results/ by tools/readme_tables.py. Machine: AMD EPYC (family 25, model 17), 2\n"
        "cores, 2 threads, avx2 avx512f; torch 2.13.0+cpu, transformers 4.57.6, onnxruntime 1.32.0. Files:\n"
        "`bench_peers_amd-epyc_abc1234_base.json` (commit abc1234, 2026-12-04, `python benchmarks/bench_peers.py\n"
        "--rounds 5`, load average 1.0 / 1.2 / 0.9 (1 / 5 / 15 min) as it ended).\n"
        "<!-- /table -->\n\nAfter.\n")
    assert readme_tables.main(["--readme", str(path), "--check"]) == 0


def test_check_fails_on_a_stale_table_and_names_it(tmp_path, capsys):
    write_results(tmp_path)
    path = readme(tmp_path)
    readme_tables.main(["--readme", str(path)])
    write_results(tmp_path, {**ROOFLINE, "oneDNN fp32 (prepacked)": 400.0})  # a new run, the README not rewritten
    before = path.read_text()
    assert readme_tables.main(["--readme", str(path), "--check"]) == 1
    assert "table cpu-roofline (bench_peers_amd-epyc_abc1234_base.json) differs" in capsys.readouterr().err
    assert path.read_text() == before  # --check writes nothing


@pytest.mark.parametrize("marker, error", [
    ("<!-- table: cpu-roofline benchmarks/results/missing.json -->", "missing.json"),
    ("<!-- table: no-such-kind benchmarks/results/missing.json -->", "unknown table kind 'no-such-kind'"),
])
def test_a_marker_that_names_nothing_usable_fails(tmp_path, capsys, marker, error):
    path = tmp_path / "README.md"
    path.write_text(f"{marker}\n<!-- /table -->\n")
    assert readme_tables.main(["--readme", str(path), "--check"]) == 1
    assert error in capsys.readouterr().err


def test_latest_points_a_marker_at_the_newest_run_of_its_kind(tmp_path):
    write_results(tmp_path)
    newer = "benchmarks/results/bench_peers_amd-epyc_def5678_base.json"
    write_results(tmp_path, {"MKL sgemm (torch.matmul)": 190.0}, newer, date="2026-12-05T08:00:00+00:00")
    path = readme(tmp_path)
    assert readme_tables.main(["--readme", str(path), "--latest"]) == 0
    text = path.read_text()
    assert f"<!-- table: cpu-roofline {newer} -->" in text and "| MKL sgemm (torch.matmul) | 190 |" in text


def test_the_serve_table_gives_each_servers_cells_goals_and_the_ceilings():
    cell = {"requests_s": 1.0, "p95_ms": 1.0, "p99_ms": 1.0}
    rows = [{"server": "serve fp32 b2", "clients": 1, "tokens_s": 633.4, "p50_ms": 67.5, "errors": 0, **cell},
            {"server": "serve fp32 b2", "clients": 64, "tokens_s": 848.0, "p50_ms": 3676.2, "errors": 1, **cell},
            {"server": "fastapi+hf", "clients": 1, "tokens_s": 526.0, "p50_ms": 79.3, "errors": 0, **cell},
            {"server": "fastapi+hf", "clients": 64, "tokens_s": 484.0, "p50_ms": 5289.0, "errors": 2, **cell},
            {"server": "ceiling fp32", "tokens_s": 903.0, "single_ms": 55.5}]
    goals = [{"server": "serve fp32 b2", "clients": 64, "share_of_ceiling": 0.93, "vs_fastapi_hf": 1.8,
              "p50_vs_one_call": 1.22}]
    record = {"settings": {"clients": [1, 64]}, "rows": rows, "goals": goals}
    assert readme_tables.serve_table([record]) == [
        "| server | useful tokens/s at 1 / 64 clients | p50 ms at 1 / 64 clients | errors | of the ceiling at 64 clients "
        "| x FastAPI + transformers at 64 clients | 1-client p50 / one pipeline call |",
        "|---|---|---|---|---|---|---|",
        "| serve fp32 b2 | 633 / 848 | 68 / 3676 | 1 | 93% | 1.80x | 1.22x |",
        "| fastapi+hf | 526 / 484 | 79 / 5289 | 2 |  |  |  |",
        "| ceiling fp32 (offline pipeline, batches of 32) | 903 | one call on one text: 56 |  |  |  |  |"]


def test_the_source_names_the_allocator_a_run_records():
    record = {"path": "r/bench_serve_x_base.json", "commit": "abc1234", "date": "2026-12-05T03:00:00+00:00"}
    assert readme_tables.source_text(record) == "`bench_serve_x_base.json` (commit abc1234, 2026-12-05)"
    assert readme_tables.source_text({**record, "allocator": "tcmalloc"}) == (
        "`bench_serve_x_base.json` (commit abc1234, 2026-12-05, tcmalloc malloc)")

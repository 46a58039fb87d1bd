"""The mutation report: reports/mutation/mutants.csv (every mutant) and summary.csv (per folder), from the
mutmut results of ``scripts/mutation`` in build/mutation/<target>/, with the hand-written verdicts of
reports/mutation/annotations.csv (equivalent mutants, each with its one-line reason; a survivor's reason; a
survivor killed by a test written after the run, re-judged by ``scripts/mutation_rerun.py`` the way mutmut judges,
with the killing test). The sample's survivors are re-judged by mutmut itself (named to ``scripts/mutation``).

    python scripts/mutation_report.py            # write the report from the finished runs
    python scripts/mutation_report.py --verify   # the staged mutants are what the tests import

Outcome (mutmut's exit-code classes): ``killed`` (a selected test failed), ``survived`` (every test that
calls the mutated function passed), ``no tests`` (no selected test calls it), ``timeout``, ``suspicious``,
``segfault``; a ``survived`` mutant listed as equivalent in annotations.csv becomes ``equivalent``.
``not checked``: the run was stopped before it reached the mutant. Catch rate of a folder:
(killed + timeout) / (checked − equivalent), ``no tests`` counting as not caught. Where a target was judged
on a seeded uniform sample (``scripts/mutation sample``, ``<stage>/SAMPLE``), the sample's rate and its
Wilson 95 % interval estimate the whole folder's.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "build" / "mutation"
OUT = ROOT / "reports" / "mutation"
TARGETS = ("scratchnet", "core", "diagnosis")
#: staged path prefix -> the repository's folder it is a copy of
REPO_PATH = {"scratchnet/": "scratchnet/", "scratchnet_reference/": "reference/"}
COLUMNS = ["id", "folder", "file", "line", "function", "mutation", "outcome", "in_sample", "reason"]


def _collect(stage: Path) -> list[dict[str, str]]:
    """Every mutant of one staged run (runs inside the stage: mutmut reads its config from the cwd)."""
    os.chdir(stage)
    from mutmut.mutation.data import MutantLineSpans, SourceFileMutationData
    from mutmut.mutation.diff_apply import generated_function_names, get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    rows = []
    for path in sorted(walk_mutatable_files()):
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            continue
        source = Path(path).read_text(encoding="utf-8")
        lines = source.splitlines()
        spans = _function_spans(ast.parse(source))
        index = MutantLineSpans.load(path)
        mutated = (Path("mutants") / path).read_text(encoding="utf-8").splitlines(keepends=True)
        for key, code in sorted(data.exit_code_by_key.items(), key=lambda kv: _natural(kv[0])):
            function, cls = orig_function_and_class_names_from_key(key)
            function = function.rpartition(".")[-1]
            names = generated_function_names(key)
            if index is not None and all(n in index.span_by_function_name for n in names):
                # the two generated functions' text from mutmut's line index, the generated names made
                # equal (a plain text diff: ~50× faster than parsing each pair as get_diff_for_mutant does)
                orig, mutant = ("".join(mutated[index.span_by_function_name[n].start - 1:
                                                index.span_by_function_name[n].end]).replace(n, function)
                                for n in names)
                diff = list(difflib.unified_diff(orig.splitlines(), mutant.splitlines(), lineterm=""))
            else:
                diff = get_diff_for_mutant(key, path=path).splitlines()
            removed = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
            added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
            start, end = spans.get((cls, function), (1, len(lines)))
            line = _line_of(lines, start, end, removed)
            rows.append({"id": key, "file": str(path), "line": str(line),
                         "function": f"{cls}.{function}" if cls else function,
                         "mutation": _describe(removed, added), "outcome": status_by_exit_code[code]})
    return rows


def _natural(key: str) -> tuple[str, int]:
    name, _, number = key.rpartition("__mutmut_")
    return name, int(number) if number.isdigit() else 0


def _function_spans(tree: ast.Module) -> dict[tuple[str | None, str], tuple[int, int]]:
    spans: dict[tuple[str | None, str], tuple[int, int]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans[(None, node.name)] = (node.lineno, node.end_lineno or node.lineno)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[(node.name, item.name)] = (item.lineno, item.end_lineno or item.lineno)
    return spans


def _line_of(lines: list[str], start: int, end: int, removed: list[str]) -> int:
    """The source line of the first line the mutation changed (the function's first line if none)."""
    if removed:
        target = removed[0].strip()
        for number in range(start, end + 1):
            if lines[number - 1].strip() == target:
                return number
    return start


def _describe(removed: list[str], added: list[str]) -> str:
    """``old → new`` of the changed text: the common head and tail of the two versions cut away."""
    old, new = " ".join(s.strip() for s in removed), " ".join(s.strip() for s in added)
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    # widen to whole tokens so that `<=` → `<` does not read as `=` → ``
    while head > 0 and (old[head - 1].isalnum() or old[head - 1] in "_<>=!."):
        head -= 1
    while tail > 0 and (old[len(old) - tail].isalnum() or old[len(old) - tail] in "_<>=!"):
        tail -= 1
    cut_old, cut_new = old[head:len(old) - tail], new[head:len(new) - tail]
    return f"{cut_old.strip() or '(nothing)'} → {cut_new.strip() or '(removed)'}"[:200]


def _folder(staged_file: str) -> str:
    for staged, repo in REPO_PATH.items():
        if staged_file.startswith(staged):
            rest = staged_file[len(staged):]
            return repo + rest.split("/")[0] + "/" if repo == "reference/" else repo
    return staged_file


def _repo_file(staged_file: str) -> str:
    for staged, repo in REPO_PATH.items():
        if staged_file.startswith(staged):
            return repo + staged_file[len(staged):]
    return staged_file


def _annotations() -> dict[str, tuple[str, str]]:
    path = OUT / "annotations.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row["id"]: (row["verdict"], row["note"]) for row in csv.DictReader(f)}


def _stage_meta(stage: Path) -> dict[str, str]:
    commit = (stage / "COMMIT").read_text().split()
    return {"commit": commit[0], "dirty": "dirty" in commit}


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95 % for z = 1.96)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rates(rows: list[dict[str, str]], prefix: str = "") -> dict[str, object]:
    """Counts by outcome and the catch rate (killed + timeout) / (judged − equivalent), ``no tests`` counting
    as not caught; with ``prefix`` (a sample) also its Wilson 95 % interval."""
    counts = Counter(r["outcome"] for r in rows)
    checked = len(rows) - counts["not checked"]
    caught = counts["killed"] + counts["timeout"]
    judged = checked - counts["equivalent"]
    out = {"mutants": len(rows), "checked": checked, "killed": counts["killed"], "timeout": counts["timeout"],
           "survived": counts["survived"], "no_tests": counts["no tests"], "equivalent": counts["equivalent"],
           "not_checked": counts["not checked"],
           "other": checked - sum(counts[k] for k in ("killed", "timeout", "survived", "no tests", "equivalent")),
           "catch_rate": f"{caught / judged:.4f}" if judged else ""}
    if prefix:
        low, high = _wilson(caught, judged) if judged else (0.0, 0.0)
        out |= {"ci95_low": f"{low:.4f}" if judged else "", "ci95_high": f"{high:.4f}" if judged else ""}
    return {prefix + k: v for k, v in out.items()}


def write_report(allow_dirty: bool = False) -> None:
    rows: list[dict[str, str]] = []
    commits, samples = {}, set()
    for target in TARGETS:
        stage = STAGES / target
        if not (stage / "mutants").is_dir():
            print(f"no run in {stage}: {target} left out of the report", file=sys.stderr)
            continue
        commits[target] = _stage_meta(stage)
        if commits[target]["dirty"] and not allow_dirty:
            sys.exit(f"{stage} was staged from a tree with uncommitted changes: commit, rerun, or --allow-dirty")
        if (stage / "SAMPLE").exists():
            samples |= set((stage / "SAMPLE").read_text(encoding="utf-8").split())
        found = subprocess.run([sys.executable, __file__, "--collect", str(stage)], check=True,
                               capture_output=True, text=True).stdout
        rows += json.loads(found)
    notes = _annotations()
    unknown = set(notes) - {r["id"] for r in rows}
    if unknown:
        sys.exit(f"annotations.csv names mutants that the runs do not have: {sorted(unknown)[:5]}")
    for row in rows:
        verdict, note = notes.get(row["id"], ("", ""))
        if verdict == "equivalent" and row["outcome"] in ("killed", "timeout"):
            sys.exit(f"{row['id']} is annotated equivalent but was {row['outcome']}: a test tells it apart")
        if verdict in ("equivalent", "killed") and row["outcome"] == "survived":
            # killed: a survivor of mutmut's run re-judged the way mutmut judges (scripts/mutation_rerun.py, in
            # the stage, MUTANT_UNDER_TEST set) against the test written for it, named in the note
            row["outcome"], note = verdict, note if verdict == "equivalent" else f"re-run by hand, failed: {note}"
        row["reason"] = note if row["outcome"] in ("equivalent", "survived") or verdict == "killed" else ""
        row["in_sample"] = "yes" if row["id"] in samples else ""
        row["folder"] = _folder(row["file"])
        row["file"] = _repo_file(row["file"])
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "mutants.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    summary = []
    for folder in sorted({r["folder"] for r in rows}):
        mine = [r for r in rows if r["folder"] == folder]
        sampled = [r for r in mine if r["in_sample"]]
        summary.append({"folder": folder, **_rates(mine), "sample": len(sampled),
                        **{k: v for k, v in _rates(sampled, "sample_").items() if k != "sample_mutants"}})
    with (OUT / "summary.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(summary)
    meta = {"commits": commits, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version()}
    (OUT / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for s in summary:
        print(s)
    print(meta)


def verify() -> None:
    """Inside each stage's mutants/ (as mutmut lays out sys.path), the packages the tests import are the
    mutated copies: their files lie under mutants/ and carry mutmut's trampolines."""
    probe = ("import sys, importlib; sys.path.insert(0, '.');\n"
             "for name in sys.argv[1:]:\n"
             "    m = importlib.import_module(name); f = m.__file__\n"
             "    assert f.startswith(sys.path[0]) or '/mutants/' in f, (name, f)\n"
             "    assert 'mutmut generated' in open(f).read(), (name, f, 'not mutated')\n"
             "    print('mutated:', name, f)\n")
    modules = {"scratchnet": ["scratchnet.activations", "scratchnet.losses", "scratchnet.network"],
               "core": ["scratchnet_reference.core.compare", "scratchnet_reference.core.tolerances",
                        "scratchnet_reference.core.stable"]}
    for target, names in modules.items():
        mutants = STAGES / target / "mutants"
        subprocess.run([sys.executable, "-c", probe, *names], cwd=mutants, check=True)


def draw_sample(stage: Path, size: int, seed: int) -> list[str]:
    """A seeded uniform sample of ``size`` of the stage's mutants, whatever their state (an unbiased estimate
    of the folder's catch rate: its interval is in the summary), written to ``<stage>/SAMPLE`` for the report.
    Returns the ones a run must judge: not yet judged, ``no tests``, and survivors not annotated equivalent
    (re-judged against the tests as they are now); a killed verdict, and a survivor's equivalence, stand until
    the function's source changes (mutmut then resets the verdict)."""
    import random

    metas = [m for m in (stage / "mutants").rglob("*.py.meta")   # a source file that is gone leaves its .meta
             if (stage / m.relative_to(stage / "mutants").with_suffix("")).exists()]
    codes = {key: code for meta in metas
             for key, code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items()}
    equivalent = {key for key, (verdict, _) in _annotations().items() if verdict == "equivalent"}
    if not codes:
        sys.exit(f"no mutants laid out in {stage}: run MUTATION_GENERATE_ONLY=1 scripts/mutation first")
    sample = sorted(random.Random(seed).sample(sorted(codes), min(size, len(codes))))
    (stage / "SAMPLE").write_text("".join(f"{k}\n" for k in sample), encoding="utf-8")
    return [k for k in sample if codes[k] in (None, 33) or (codes[k] == 0 and k not in equivalent)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", metavar="STAGE", help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help="check that the staged mutants are what is imported")
    parser.add_argument("--draw-sample", metavar="TARGET",
                        help="draw a uniform sample of TARGET's mutants; print those still to judge")
    parser.add_argument("--sample", type=int, default=600)
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--allow-dirty", action="store_true", help="report stages staged from an uncommitted tree")
    args = parser.parse_args()
    if args.draw_sample:
        print("\n".join(draw_sample(STAGES / args.draw_sample, args.sample, args.seed)))
    elif args.collect:
        print(json.dumps(_collect(Path(args.collect))))
    elif args.verify:
        verify()
    else:
        write_report(args.allow_dirty)


if __name__ == "__main__":
    main()

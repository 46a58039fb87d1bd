"""The teacher's course file: the course's own names for the suite's ops, what is required, the hint
level per check, points, limits. TOML (``course.toml``) or JSON, every key optional::

    required = ["softmax", "softmax_backward", "cross_entropy", "cross_entropy_grad"]
    files = ["*.py"]                 # which of a submission's files are imported (default: every .py
                                     # except test_*.py)
    max_examples = 8                 # hypothesis draws per op, target form and reduction

    [names]                          # suite op name = the course's name(s), first one found wins
    sigmoid_backward = [
        "sigmoid_backward",                                            # the suite's own (z, a, g)
        { function = "sigmoid_prime", args = ["z"], times = "g" },     # g · sigmoid_prime(z)
        { function = "sigmoid_backward", cache_from = "sigmoid_forward" },  # CS231n: (dout, cache)
    ]
    softmax = { function = "softmax_forward", output = 0 }            # returns (out, cache)

    [classes]                        # classes whose methods are the ops, with constructor arguments
    TwoLayerNet = [4, 5, 3]          # (a W1/b1/W2/b2 network written as one class)

    [network]
    adapter = "course_adapter.py:make_implementation"   # beside this file; it imports the student's
                                                        # module by name (the submission is on sys.path)
    max_cases = 2

    [hints]                          # symptom | concept | formula, per check or as the default
    default = "concept"
    softmax_backward = "symptom"

    [points]
    default = 1
    softmax_backward = 2

    [limits]
    seconds = 60                     # wall time of one submission's process
    memory_mb = 4096                 # its address space (RLIMIT_AS)

    [gradescope]
    visibility = "visible"           # hidden | after_due_date | after_published | visible

A name entry calls the course's ``function`` with the suite's arguments named in ``args`` (default:
the op's own, e.g. ``(z, a, g)``), multiplies the result by the suite argument ``times`` (a
derivative ``f'(z)`` becomes the backward ``f'(z)·g``), takes element ``output`` of a tuple result,
or — ``cache_from`` — calls ``function(g, cache)`` with ``cache`` the second value the course's
forward returns on the op's inputs (CS231n's ``(out, cache)`` / ``(dout, cache)``).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Course", "Alias", "CourseError", "HINT_LEVELS", "VISIBILITIES", "load_course"]

HINT_LEVELS = ("symptom", "concept", "formula")
#: Gradescope's visibility values (autograder specification, results.json)
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
_KEYS = {"required", "files", "max_examples", "seed", "names", "classes", "network", "hints", "points", "limits",
         "gradescope"}


class CourseError(ValueError):
    """A course file that cannot be used; the message names the key, what was expected and what came."""


@dataclass(frozen=True)
class Alias:
    """One way the course may name an op (see the module docstring)."""

    function: str
    args: tuple[str, ...] | None = None
    times: str = ""
    output: int | None = None
    cache_from: str = ""


@dataclass
class Course:
    required: tuple[str, ...] = ()
    files: tuple[str, ...] = ("*.py",)
    max_examples: int = 8
    seed: int | None = None
    names: dict[str, tuple[Alias, ...]] = field(default_factory=dict)
    classes: dict[str, list] = field(default_factory=dict)
    adapter: str = ""
    max_cases: int = 2
    hints: dict[str, str] = field(default_factory=dict)
    points: dict[str, float] = field(default_factory=dict)
    seconds: float = 60.0
    memory_mb: int = 4096
    visibility: str = "visible"
    source: str = ""

    def hint(self, check: str) -> str:
        return self.hints.get(_base(check), self.hints.get("default", "concept"))

    def points_for(self, check: str) -> float:
        return float(self.points.get(_base(check), self.points.get("default", 1.0)))

    def imports(self, relative: str) -> bool:
        """Whether a submission's file (a path relative to the submission) is imported."""
        name = Path(relative).name
        return name.endswith(".py") and not name.startswith("test_") and \
            any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in self.files)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Course:
        names = {k: tuple(Alias(**{**a, "args": tuple(a["args"]) if a["args"] is not None else None}) for a in v)
                 for k, v in data.get("names", {}).items()}
        return cls(**{**data, "names": names, "required": tuple(data["required"]), "files": tuple(data["files"])})


def _base(check: str) -> str:
    return check.split(" ")[0] if not check.startswith("network ") else "network"


def _expect(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CourseError(f"{where} must be {what}, got {type(value).__name__} {value!r}")
    return value


def _alias(where: str, value: Any, ops: tuple[str, ...], op_args: Any) -> Alias:
    if isinstance(value, str):
        return Alias(value)
    _expect(where, value, dict, "a function name or a table {function, args, times, output, cache_from}")
    unknown = set(value) - {"function", "args", "times", "output", "cache_from"}
    if unknown:
        raise CourseError(f"{where} has unknown keys {sorted(unknown)} (known: function, args, times, output, "
                          "cache_from)")
    function = _expect(f"{where}.function", value.get("function"), str, "the course's function name")
    args = value.get("args")
    suite_args = op_args(where.split("[")[0].split(".")[-1])
    if args is not None:
        _expect(f"{where}.args", args, list, f"a list of the op's arguments {list(suite_args)}")
        bad = [a for a in args if a not in suite_args]
        if bad:
            raise CourseError(f"{where}.args names {bad}, but the op's arguments are {list(suite_args)}")
        args = tuple(args)
    times = value.get("times", "")
    if times and times not in suite_args:
        raise CourseError(f"{where}.times must be one of the op's arguments {list(suite_args)}, got {times!r}")
    output = value.get("output")
    if output is not None:
        _expect(f"{where}.output", output, int, "an index into the tuple the function returns")
    cache_from = value.get("cache_from", "")
    if cache_from and "g" not in suite_args:
        raise CourseError(f"{where}.cache_from is for a backward (dout, cache); this op takes {list(suite_args)}")
    return Alias(function, args, times, output, cache_from)


def load_course(path: str | Path | None) -> Course:
    """The course file at ``path`` (``.toml`` or ``.json``); ``None``: the defaults (the suite's own
    names, every op found graded)."""
    from .harness import op_arguments, op_names

    if path is None:
        return Course()
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"--course {str(path)!r}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                raise CourseError(f"--course {path}: reading TOML needs Python ≥ 3.11; write it as JSON") from None
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise CourseError(f"--course {path}: cannot be parsed ({exc})") from None
    _expect(f"--course {path}", data, dict, "a table of settings")
    unknown = set(data) - _KEYS
    if unknown:
        raise CourseError(f"--course {path}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(_KEYS))})")
    ops = op_names()

    def op_name(where: str, name: str) -> str:
        if name not in ops:
            import difflib

            close = difflib.get_close_matches(name, ops, n=3)
            raise CourseError(f"{where}: {name!r} is not an op name" + (f" (did you mean {', '.join(close)}?)"
                                                                        if close else ""))
        return name

    course = Course(source=str(path))
    course.required = tuple(op_name("required", n) for n in _expect("required", data.get("required", []), list,
                                                                      "a list of op names"))
    course.files = tuple(_expect("files", data.get("files", ["*.py"]), list, "a list of file patterns"))
    course.max_examples = int(_expect("max_examples", data.get("max_examples", 8), int, "a whole number ≥ 1"))
    if course.max_examples < 1:
        raise CourseError(f"max_examples must be ≥ 1, got {course.max_examples}")
    seed = data.get("seed")
    course.seed = None if seed is None else int(_expect("seed", seed, int, "a whole number"))
    for name, value in _expect("names", data.get("names", {}), dict, "a table {op: names}").items():
        op_name(f"names.{name}", name)
        values = value if isinstance(value, list) else [value]
        course.names[name] = tuple(_alias(f"names.{name}[{i}]", v, ops, op_arguments) for i, v in enumerate(values))
    for name, args in _expect("classes", data.get("classes", {}), dict, "a table {ClassName: [arguments]}").items():
        course.classes[name] = list(_expect(f"classes.{name}", args, list, "a list of constructor arguments"))
    network = _expect("network", data.get("network", {}), dict, "a table {adapter, max_cases}")
    adapter = network.get("adapter", "")
    if adapter:
        file, _, attr = _expect("network.adapter", adapter, str, "'file.py:factory'").rpartition(":")
        resolved = (path.parent / file).resolve()
        if not file or not attr or not resolved.is_file():
            raise CourseError(f"network.adapter must be 'file.py:factory' with the file beside the course file, got "
                              f"{adapter!r} ({resolved} {'exists' if resolved.is_file() else 'does not exist'})")
        course.adapter = f"{resolved}:{attr}"
    course.max_cases = int(_expect("network.max_cases", network.get("max_cases", 2), int, "a whole number ≥ 1"))
    for key, level in _expect("hints", data.get("hints", {}), dict, "a table {check: level}").items():
        if level not in HINT_LEVELS:
            raise CourseError(f"hints.{key} must be one of {HINT_LEVELS}, got {level!r}")
        if key not in ("default", "network"):
            op_name(f"hints.{key}", key)
        course.hints[key] = level
    for key, value in _expect("points", data.get("points", {}), dict, "a table {check: points}").items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise CourseError(f"points.{key} must be a number ≥ 0, got {value!r}")
        course.points[key] = float(value)
    limits = _expect("limits", data.get("limits", {}), dict, "a table {seconds, memory_mb}")
    course.seconds = float(_expect("limits.seconds", limits.get("seconds", 60), (int, float), "a number of seconds"))
    course.memory_mb = int(_expect("limits.memory_mb", limits.get("memory_mb", 4096), int, "a whole number of MiB"))
    if course.seconds <= 0 or course.memory_mb < 256:
        raise CourseError(f"limits: seconds must be > 0 and memory_mb ≥ 256, got {course.seconds}, {course.memory_mb}")
    visibility = _expect("gradescope", data.get("gradescope", {}), dict, "a table").get("visibility", "visible")
    if visibility not in VISIBILITIES:
        raise CourseError(f"gradescope.visibility must be one of {VISIBILITIES}, got {visibility!r}")
    course.visibility = visibility
    return course

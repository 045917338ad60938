"""The project's own source files that each command imports, and their hashes.

The `code` stage writes one file per command (data/code/<command>.json) and every stage
depends on its command's file: editing a module reruns exactly the stages whose commands
import it (the trainer: every training stage; a study's report: its report stage), and a
run's resume fingerprint holds the same hash. The list is read from the source itself (its
import statements, those inside functions included), so it cannot drift from the code. A file
is hashed by what it does (a module's syntax tree without docstrings): a comment, docstring or
formatting edit reruns nothing. The files hashed are the repository's own (src/transferlab under
the working folder), whichever copy of the package Python imports.
Standard library only: no torch, no package import.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from pathlib import Path

PACKAGE = "transferlab"
IMPORTED = Path(__file__).resolve().parent  # the package Python imported


def _source_root() -> Path:
    """The repository's own source: src/transferlab under the working folder (where DVC and
    Snakemake run every command), whatever Python imports; elsewhere the imported package."""
    here = Path.cwd() / "src" / PACKAGE
    return here.resolve() if (here / "codedeps.py").is_file() else IMPORTED


ROOT = _source_root()
CLI = f"{PACKAGE}.cli"
# Data files that modules read at run time (module -> files under the package), beside imports.
READS = {
    f"{PACKAGE}.data.sources": ("resources",),
    f"{PACKAGE}.studies.grid.report": ("resources/yosinski2014_imagenet_top1.csv",),
}


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join((PACKAGE, *parts[:-1])) if parts[-1] == "__init__" else ".".join((PACKAGE, *parts))
        found[name] = path
    return found


def _imported(node: ast.AST) -> set[str]:
    """Project modules named by the import statements under `node` (a module or a function)."""
    names = set()
    for stmt in ast.walk(node):
        if isinstance(stmt, ast.Import):
            names |= {alias.name for alias in stmt.names}
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
            names.add(stmt.module)
            names |= {f"{stmt.module}.{alias.name}" for alias in stmt.names}  # `from pkg import submodule`
        elif isinstance(stmt, ast.Call) and ast.unparse(stmt.func).endswith("import_module") and stmt.args:
            names |= _loaded_by_name(stmt.args[0])  # a registry that imports its modules by name
    return {n for n in names if n in modules()}


def _loaded_by_name(arg: ast.expr) -> set[str]:
    """The project modules an import_module(...) argument can name: a constant, or every module
    under the constant prefix of an f-string (f"transferlab.models.{module}")."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)
        return {m for m in modules() if m.startswith(prefix)}
    return set()


def _with_parents(name: str) -> set[str]:
    """A module and the packages whose __init__ runs when it is imported."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(), filename=str(modules()[name]))


@cache
def _module_imports(name: str) -> frozenset[str]:
    """The project modules that module `name` imports, with their parent packages (walked once
    per process: the code stage follows every command's closure through the same modules)."""
    return frozenset().union(*(_with_parents(n) for n in _imported(_tree(name))))


def closure(start: set[str]) -> set[str]:
    """`start` and every project module they import, directly or not."""
    seen: set[str] = set()
    todo = set().union(*(_with_parents(n) for n in start))
    while todo:
        name = todo.pop()
        if name in seen or name not in modules():
            continue
        seen.add(name)
        todo |= _module_imports(name)
    return seen


REPORT = "report"  # `transferlab report <study>`: one entry per study, "report-grid" ...
REPORT_MODULES = "REPORT_MODULES"  # the CLI's table of them: study -> its report module


def commands() -> list[str]:
    """The CLI's command names: `app.command()` functions by their name, the report command
    once per study of the CLI's REPORT_MODULES ("report-grid")."""
    return sorted((set(_command_functions()) - {REPORT}) | {f"{REPORT}-{s}" for s in _report_modules()})


@cache
def _report_modules() -> dict[str, str]:
    """The CLI's REPORT_MODULES, read from its source (a dict of string constants)."""
    for node in _tree(CLI).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [REPORT_MODULES]:
            return ast.literal_eval(node.value)
    return {}


def stage_commands() -> list[str]:
    """The commands that stages of dvc.yaml run (not `schema`, and not `code`: its stage
    depends on the whole package)."""
    return [c for c in commands() if c not in ("code", "schema")]


def _command_name(node: ast.FunctionDef) -> str | None:
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command":
            if ast.unparse(d.func.value) == "app":
                return node.name
    return None


def _command_functions() -> dict[str, ast.FunctionDef]:
    return {
        name: node for node in _tree(CLI).body if isinstance(node, ast.FunctionDef) and (name := _command_name(node))
    }


def _helpers_used(function: ast.FunctionDef, helpers: dict[str, ast.FunctionDef]) -> list[ast.FunctionDef]:
    """The CLI's own helper functions that `function` names (its decorators included), and theirs."""
    found: dict[str, ast.FunctionDef] = {}
    todo = [function]
    while todo:
        names = {n.id for n in ast.walk(todo.pop()) if isinstance(n, ast.Name)}
        for name in names & set(helpers) - set(found):
            found[name] = helpers[name]
            todo.append(helpers[name])
    return list(found.values())


def command_modules(command: str) -> list[str]:
    """The project modules that `transferlab <command>` imports: the CLI's module level, the
    command's function and the CLI helpers it uses (for report-<study>, that study's report
    module), and everything those import."""
    functions = _command_functions()
    if command not in commands():
        raise ValueError(f"not a command: {command!r} (commands: {', '.join(commands())})")
    study = command.removeprefix(f"{REPORT}-") if command.startswith(f"{REPORT}-") else None
    function = functions[REPORT if study else command]
    cli = _tree(CLI)
    top = ast.Module(body=[n for n in cli.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)], type_ignores=[])
    helpers = {n.name: n for n in cli.body if isinstance(n, ast.FunctionDef) and n not in functions.values()}
    used = _helpers_used(function, helpers)
    start = _imported(top) | _imported(function) | set().union(set(), *(_imported(h) for h in used))
    start |= {_report_modules()[study]} if study else set()
    return sorted(closure(start) | _with_parents(CLI))  # the CLI's own file, not its other commands' imports


def command_files(command: str) -> list[Path]:
    """The files behind `command_modules`, and the data files those modules read."""
    imported = command_modules(command)
    files = {modules()[m] for m in imported}
    for module, reads in READS.items():
        if module in imported:
            for rel in reads:
                target = ROOT / rel
                files |= set(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else {target}
    return sorted(files)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """`tree` without the docstrings of its module, classes and functions (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def behaviour_sha256(path: Path) -> str:
    """A hash of what a file does: for Python, its syntax tree without docstrings (comments,
    docstrings and formatting change nothing); for a data file, its bytes."""
    data = path.read_bytes()
    if path.suffix != ".py":
        return hashlib.sha256(data).hexdigest()
    return _syntax_sha256(data, str(path))


@cache
def _syntax_sha256(source: bytes, filename: str) -> str:
    """By content: a file is parsed once per process however many commands import it."""
    tree = _strip_docstrings(ast.parse(source, filename=filename))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False, include_attributes=False).encode()).hexdigest()


SOURCE_HASHES = "source_hashes.json"  # beside the commands' files: bytes hash -> behaviour hash


def source_hashes() -> dict[str, str]:
    """Every file that a stage's command imports or reads: the SHA-256 of its bytes -> its
    behaviour_sha256. A run checks its code against it in milliseconds, parsing only the files
    changed since the code stage ran (parsing them all is 0.2 s of every run's start)."""
    files = set().union(*(command_files(c) for c in stage_commands()))
    return {hashlib.sha256(p.read_bytes()).hexdigest(): behaviour_sha256(p) for p in sorted(files)}


def _known_hashes(path: Path) -> dict[str, str]:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def current_sha256(command: str, recorded: Path) -> str:
    """The command's code hash: from the code stage's file when every file it lists still has
    its hash (then the imports, read from those files, are the same too), else computed anew.
    A file whose bytes the code stage saw is not parsed again."""
    known = _known_hashes(recorded.parent / SOURCE_HASHES)

    def unchanged(rel: str, expected: str) -> bool:
        path = ROOT / rel
        return (
            known.get(hashlib.sha256(path.read_bytes()).hexdigest()) == expected or behaviour_sha256(path) == expected
        )

    try:
        listed = json.loads(recorded.read_text())
        same = all(unchanged(f, h) for f, h in listed["files"].items())
    except (OSError, ValueError, KeyError):
        same = False
    return listed["sha256"] if same else digest(command)["sha256"]


@cache
def digest(command: str) -> dict:
    """The command's files (relative to the package) with their SHA-256, and one hash of all."""
    files = {str(p.relative_to(ROOT)): behaviour_sha256(p) for p in command_files(command)}
    whole = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"command": command, "sha256": whole, "files": files}


def imported_differs() -> str | None:
    """The first source file whose code differs between the package Python imported and the
    repository's src/transferlab (a venv installed from another checkout), or None."""
    if IMPORTED == ROOT:
        return None
    for name, path in sorted(modules().items()):
        other = IMPORTED / path.relative_to(ROOT)
        if not other.is_file() or behaviour_sha256(other) != behaviour_sha256(path):
            return str(path.relative_to(ROOT))
    return None

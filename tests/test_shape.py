"""The shape of the code: what docs/architecture.md promises, function sizes, lean imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "genoformer"
PILLARS = ("gwas", "sc", "seq")
MAX_LINES = 100
MAX_PARAMETERS = 12
#: Functions that were already too long or too wide when these checks came in (issue 11):
#: each is to be split into named steps or given an options object. The lists may only
#: shrink: a new long or wide function fails, and so does an entry that no longer needs to
#: be here.
KNOWN_LONG: set[str] = set()
KNOWN_WIDE: set[str] = set()


def _modules() -> list[str]:
    """Every module under src/genoformer, as a path relative to it (``gwas/io/genotypes.py``)."""
    return sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    )


def _architecture_tree() -> set[str]:
    """The modules the tree in docs/architecture.md names, as paths relative to src/genoformer.

    A line of the tree starts with its names (``name.py``, several separated by commas, or a
    ``folder/``), then a description; a folder holds the lines indented below it.
    """
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```\n(src/genoformer/\n.*?)```", text, flags=re.DOTALL)
    assert block, "docs/architecture.md has no ``` tree starting with src/genoformer/"
    named: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, folder) from the outermost
    for line in block.group(1).splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = []
        for token in line.split():
            token = token.rstrip(",")
            if not token.endswith((".py", "/")):
                break
            names.append(token)
        if not names:
            continue  # a continuation of the description above
        while folders and folders[-1][0] >= indent:
            folders.pop()
        prefix = "".join(folder for _, folder in folders)
        for name in names:
            if name.endswith("/"):
                folders.append((indent, name))
            else:
                named.add(prefix + name)
    return named


def test_architecture_names_every_module():
    named = _architecture_tree()
    missing = [m for m in _modules() if m not in named]
    stale = sorted(n for n in named if not (PACKAGE / n).exists())
    assert not missing, f"docs/architecture.md does not name: {missing}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def _is_numba_kernel(node: ast.FunctionDef) -> bool:
    return any("numba" in ast.unparse(d) or "njit" in ast.unparse(d) for d in node.decorator_list)


def _public_verbs() -> set[tuple[str, str]]:
    """(module, function) of every verb a pillar exports from its api.py, and CLI commands."""
    verbs: set[tuple[str, str]] = set()
    for pillar in PILLARS:
        init = ast.parse((PACKAGE / pillar / "__init__.py").read_text())
        for node in ast.walk(init):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        module = value.value.removeprefix("genoformer.").replace(".", "/")
                        verbs.add((f"{module}.py", key.value))
    return verbs


def _functions():
    for module in _modules():
        tree = ast.parse((PACKAGE / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield module, node


def _is_cli_command(module: str, node: ast.FunctionDef) -> bool:
    return module.endswith("cli.py") and any(
        "command" in ast.unparse(d) or "callback" in ast.unparse(d) for d in node.decorator_list
    )


def test_no_function_over_100_lines_outside_numba_kernels():
    long = {
        f"{module}:{node.name}"
        for module, node in _functions()
        if node.end_lineno - node.lineno + 1 > MAX_LINES and not _is_numba_kernel(node)
    }
    assert not long - KNOWN_LONG, f"over {MAX_LINES} lines: {sorted(long - KNOWN_LONG)}"
    assert not KNOWN_LONG - long, f"no longer long, drop from KNOWN_LONG: {KNOWN_LONG - long}"


def _config_inits() -> set[int]:
    """The ``__init__`` of every Hugging Face config class: a config is itself the options
    group (``PretrainedConfig`` takes its fields as keyword arguments, ``from_pretrained``
    and ``to_dict`` depend on it), so it is exempt like the public verbs."""
    inits = set()
    for module in _modules():
        for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base).endswith("PretrainedConfig") for base in node.bases
            ):
                inits |= {
                    (module, f.lineno)
                    for f in node.body
                    if isinstance(f, ast.FunctionDef) and f.name == "__init__"
                }
    return inits


def test_no_function_over_12_parameters_outside_the_public_verbs():
    verbs = _public_verbs()
    configs = _config_inits()
    wide = set()
    for module, node in _functions():
        if (module, node.lineno) in configs:
            continue
        a = node.args
        n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
        n -= bool(a.args and a.args[0].arg in ("self", "cls"))
        exempt = (module, node.name) in verbs or _is_cli_command(module, node)
        if n > MAX_PARAMETERS and not exempt and not _is_numba_kernel(node):
            wide.add(f"{module}:{node.name}")
    assert not wide - KNOWN_WIDE, f"over {MAX_PARAMETERS} parameters: {sorted(wide - KNOWN_WIDE)}"
    assert not KNOWN_WIDE - wide, f"no longer wide, drop from KNOWN_WIDE: {KNOWN_WIDE - wide}"


def test_no_module_shadows_a_verb_of_its_pillar():
    for pillar, module in (
        (p, m) for p in PILLARS for m in (PACKAGE / p).iterdir() if m.suffix == ".py" or m.is_dir()
    ):
        package = __import__(f"genoformer.{pillar}", fromlist=["__all__"])
        assert module.stem not in package.__all__, f"{pillar}/{module.name} shadows a verb"


def _imported_after(code: str, heavy: tuple[str, ...] = ("torch", "transformers")) -> list[str]:
    """The ``heavy`` libraries imported by a fresh interpreter that runs ``code``."""
    check = f"{code}\nimport sys\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return eval(done.stdout.strip().splitlines()[-1])


def test_help_imports_neither_torch_nor_transformers():
    code = (
        "from genoformer.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "for pillar in ('gwas', 'sc', 'seq'):\n"
        "    try:\n        main([pillar, '--help'])\n    except SystemExit:\n        pass"
    )
    assert _imported_after(code) == []


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    """A PLINK fileset of 60 samples x 40 variants and a quantitative phenotype."""
    import numpy as np
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    n, m = 60, 40
    dosages = rng.binomial(2, 0.3, size=(n, m)).astype(np.float32)
    folder = tmp_path_factory.mktemp("cohort")
    to_bed(
        folder / "tiny.bed",
        dosages,
        properties={
            "fid": [f"f{i}" for i in range(n)],
            "iid": [f"i{i}" for i in range(n)],
            "chromosome": ["1"] * (m // 2) + ["2"] * (m - m // 2),
            "sid": [f"rs{j}" for j in range(m)],
            "bp_position": np.arange(1, m + 1) * 1000,
            "allele_1": ["A"] * m,
            "allele_2": ["G"] * m,
        },
    )
    pheno = "\n".join(
        f"f{i}\ti{i}\t{v:.5f}" for i, v in enumerate(dosages[:, 0] + rng.normal(size=n))
    )
    (folder / "tiny.pheno").write_text("FID\tIID\tquant\n" + pheno + "\n")
    return folder / "tiny"


def test_gwas_assoc_imports_no_model_library(tiny_cohort, tmp_path):
    """Neither torch nor transformers; nor scikit-learn or scipy.stats, which take seconds to
    load on a busy machine and which the association command does not need."""
    out = tmp_path / "assoc"
    code = (
        "from genoformer.cli import main\n"
        "try:\n"
        f"    main(['gwas', 'assoc', {str(tiny_cohort)!r}, '--out', {str(out)!r},"
        f" '--pheno', {str(tiny_cohort) + '.pheno'!r}, '--pheno-name', 'quant'])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code"
    )
    heavy = ("torch", "transformers", "sklearn", "scipy.stats")
    assert _imported_after(code, heavy) == []
    assert (out / "manifest.json").exists()

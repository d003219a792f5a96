"""The built-in targets are listed once (BUILTIN_MODULES and their TARGETS): every other list derives from it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from edgecc import targets
from edgecc.targets import BUILTIN_MODULES, builtin_targets, get_target, load_targets

PACKAGE = Path(targets.__file__).parent
ROOT = PACKAGE.parent.parent


def test_every_listed_builtin_resolves_under_its_own_name() -> None:
    registry = load_targets()
    listed = targets.BUILTINS
    assert list(listed) == list(builtin_targets()) and listed
    assert registry.names()[: len(listed)] == list(listed)  # built-ins first, in BUILTIN_MODULES order
    modules = {f"edgecc.targets.{m}" for m in BUILTIN_MODULES}
    for name, module in listed.items():
        target = get_target(name)
        assert target.name == name and target.source == "built-in" and module in modules, name
        assert target.precisions and target.references and target.support_table(), name


def test_every_module_declaring_targets_is_a_builtin_module() -> None:
    declaring = sorted(p.stem for p in PACKAGE.glob("*.py") if re.search(r"^TARGETS\b", p.read_text(), re.MULTILINE))
    assert declaring == sorted(BUILTIN_MODULES)


def test_the_ethos_u_targets_are_velas_accelerator_table() -> None:
    from edgecc.targets import vela
    from edgecc.targets.ethos_u import EthosUTarget

    ethos = {name: t for name, t in load_targets().items() if isinstance(t, EthosUTarget)}
    assert set(ethos) == {"ethos-u", *vela.ACCELERATORS}
    assert ethos["ethos-u"].accelerator == "ethos-u55-128"
    for target in ethos.values():
        family, macs = vela.family_of(target.accelerator)
        assert macs in vela.FAMILIES[family].macs and f"{macs} MACs/cycle" in target.description
        assert vela.vela_arguments(target.accelerator, {})[:2] == ["--accelerator-config", target.accelerator]


def test_pyproject_declares_no_builtin_as_an_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get(targets.ENTRY_POINT_GROUP, {})
    assert not set(declared) & set(targets.BUILTINS), "built-ins are declared by their modules' TARGETS, not by entry points"


def test_importing_the_targets_package_imports_no_target_module() -> None:
    code = "import sys, edgecc.targets; print(sorted(m for m in sys.modules if m.startswith('edgecc.targets.')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "['edgecc.targets.api']"

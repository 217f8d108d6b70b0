"""docs/architecture.md names every module once with its job: each module of the package must appear in the
section of its top-level package (a line that starts with `` `pkg/` ``), so a new module cannot land unexplained."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mcpsim"
DOC = ROOT / "docs" / "architecture.md"
SECTION = re.compile(r"^`(\w+)/`")
TOP_LEVEL_SECTION = "mcpsim"


def sections(text: str) -> dict[str, str]:
    """Each top-level package's part of the document, keyed by its name; the package root's under "mcpsim"."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            current = match.group(1)
        if current is not None:
            found.setdefault(current, []).append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def unexplained(doc: Path = DOC) -> list[str]:
    parts = sections(doc.read_text(encoding="utf-8"))
    missing = []
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE)
        if module.name in ("__init__.py", "__main__.py") and len(relative.parts) > 1:
            continue  # a package's face is described with the package
        top = relative.parts[0] if len(relative.parts) > 1 else TOP_LEVEL_SECTION
        text = parts.get(top, "")
        if not re.search(rf"`(?:[\w/]*/)?{re.escape(module.name)}`", text):
            missing.append(f"{relative} (not named in the `{top}/` section)")
    return missing


def test_every_module_is_named_in_the_architecture_doc() -> None:
    assert unexplained() == []


def test_the_check_sees_a_module_the_doc_does_not_name(tmp_path: Path) -> None:
    doc = tmp_path / "architecture.md"
    doc.write_text(DOC.read_text(encoding="utf-8").replace("`mux.py`", "`the multiplexer`"), encoding="utf-8")
    assert unexplained(doc) == ["protocol/mux.py (not named in the `protocol/` section)"]

"""Print a pip constraints file that pins every runtime dependency to its lowest version.

``bash scripts/test.sh --lowest`` installs nbclaude with it, so the tests run against the
oldest release each range in ``pyproject.toml`` admits: a floor that no longer works fails
there instead of on a user's machine. The ranges are read from ``pyproject.toml`` itself,
so the two cannot drift apart.

Usage: python scripts/lowest_versions.py [PYPROJECT]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<specifiers>[^;]*)")
_FLOOR = re.compile(r">=\s*(?P<version>[0-9][^,\s]*)")


PRODUCT_EXTRAS = ("images",)
"""Optional dependencies that are part of the product, not of its tests: pinned too."""


def lowest_pins(pyproject: Path) -> list[str]:
    """``name==floor`` for each dependency of ``[project]`` and of the product's extras, in
    the order declared.

    Raises:
        SystemExit: If a dependency has no ``>=`` floor: there is no lowest to test.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    dependencies = [*project["dependencies"], *(r for e in PRODUCT_EXTRAS for r in extras[e])]
    pins = []
    for requirement in dependencies:
        match = _REQUIREMENT.match(requirement)
        floor = _FLOOR.search(match["specifiers"]) if match else None
        if match is None or floor is None:
            raise SystemExit(f"{requirement!r} has no >= floor: give it one to test it.")
        pins.append(f"{match['name']}=={floor['version']}")
    return pins


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "pyproject.toml"
    print("\n".join(lowest_pins(Path(sys.argv[1]) if len(sys.argv) > 1 else default)))

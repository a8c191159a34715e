"""The Lambda images hold what their handlers import. They cannot be built here (no Docker), so
this checks the recipe: every first-party module a handler loads is copied by its Dockerfile,
every third-party one comes from a distribution its requirements file pins, and those pins are
the lock file's versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {
    "lambdas/Dockerfile": (
        "lambdas/requirements.txt",
        ["lambdas.traffic.handler", "lambdas.deploy.handler"],
    ),
    "lambdas/drift/Dockerfile": (
        "lambdas/drift/requirements.txt",
        # The drift handler imports Evidently lazily, when it renders a report: load that too.
        # The same image runs a drift check's Processing job shards (lambdas.drift.shard).
        [
            "lambdas.drift.handler",
            "mlops.adapters.evidently_report",
            "evidently.presets",
            "lambdas.drift.shard",
        ],
    ),
}

# In a fresh interpreter, import the handlers with only what the image would have: the
# standard library, the packages its Dockerfile copies, and the distributions its requirements
# pin. Anything else is hidden, as if not installed: an optional import falls back as it
# would in the image, a needed one fails the import and the test.
PROBE = """
import importlib, importlib.abc, json, re, sys
from importlib.metadata import packages_distributions
spec = json.loads(sys.argv[1])
allowed = set(spec["distributions"])
owners = packages_distributions()
stdlib = set(sys.stdlib_module_names)
hidden = set()

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

class ImageOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in stdlib or top in spec["copied"] or name != top:
            return None
        dists = {canonical(d) for d in owners.get(top, [])}
        if not dists or dists & allowed:
            return None
        hidden.add(top)
        raise ModuleNotFoundError(f"{top} is not in the image", name=top)

sys.path = [p for p in sys.path if p not in ("", spec["root"])]
sys.path.insert(0, spec["root"])
sys.meta_path.insert(0, ImageOnly())
for name in spec["modules"]:
    if name.split(".")[0] not in spec["copied"] and name.split(".")[0] in ("mlops", "lambdas", "pipeline_steps"):
        raise SystemExit(f"{name} is not copied into the image")
    importlib.import_module(name)
if spec.get("render"):
    # Evidently loads its plotting stack while rendering: render a small report too.
    import numpy as np
    from mlops.adapters.evidently_report import evidently_html
    rng = np.random.default_rng(0)
    table = {"a": rng.normal(size=1500), "b": rng.normal(size=1500)}
    page = evidently_html(table, table, columns=["a", "b"], title="probe", sample_rows=1500,
                          share_threshold=0.5, distance_threshold=0.1)
    assert "<html" in page.lower()
print(json.dumps({"hidden": sorted(hidden)}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: Path) -> dict[str, str]:
    pins = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split(";")[0].strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def copied(dockerfile: Path) -> set[str]:
    return set(re.findall(r"^COPY (\w+)/ ", dockerfile.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_the_image_holds_what_its_handlers_import(dockerfile: str) -> None:
    requirements, modules = IMAGES[dockerfile]
    spec = {
        "root": str(ROOT),
        "copied": sorted(copied(ROOT / dockerfile)),
        "distributions": sorted(pinned(ROOT / requirements)),
        "modules": modules,
        "render": "drift" in dockerfile,
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(spec)],
        capture_output=True, text=True, cwd="/", check=False,
        env={"PATH": "/usr/bin:/bin", "DO_NOT_TRACK": "1"},
    )  # fmt: skip
    assert probe.returncode == 0, f"{dockerfile}: {probe.stderr.strip().splitlines()[-1:]}"
    # What the import skipped as "not installed" must be optional: it got this far without.
    print(json.loads(probe.stdout.strip().splitlines()[-1])["hidden"])


def test_the_probe_notices_a_missing_requirement() -> None:
    # Without pydantic pinned, the traffic handler cannot import: the probe must say so.
    spec = {
        "root": str(ROOT),
        "copied": ["lambdas", "mlops"],
        "distributions": sorted(set(pinned(ROOT / "lambdas/requirements.txt")) - {"pydantic"}),
        "modules": ["lambdas.traffic.handler"],
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(spec)],
        capture_output=True, text=True, cwd="/", check=False,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert probe.returncode != 0
    assert "pydantic is not in the image" in probe.stderr


@pytest.mark.parametrize("requirements", sorted({r for r, _ in IMAGES.values()}))
def test_requirements_are_the_locked_versions(requirements: str) -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked: dict[str, set[str]] = {}
    for package in lock["package"]:
        locked.setdefault(canonical(package["name"]), set()).add(package["version"])
    pins = pinned(ROOT / requirements)
    assert pins
    stale = {n: v for n, v in pins.items() if v not in locked.get(n, set())}
    assert stale == {}, f"{requirements} is not uv.lock's: run `make lambda-requirements`"

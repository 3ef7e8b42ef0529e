"""Refresh the vendored browser libraries from the npm registry: ``python scripts/vendor.py``.

The page uses the libraries' *published* browser builds, committed as static files: no
build step and no CDN at run time. This script fetches each pinned package with
``npm pack`` (npm checks the tarball's integrity against the registry), copies the named
files and the licence out of it, and writes a ``manifest.json`` beside them with each
file's SHA-256, which ``tests/test_vendor.py`` checks. To upgrade, change a version below,
run the script, run the browser tests, commit the files and the manifest together.

``--check`` fetches nothing: it only compares the files on disk with the manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "gateway" / "static" / "vendor"  # shipped with the package
TESTS = ROOT / "tests" / "browser" / "vendor"  # test-only (axe-core)


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files taken from its tarball (path inside -> name)."""

    name: str
    version: str
    licence: str
    files: dict[str, str]
    into: Path
    folder: str


PACKAGES = (
    Package(
        "markdown-it",
        "15.0.3",
        "MIT",
        {
            "package/dist/browser/markdown-it.umd.min.js": "markdown-it.min.js",
            "package/LICENSE": "LICENSE",
        },
        PAGE,
        "markdown-it",
    ),
    Package(
        "markdown-it-task-lists",
        "2.1.1",
        "ISC",
        {
            "package/dist/markdown-it-task-lists.min.js": "markdown-it-task-lists.min.js",
            "package/LICENSE": "LICENSE",
        },
        PAGE,
        "markdown-it-task-lists",
    ),
    Package(
        "dompurify",
        "3.5.0",
        "MPL-2.0 OR Apache-2.0",
        {"package/dist/purify.min.js": "purify.min.js", "package/LICENSE": "LICENSE"},
        PAGE,
        "dompurify",
    ),
    Package(
        "@highlightjs/cdn-assets",
        "11.12.0",
        "BSD-3-Clause",
        {
            "package/highlight.min.js": "highlight.min.js",  # the common-languages bundle
            "package/styles/github.min.css": "github.min.css",
            "package/styles/github-dark.min.css": "github-dark.min.css",
            "package/LICENSE": "LICENSE",
        },
        PAGE,
        "highlight.js",
    ),
    Package(
        "axe-core",
        "4.14.1",
        "MPL-2.0",
        {"package/axe.min.js": "axe.min.js", "package/LICENSE": "LICENSE"},
        TESTS,
        "axe-core",
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(package: Package, work: Path) -> list[dict[str, str]]:
    """Unpack the package's tarball into its folder; the manifest rows for its files."""
    spec = f"{package.name}@{package.version}"
    out = subprocess.run(  # noqa: S603 - fixed arguments; the spec is a pinned constant
        ["npm", "pack", spec, "--json", "--pack-destination", str(work)],  # noqa: S607 - npm from PATH
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = work / json.loads(out.stdout)[0]["filename"]
    target = package.into / package.folder
    target.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(tarball) as tar:
        for inside, name in package.files.items():
            member = tar.extractfile(inside)
            if member is None:
                raise SystemExit(f"{spec}: {inside} is not a file in the tarball")
            (target / name).write_bytes(member.read())
            rows.append(
                {
                    "package": package.name,
                    "version": package.version,
                    "licence": package.licence,
                    "source": inside.removeprefix("package/"),
                    "file": f"{package.folder}/{name}",
                    "sha256": sha256(target / name),
                }
            )
    return rows


def write_manifests() -> None:
    by_dir: dict[Path, list[dict[str, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            print(f"{package.name}@{package.version}")
            by_dir.setdefault(package.into, []).extend(fetch(package, Path(tmp)))
    for into, rows in by_dir.items():
        manifest = {"registry": "npm", "refresh": "python scripts/vendor.py", "files": rows}
        (into / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def check() -> list[str]:
    """Every mismatch between the files on disk and the manifests (empty: all good)."""
    problems = []
    for into in (PAGE, TESTS):
        manifest = json.loads((into / "manifest.json").read_text())
        for row in manifest["files"]:
            path = into / row["file"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256(path) != row["sha256"]:
                problems.append(f"{path}: SHA-256 differs from the manifest")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; fetch nothing")
    if parser.parse_args().check:
        problems = check()
        print("\n".join(problems) or "vendored files match their manifests")
        sys.exit(1 if problems else 0)
    write_manifests()


if __name__ == "__main__":
    main()

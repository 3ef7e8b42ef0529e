"""The vendored browser libraries are exactly the published files their manifests record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = [
    ROOT / "gateway/static/vendor/manifest.json",
    ROOT / "tests/browser/vendor/manifest.json",
]


def rows() -> list[tuple[Path, dict[str, str]]]:
    return [
        (manifest.parent, row)
        for manifest in MANIFESTS
        for row in json.loads(manifest.read_text())["files"]
    ]


@pytest.mark.parametrize(
    ("folder", "row"), rows(), ids=lambda v: v["file"] if isinstance(v, dict) else ""
)
def test_each_vendored_file_matches_its_recorded_sha256(folder: Path, row: dict[str, str]) -> None:
    """A vendored file whose bytes differ from the manifest's SHA-256 fails."""
    data = (folder / row["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]


def test_every_package_is_pinned_with_its_licence_file() -> None:
    """Each package names an exact version and a licence, and ships its LICENSE file."""
    packages = {row["package"]: row for _, row in rows()}
    assert set(packages) == {
        "markdown-it",
        "markdown-it-task-lists",
        "dompurify",
        "@highlightjs/cdn-assets",
        "axe-core",
    }
    for name, row in packages.items():
        assert row["version"].count(".") == 2 and row["version"][0].isdigit(), name
        assert row["licence"], name
    licences = {row["package"] for _, row in rows() if row["file"].endswith("/LICENSE")}
    assert licences == set(packages)


def test_nothing_unrecorded_lies_in_the_vendor_folders() -> None:
    """Every file in a vendor folder is in its manifest: nothing slips in unchecked."""
    for manifest in MANIFESTS:
        listed = {row["file"] for row in json.loads(manifest.read_text())["files"]}
        on_disk = {
            str(p.relative_to(manifest.parent))
            for p in manifest.parent.rglob("*")
            if p.is_file() and p != manifest
        }
        assert on_disk == listed, manifest

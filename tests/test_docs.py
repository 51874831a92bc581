"""Docs that cannot drift: every option and exit code is documented, every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import argvalues
from argvalues import errors
from argvalues.cli import main as argvalues_group
from scorer.cli import score

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _docs_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in sorted(DOCS.glob("*.md")))


def _commands() -> dict[str, click.Command]:
    commands = {"score": score}
    commands.update({f"argvalues {name}": command for name, command in argvalues_group.commands.items()})
    return commands


def _options(command: click.Command) -> list[str]:
    names = []
    for parameter in command.params:
        if isinstance(parameter, click.Option) and not parameter.hidden:
            names += [name for name in parameter.opts + parameter.secondary_opts if name.startswith("--")]
    return names


def _code_blocks_removed(markdown: str) -> str:
    return re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    for line in _code_blocks_removed(page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = github_slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_of_every_command_is_documented(name):
    docs = _docs_text()
    missing = [option for option in _options(_commands()[name]) if not re.search(rf"{re.escape(option)}(?![\w-])", docs)]
    assert not missing, f"{name}: options not in docs/: {missing}"


def test_every_command_has_a_page_that_names_it():
    docs = _docs_text()
    missing = [name for name in _commands() if f"`{name}" not in docs and f"{name} " not in docs]
    assert not missing, f"commands docs/ never names: {missing}"


def test_every_exit_code_is_in_the_exit_code_table():
    codes = {0} | {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "exit_code")}
    table = (DOCS / "nightly-jobs.md").read_text(encoding="utf-8")
    rows = {int(code) for code in re.findall(r"^\|\s*(\d+)\s*\|", table, flags=re.MULTILINE)}
    assert codes <= rows, f"exit codes without a row in docs/nightly-jobs.md: {sorted(codes - rows)}"
    assert {2, 3, 8, 130, 143} <= codes  # the collection itself found the codes the commands raise


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for match in LINK.finditer(_code_blocks_removed(page.read_text(encoding="utf-8"))):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_the_slug_rule_matches_github():
    assert github_slug("Exit codes") == "exit-codes"
    assert github_slug("AMD EPYC, AVX2 only") == "amd-epyc-avx2-only"
    assert github_slug("`score` options") == "score-options"
    assert github_slug("Texts alone and long texts") == "texts-alone-and-long-texts"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](#page) [bad](missing.md) [bad anchor](#nowhere)\n", encoding="utf-8")
    targets = [m.group(1) for m in LINK.finditer(page.read_text())]
    assert targets == ["#page", "missing.md", "#nowhere"]
    assert "page" in _anchors(page) and "nowhere" not in _anchors(page)


def test_the_changelog_names_this_version_as_its_latest_release():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.MULTILINE)
    assert releases and releases[0] == argvalues.__version__


def test_readme_puts_install_scoring_output_and_quality_first():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, "the README is for users: the details belong in docs/"
    head = "\n".join(lines[:80])
    for must in ("make demo", "make test", "pip install", "score ", "--text-column", "Self-direction: thought",
                 "Universalism: objectivity", "F1"):
        assert must in head, f"README's first 80 lines lack {must!r}"

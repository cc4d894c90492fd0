"""The documentation is checked like code: every relative link and anchor resolves, nothing
links outside the repository but public URLs, and every `make` target and `tollgate` command
the README and the docs print exists. (Configurations marked ```json tollgate are loaded and
validated against the schema in test_schema.py.)"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def prose_and_code(text):
    """Splits a page into prose lines (for links and headings) and fenced blocks
    (info string, body)."""
    prose, blocks, block, info = [], [], None, ""
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if block is None:
                block, info = [], line.strip()[3:].strip()
            else:
                blocks.append((info, "\n".join(block)))
                block = None
            continue
        if block is None:
            prose.append(line)
        else:
            block.append(line)
    return prose, blocks


def github_anchor(heading, seen):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens,
    numbered when repeated."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def anchors_of(path):
    prose, _ = prose_and_code(path.read_text())
    seen = {}
    return {
        github_anchor(m.group(2), seen)
        for line in prose
        if (m := re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line))
    }


def links_of(path):
    prose, _ = prose_and_code(path.read_text())
    text = "\n".join(prose)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [m.group(1) or m.group(2) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository_or_is_public(page):
    broken = []
    for target in links_of(page):
        if target.startswith(("https://", "http://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: leaves the repository")
            continue
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path):
    """The checker itself: a missing file and a missing anchor are both found."""
    (tmp_path / "a.md").write_text("# Title\n\n[x](b.md) [y](#nowhere) [z](#title)\n")
    links = links_of(tmp_path / "a.md")
    assert links == ["b.md", "#nowhere", "#title"]
    assert anchors_of(tmp_path / "a.md") == {"title"}
    assert github_anchor("The caller's address: `use_remote_address`", {}) == (
        "the-callers-address-use_remote_address"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_work_item_numbers_or_paths_outside_the_repository(page):
    text = page.read_text()
    assert "../shared" not in text and "/work/" not in text
    assert not re.search(r"\b(?:issue|work item|ticket)s? #?\d+", text, re.I), (
        "docs describe the product, not how it was built"
    )


def make_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))


def cli_commands():
    usage = subprocess.run(
        [str(ROOT / "target/debug/tollgate")], capture_output=True, text=True
    )
    return set(re.findall(r"^\s+tollgate ([a-z][a-z-]*)", usage.stdout + usage.stderr, re.M))


def printed_commands(page):
    """`make X` and `tollgate X` at the start of a shell line in the page's sh/console
    blocks and code spans."""
    _, blocks = prose_and_code(page.read_text())
    lines = [
        line
        for info, body in blocks
        if info.split(" ")[0] in ("sh", "bash", "console", "shell", "")
        for line in body.splitlines()
    ]
    lines += re.findall(r"`((?:make|tollgate) [^`]+)`", page.read_text())
    found = []
    for line in lines:
        line = line.strip().lstrip("$ ")
        for cmd in re.split(r"&&|\|\||;|\|", line):
            words = cmd.split()
            if len(words) >= 2 and words[0] in ("make", "tollgate"):
                found.append((words[0], words[1]))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_printed_make_target_and_cli_command_exists(page):
    targets, commands = make_targets(), cli_commands()
    assert {"check", "init", "connector"} <= commands, f"the CLI's usage changed: {commands}"
    missing = []
    for tool, word in printed_commands(page):
        if word.startswith("-") or "=" in word:
            continue
        if tool == "make" and word not in targets:
            missing.append(f"make {word}")
        if tool == "tollgate" and word not in commands:
            missing.append(f"tollgate {word}")
    assert not missing, f"{page.relative_to(ROOT)} prints commands that do not exist: {missing}"


def test_the_readme_prints_the_two_commands():
    found = printed_commands(ROOT / "README.md")
    assert ("make", "run") in found and ("make", "test") in found

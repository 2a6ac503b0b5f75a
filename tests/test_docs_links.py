"""The README stays short (issue 32: at most 250 lines) and every page it moved to is reachable: each relative link of
README.md, docs/*.md and options/mmagic/README.md names a file that exists, and a link's #anchor a heading of it."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md')), REPO / 'options' / 'mmagic' / 'README.md']
LINK = re.compile(r'\]\(([^)\s]+)\)')
MOVED_PAGES = ('basicsr.md', 'beyond_the_paper.md', 'training_speed.md', 'benchmarks.md', 'demo.md',
               'workarounds.md', 'reproduce.md', 'mmagic.md', 'fidelity.md', 'errors.md')


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(page: Path) -> set:
    return {anchor(line.lstrip('#')) for line in page.read_text(encoding='utf-8').splitlines()
            if line.startswith('#')}


def test_readme_is_at_most_250_lines():
    assert len((REPO / 'README.md').read_text(encoding='utf-8').splitlines()) <= 250


def test_readme_links_every_moved_page():
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    assert [page for page in MOVED_PAGES if f'(docs/{page}' not in text] == []


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding='utf-8')):
        if re.match(r'[a-z]+:', target):  # http(s):, mailto:
            continue
        path, _, fragment = target.partition('#')
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == '.md' and fragment not in anchors(linked):
            broken.append(target)
    assert broken == []


def test_anchor_is_githubs():
    assert anchor(' External files') == 'external-files'
    assert anchor(' 4. Evaluate, upscale, plot') == '4-evaluate-upscale-plot'

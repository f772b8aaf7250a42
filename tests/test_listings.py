"""`show_source`: the code a chapter shows is the file's, and its caption says where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

import src.transformer.attention as attention_module
from src.listings import show_source
from src.shared.training import train
from src.transformer.attention import MultiHeadedAttention
from src.transformer.model import EncoderDecoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("obj", [MultiHeadedAttention, train, EncoderDecoder.decode, attention_module])
def test_the_caption_names_the_lines_the_listing_shows(obj) -> None:
    listing = show_source(obj)
    lines = (ROOT / listing.path).read_text().splitlines(keepends=True)
    assert listing.code == "".join(lines[listing.first - 1 : listing.last])
    assert listing.caption == f"{listing.path}, lines {listing.first}\u2013{listing.last}"
    assert listing.path.startswith("src/") and not Path(listing.path).is_absolute()


def test_the_listing_renders_highlighted_code_under_its_caption() -> None:
    html = show_source(MultiHeadedAttention)._repr_html_()
    assert html.startswith('<div class="src-listing"')
    assert "src/transformer/attention.py</code>, lines" in html
    assert '<div class="highlight"><pre>' in html and "MultiHeadedAttention" in html


def test_listings_fit_the_text_column() -> None:
    """The book's column holds 88 characters of code (ruff's line-length for src)."""
    wide = [(p, i + 1) for p in (ROOT / "src").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines()) if len(line) > 88]
    assert not wide, f"lines of src longer than 88 characters: {wide[:10]}"


def test_a_listing_of_module_names_spans_their_assignments_and_the_comment_above():
    import src.recipes.copy_task as recipe

    listing = show_source(recipe, "COPY_MODEL", "COPY_TASK")
    lines = listing.code.splitlines()
    assert lines[0].startswith("# ") and lines[-1].startswith("COPY_TASK = ")
    assert "COPY_MODEL = ModelConfig(" in listing.code and "def " not in listing.code
    source = Path(recipe.__file__).read_text().splitlines()
    assert source[listing.first - 1 : listing.last] == lines
    with pytest.raises(ValueError, match="COPY_NOTHING"):
        show_source(recipe, "COPY_MODEL", "COPY_NOTHING")


def test_a_listing_names_the_part_of_the_paper_it_implements() -> None:
    listing = show_source(MultiHeadedAttention, paper="section 3.2.2")
    assert listing.caption.endswith("\u00b7 the paper, section 3.2.2")
    assert "the paper, section 3.2.2</p>" in listing._repr_html_()
    assert "the paper" not in show_source(MultiHeadedAttention).caption


def test_a_decorated_function_is_listed_from_its_own_file() -> None:
    from src.transformer.decoding import beam_search  # wrapped by torch.no_grad

    listing = show_source(beam_search)
    assert listing.path == "src/transformer/decoding.py"
    assert listing.code.lstrip().startswith(("@torch.no_grad()", "def beam_search"))

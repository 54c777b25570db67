"""The README's configuration reference is the one settings.HYBRID_OPTIONS writes."""

from __future__ import annotations

from pathlib import Path

from hybrid_executor.config_reference import main
from hybrid_executor.provider import get_provider_info
from hybrid_executor.settings import HYBRID_OPTIONS

README = Path(__file__).parent.parent / "README.md"


def test_readme_reference_is_current() -> None:
    assert main(["--check", str(README)]) == 0, "run: python -m hybrid_executor.config_reference"


def test_every_option_is_in_the_readme_and_in_airflows_config_metadata() -> None:
    text = README.read_text()
    options = get_provider_info()["config"]["hybrid_executor"]["options"]
    for name in HYBRID_OPTIONS:
        assert f"| `{name}` |" in text
        assert name in options


def test_a_stale_readme_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text().replace("| `api_qps` |", "| `api_qps_old` |"))
    assert main(["--check", str(stale)]) == 1


def test_the_readme_keeps_its_quick_start() -> None:
    # CI runs the README's test command: a regenerated README must still say what it is.
    text = README.read_text()
    assert "## Quick start" in text
    assert "\n    make test\n" in text
    assert "\n    make demo\n" in text

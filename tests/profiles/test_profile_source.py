import asyncio
import shutil
from pathlib import Path

from hub_ext.adapters.profile_source import ProfileSource

ROOT = Path(__file__).resolve().parents[2]


def test_valid_broken_fixed_keeps_last_good(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    good = (tmp_path / "ml-101/profile.yaml").read_text()
    seen: list[int] = []
    src = ProfileSource(tmp_path, on_error=lambda errs: seen.append(len(errs)))
    assert src.reload() == []
    assert src.profiles["ml-101"].display_name == "Machine Learning 101"
    (tmp_path / "ml-101/profile.yaml").write_text(good + "privileged: true\n")
    assert src.reload() and src.reload_errors_total == 1 and seen == [1]
    assert src.profiles["ml-101"].display_name == "Machine Learning 101"
    (tmp_path / "ml-101/profile.yaml").write_text(good.replace("Learning 101", "Learning I"))
    assert src.reload() == []
    assert src.profiles["ml-101"].display_name == "Machine Learning I"


async def test_follows_symlink_swap_and_task_stops(tmp_path: Path) -> None:
    rev = tmp_path / "rev1"
    shutil.copytree(ROOT / "profiles/cv-201", rev / "cv-201")
    (tmp_path / "current").symlink_to(rev)
    src = ProfileSource(tmp_path / "current", interval=0.01)
    src.start()
    await asyncio.sleep(0.05)
    assert "cv-201" in src.profiles
    await src.stop()

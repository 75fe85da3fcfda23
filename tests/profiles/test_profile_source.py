import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


DIGEST = "sha256:" + "b" * 64
ML_IMAGE = "registry.lab.example.edu/courses/ml-101:2026.11"


def test_lock_file_pins_the_offered_image(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    src = ProfileSource(tmp_path)
    assert src.reload() == []
    assert src.profiles["ml-101"].image.digest is None
    assert "not pinned" in src.warnings[0].message
    (tmp_path / "images.lock.yaml").write_text(f"ml-101: {ML_IMAGE}@{DIGEST}\n")
    assert src.reload() == []
    assert src.profiles["ml-101"].image.reference == f"{ML_IMAGE}@{DIGEST}"
    assert src.warnings == ()


def test_lock_for_another_tag_is_not_used(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    old = ML_IMAGE.replace("2026.11", "2026.04")
    (tmp_path / "images.lock.yaml").write_text(f"ml-101: {old}@{DIGEST}\n")
    src = ProfileSource(tmp_path)
    assert src.reload() == []
    assert src.profiles["ml-101"].image.reference == ML_IMAGE
    assert "using the unpinned tag" in src.warnings[0].message


def test_bad_lock_entry_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    (tmp_path / "images.lock.yaml").write_text("ml-101: sha256:abc\n")
    errors = ProfileSource(tmp_path).reload()
    assert [str(e) for e in errors] == [
        f"{tmp_path}/images.lock.yaml: ml-101: 'sha256:abc' is not a pinned image "
        "(allowed: registry/repository:tag@sha256:<64 hex digits>)"
    ]


def test_duplicate_slug_across_directories(tmp_path: Path) -> None:
    for name in ("a", "b"):
        shutil.copytree(ROOT / "profiles/cv-201", tmp_path / name / "cv-201")
    src = ProfileSource([tmp_path / "a", tmp_path / "b"])
    errors = src.reload()
    assert [str(e) for e in errors] == [
        f"{tmp_path}/b/cv-201/profile.yaml:2: slug: duplicate slug 'cv-201', already defined in "
        f"{tmp_path}/a/cv-201/profile.yaml "
        "(allowed: one folder per course across all profile directories)"
    ]
    assert list(src.profiles) == ["cv-201"]


def test_failed_reload_keeps_last_good_set(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    for slug in ("ml-101", "intro-python"):
        shutil.copytree(ROOT / "profiles" / slug, root / slug)
    policy = tmp_path / "policy.yaml"
    policy.write_text((ROOT / "profiles/policy.yaml").read_text())
    seen: list[str] = []
    src = ProfileSource(
        root, on_error=lambda errs: seen.extend(str(e) for e in errs), policy_file=policy
    )
    assert src.reload() == [] and sorted(src.profiles) == ["intro-python", "ml-101"]
    policy.write_text("max_cpu: lots\n")
    errors = src.reload()
    assert [e.message for e in errors] == [
        "reload failed: policy: max_cpu must be a positive number of cores"
    ]
    assert sorted(src.profiles) == ["intro-python", "ml-101"] and src.last_errors == tuple(errors)
    policy.write_text("max_cpu: 2\n")  # ml-101 now exceeds the policy: keep its last good version
    errors = src.reload()
    assert [e.path for e in errors] == ["resources.cpu_guarantee", "resources.cpu_limit"]
    assert sorted(src.profiles) == ["intro-python", "ml-101"]
    assert len(seen) == 3 and src.reload_errors_total == 2
    shutil.rmtree(root / "ml-101")  # a removed course folder is dropped
    assert src.reload() == [] and list(src.profiles) == ["intro-python"]
    shutil.rmtree(root)
    assert "does not exist" in src.reload()[0].message
    assert list(src.profiles) == ["intro-python"]


def test_unchanged_files_are_not_reported_again(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    (tmp_path / "ml-101/profile.yaml").write_text("slug: [\n")
    src = ProfileSource(tmp_path)
    assert len(src.reload()) == 1
    assert src.reload() == [] and src.reload_errors_total == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.sampled_from(["profile", "lock", "policy"]))
def test_reload_never_raises_on_arbitrary_files(text: str, which: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "profiles"
        shutil.copytree(ROOT / "profiles/cv-201", root / "cv-201")
        policy = Path(tmp) / "policy.yaml"
        policy.write_text("max_cpu: 8\n")
        src = ProfileSource(root, policy_file=policy)
        assert src.reload() == []
        target = {"profile": root / "cv-201/profile.yaml", "lock": root / "images.lock.yaml"}
        target.get(which, policy).write_text(text, encoding="utf-8")
        errors = src.reload()
        assert all(isinstance(e.message, str) and e.message for e in errors)
        assert "cv-201" in src.profiles  # a broken change never takes the course down

"""At least 40 bad profiles, each refused with a precise message: file:line, field path, what is
wrong and what is accepted. Every case changes one thing in BASE (a valid profile)."""

from pathlib import Path

import pytest

from hub_ext.core.profiles.build import parse_profile
from hub_ext.core.profiles.model import parse_policy

ROOT = Path(__file__).resolve().parents[3]
POLICY = parse_policy((ROOT / "profiles/policy.yaml").read_text())
FILE = "c/profile.yaml"
BASE = """\
slug: course-c
display_name: Course
description: A course.
lecturers: [prof.a]
groups: [g-a, g-b]
image: registry.lab.example.edu/courses/course-c:1.0
default_url: /lab
resources:
  cpu_guarantee: 2
  cpu_limit: 4
  memory_guarantee: 8GiB
  memory_limit: 16GiB
gpu:
  slice_types: [1g.10gb]
  allow_sharing: false
storage:
  home_size: 250GiB
  storage_class: ceph-rbd
  shares:
    - name: datasets-coco
      mount_path: /shared/coco
  lecturer_share:
    name: course-ml-101
    mount_path: /shared/course
sessions:
  - weekday: tue
    start: "10:00"
    end: "11:30"
    timezone: Europe/Berlin
    group: g-a
    seats: 25
  - weekday: thu
    start: "10:00"
    end: "11:30"
    timezone: Europe/Berlin
    group: g-b
    seats: 25
limits:
  max_runtime: 8h
  idle_timeout: 1h
env:
  MPLBACKEND: Agg
extra_apps: [code-server]
"""

# name: (text replaced in BASE (None: whole text; "": appended), replacement, expected errors as
# (line, field path, what is wrong, what is accepted; ending in "..." when a prefix)).
Expected = tuple[tuple[int | None, str, str, str], ...]
CASES: dict[str, tuple[str | None, str, Expected]] = {
    "privileged-top": (
        "",
        "privileged: true\n",
        (
            (
                44,
                "privileged",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
        ),
    ),
    "hostpath-top": (
        "",
        "hostPath: /var\n",
        (
            (
                44,
                "hostPath",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
        ),
    ),
    "hostpath-nested": (
        "  storage_class: ceph-rbd\n",
        "  storage_class: ceph-rbd\n  hostPath: /data\n",
        (
            (
                19,
                "storage.hostPath",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
        ),
    ),
    "securitycontext-nested": (
        "  cpu_limit: 4\n",
        "  cpu_limit: 4\n  securityContext: {runAsUser: 0}\n",
        (
            (
                11,
                "resources.securityContext",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
            (
                11,
                "resources.securityContext.runAsUser",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
        ),
    ),
    "hostnetwork": (
        "",
        "hostNetwork: true\n",
        (
            (
                44,
                "hostNetwork",
                "security: privileged or host access settings are refused",
                "none; the hub sets the security context",
            ),
        ),
    ),
    "misspelt-top": (
        "display_name: Course",
        "dispaly_name: Course",
        (
            (1, "", "missing required field 'display_name'", "slug, display_name, image"),
            (
                2,
                "dispaly_name",
                "unknown field 'dispaly_name'; did you mean 'display_name'?",
                "default_url, description, display_name, ...",
            ),
        ),
    ),
    "unknown-top": (
        "",
        "replicas: 3\n",
        (
            (
                44,
                "replicas",
                "unknown field 'replicas'",
                "default_url, description, display_name, ...",
            ),
        ),
    ),
    "misspelt-nested-resources": (
        "  cpu_limit: 4",
        "  cpu_limt: 4",
        (
            (
                10,
                "resources.cpu_limt",
                "unknown field 'cpu_limt'; did you mean 'cpu_limit'?",
                "cpu_guarantee, cpu_limit, memory_guarantee, memory_limit",
            ),
        ),
    ),
    "misspelt-nested-gpu": (
        "  allow_sharing: false",
        "  allow_share: false",
        (
            (
                15,
                "gpu.allow_share",
                "unknown field 'allow_share'; did you mean 'allow_sharing'?",
                "allow_sharing, min_gpu_memory, slice_types",
            ),
        ),
    ),
    "unknown-in-session": (
        "    seats: 25\n  - weekday: thu",
        "    seats: 25\n    room: A1\n  - weekday: thu",
        (
            (
                32,
                "sessions[0].room",
                "unknown field 'room'",
                "end, group, seats, start, timezone, weekday",
            ),
        ),
    ),
    "unknown-in-share": (
        "      mount_path: /shared/coco",
        "      mount_path: /shared/coco\n      readOnly: false",
        ((22, "storage.shares[0].readOnly", "unknown field 'readOnly'", "mount_path, name, size"),),
    ),
    "missing-image": (
        "image: registry.lab.example.edu/courses/course-c:1.0\n",
        "",
        ((1, "", "missing required field 'image'", "slug, display_name, image"),),
    ),
    "missing-session-seats": (
        "    seats: 25\nlimits",
        "limits",
        (
            (
                32,
                "sessions[1]",
                "missing required field 'seats'",
                "weekday, start, end, timezone, group, seats",
            ),
        ),
    ),
    "slug-type": (
        "slug: course-c\n",
        "slug: 42\n",
        ((1, "slug", "42 is an integer, expected string", "string"),),
    ),
    "slug-form": (
        "slug: course-c\n",
        "slug: My_Course\n",
        (
            (
                1,
                "slug",
                "'My_Course' has the wrong form",
                "lowercase letters, digits and '-', 2-63 ...",
            ),
        ),
    ),
    "lecturers-type": (
        "lecturers: [prof.a]",
        "lecturers: prof.a",
        ((4, "lecturers", "'prof.a' is a string, expected array", "array"),),
    ),
    "groups-item-type": (
        "groups: [g-a, g-b]",
        "groups: [g-a, 7]",
        ((5, "groups[1]", "7 is an integer, expected string", "string"),),
    ),
    "image-no-tag": (
        "courses/course-c:1.0",
        "courses/c",
        (
            (
                6,
                "image",
                "'registry.lab.example.edu/courses/c' has the wrong form",
                "registry/repository:tag, e.g. registry.l...",
            ),
        ),
    ),
    "image-no-registry": (
        "image: registry.lab.example.edu/courses/course-c:1.0",
        "image: course-c:1.0",
        (
            (
                6,
                "image",
                "'course-c:1.0' has the wrong form",
                "registry/repository:tag, e.g. registry.l...",
            ),
        ),
    ),
    "image-latest": (
        ":1.0",
        ":latest",
        ((6, "image", "tag 'latest' is not reproducible", "a fixed version tag"),),
    ),
    "registry-not-allowed": (
        "registry.lab.example.edu",
        "docker.io",
        ((6, "image", "registry 'docker.io' is not allowed", "registry.lab.example.edu"),),
    ),
    "default-url-form": (
        "default_url: /lab",
        "default_url: lab",
        ((7, "default_url", "'lab' has the wrong form", "a path starting with '/', e.g. /lab"),),
    ),
    "cpu-type": (
        "  cpu_limit: 4",
        "  cpu_limit: four",
        ((10, "resources.cpu_limit", "'four' is a string, expected number", "number"),),
    ),
    "cpu-zero": (
        "  cpu_guarantee: 2",
        "  cpu_guarantee: 0",
        ((9, "resources.cpu_guarantee", "0 is out of range", "> 0"),),
    ),
    "cpu-above-policy": (
        "  cpu_limit: 4",
        "  cpu_limit: 64",
        ((10, "resources.cpu_limit", "64 cores is above the policy maximum", "<= 8"),),
    ),
    "cpu-guarantee-above-limit": (
        "  cpu_guarantee: 2",
        "  cpu_guarantee: 6",
        ((9, "resources.cpu_guarantee", "6 cores is above cpu_limit (4)", "<= 4"),),
    ),
    "memory-bad-size": (
        "  memory_limit: 16GiB",
        "  memory_limit: 16 gigs",
        (
            (
                12,
                "resources.memory_limit",
                "'16 gigs' is not a size",
                "16GiB, 16Gi, 10GB, 512MiB or plain bytes",
            ),
        ),
    ),
    "memory-above-policy-gb-vs-gib": (
        "  memory_limit: 16GiB",
        "  memory_limit: 35GB",
        (
            (
                12,
                "resources.memory_limit",
                "35 GB (32.6 GiB) is above the policy maximum",
                "<= 34.36 GB (32 GiB)",
            ),
        ),
    ),
    "memory-guarantee-above-limit": (
        "  memory_guarantee: 8GiB",
        "  memory_guarantee: 20GB",
        (
            (
                11,
                "resources.memory_guarantee",
                "20 GB (18.63 GiB) is above memory_limit (17.18 GB (16 GiB))",
                "<= 17.18 GB (16 GiB)",
            ),
        ),
    ),
    "memory-type": (
        "  memory_limit: 16GiB",
        "  memory_limit: [16GiB]",
        (
            (
                12,
                "resources.memory_limit",
                "['16GiB'] is an array, expected string or integer",
                "string or integer",
            ),
        ),
    ),
    "gpu-type": (
        "gpu:\n  slice_types: [1g.10gb]\n  allow_sharing: false\n",
        "gpu: 1g.10gb\n",
        ((13, "gpu", "'1g.10gb' is a string, expected object", "object"),),
    ),
    "gpu-empty": (
        "gpu:\n  slice_types: [1g.10gb]\n  allow_sharing: false\n",
        "gpu: {}\n",
        ((13, "gpu", "names neither slice_types nor min_gpu_memory", "one of them"),),
    ),
    "unknown-slice-type": (
        "[1g.10gb]",
        "[9g.99gb]",
        (
            (
                14,
                "gpu.slice_types[0]",
                "unknown slice type '9g.99gb'",
                "1g.10gb, 1g.10gb+me, 1g.18gb, 1g.18gb+me...",
            ),
        ),
    ),
    "slice-not-allowed": (
        "[1g.10gb]",
        "[1g.10gb, 7g.40gb]",
        (
            (
                14,
                "gpu.slice_types[1]",
                "slice type '7g.40gb' is not allowed by policy",
                "1g.10gb, 2g.10gb, 1g.5gb",
            ),
        ),
    ),
    "slice-twice": (
        "[1g.10gb]",
        "[1g.10gb, 1g.10gb]",
        ((14, "gpu.slice_types[1]", "slice type '1g.10gb' is listed twice", ""),),
    ),
    "allow-sharing-type": (
        "  allow_sharing: false",
        "  allow_sharing: maybe",
        ((15, "gpu.allow_sharing", "'maybe' is a string, expected boolean", "boolean"),),
    ),
    "min-gpu-memory-bad": (
        "  allow_sharing: false",
        "  allow_sharing: false\n  min_gpu_memory: lots",
        (
            (
                16,
                "gpu.min_gpu_memory",
                "'lots' is not a size",
                "16GiB, 16Gi, 10GB, 512MiB or plain bytes",
            ),
        ),
    ),
    "home-above-policy": (
        "  home_size: 250GiB",
        "  home_size: 1TiB",
        (
            (
                17,
                "storage.home_size",
                "1.1 TB (1 TiB) is above the policy maximum",
                "<= 536.87 GB (500 GiB)",
            ),
        ),
    ),
    "storage-class-not-allowed": (
        "  storage_class: ceph-rbd",
        "  storage_class: local-path",
        (
            (
                18,
                "storage.storage_class",
                "storage class 'local-path' is not allowed by policy",
                "ceph-rbd",
            ),
        ),
    ),
    "volume-not-allowed": (
        "    - name: datasets-coco",
        "    - name: home-of-someone",
        (
            (
                20,
                "storage.shares[0].name",
                "volume 'home-of-someone' is not allowed by policy",
                "datasets-imagenet, datasets-coco, course...",
            ),
        ),
    ),
    "share-mount-relative": (
        "      mount_path: /shared/coco",
        "      mount_path: shared/coco",
        (
            (
                21,
                "storage.shares[0].mount_path",
                "'shared/coco' has the wrong form",
                "an absolute path",
            ),
        ),
    ),
    "share-mount-over-home": (
        "      mount_path: /shared/coco",
        "      mount_path: /home/jovyan",
        (
            (
                21,
                "storage.shares[0].mount_path",
                "'/home/jovyan' would hide system or home files",
                "/shared/…",
            ),
        ),
    ),
    "share-mount-twice": (
        "    mount_path: /shared/course",
        "    mount_path: /shared/coco",
        (
            (
                24,
                "storage.lecturer_share.mount_path",
                "mount path '/shared/coco' is used twice",
                "unique paths",
            ),
        ),
    ),
    "session-weekday": (
        "  - weekday: thu",
        "  - weekday: thursday",
        (
            (
                32,
                "sessions[1].weekday",
                "'thursday' is not an accepted value",
                "mon, tue, wed, thu, fri, sat, sun",
            ),
        ),
    ),
    "session-time-unquoted": (
        '    start: "10:00"\n    end: "11:30"\n    timezone: Europe/Berlin\n    group: g-b',
        '    start: 10:00\n    end: "11:30"\n    timezone: Europe/Berlin\n    group: g-b',
        (
            (
                33,
                "sessions[1].start",
                (
                    "600 is an integer, expected string; quote times like "
                    '"10:00" (YAML reads them as numbers)'
                ),
                "string",
            ),
        ),
    ),
    "session-time-form": (
        '    end: "11:30"',
        '    end: "25:30"',
        ((28, "sessions[0].end", "'25:30' has the wrong form", 'a quoted local time "HH:MM"'),),
    ),
    "session-end-before-start": (
        '    end: "11:30"',
        '    end: "09:30"',
        ((28, "sessions[0].end", "end must be after start", "later than 10:00"),),
    ),
    "session-bad-timezone": (
        "    timezone: Europe/Berlin",
        "    timezone: Mars/Olympus",
        (
            (
                29,
                "sessions[0].timezone",
                "unknown time zone 'Mars/Olympus'",
                "an IANA time zone such as Europe/Berlin",
            ),
        ),
    ),
    "session-overlap": (
        "  - weekday: thu",
        "  - weekday: tue",
        ((32, "sessions[1]", "overlaps sessions[0]", "sessions on separate time windows"),),
    ),
    "session-group-unknown": (
        "    group: g-b",
        "    group: g-z",
        ((36, "sessions[1].group", "group 'g-z' is not in groups", "g-a, g-b"),),
    ),
    "session-seats-zero": (
        "    seats: 25\nlimits",
        "    seats: 0\nlimits",
        ((37, "sessions[1].seats", "0 is out of range", ">= 1"),),
    ),
    "session-seats-type": (
        "    seats: 25\nlimits",
        "    seats: many\nlimits",
        ((37, "sessions[1].seats", "'many' is a string, expected integer", "integer"),),
    ),
    "limits-bad-duration": (
        "  max_runtime: 8h",
        "  max_runtime: forever",
        (
            (
                39,
                "limits.max_runtime",
                "'forever' is not a positive duration",
                "90m, 8h, 1d, 3600s or plain seconds",
            ),
        ),
    ),
    "limits-idle-above-runtime": (
        "  idle_timeout: 1h",
        "  idle_timeout: 9h",
        (
            (
                40,
                "limits.idle_timeout",
                "32400 s is longer than max_runtime (28800 s)",
                "<= 28800 s",
            ),
        ),
    ),
    "env-secret": (
        "  MPLBACKEND: Agg",
        "  MPLBACKEND: Agg\n  DB_PASSWORD: hunter2",
        (
            (
                43,
                "env.DB_PASSWORD",
                "looks like a secret; secrets must not be in profiles",
                "non-secret variables; mount secrets through the hub",
            ),
        ),
    ),
    "env-name": (
        "  MPLBACKEND: Agg",
        "  MPLBACKEND: Agg\n  1BAD: x",
        (
            (
                43,
                "env.1BAD",
                "'1BAD' is not a valid environment variable name",
                "letters, digits and '_', not starting with a digit",
            ),
        ),
    ),
    "env-value-type": (
        "  MPLBACKEND: Agg",
        "  MPLBACKEND: [a, b]",
        (
            (
                42,
                "env.MPLBACKEND",
                "['a', 'b'] is an array, expected string or number or boolean",
                "string or number or boolean",
            ),
        ),
    ),
    "extra-app-unknown": (
        "[code-server]",
        "[code-server, rstudio]",
        ((43, "extra_apps[1]", "'rstudio' is not an accepted value", "code-server, desktop"),),
    ),
    "extra-app-twice": (
        "[code-server]",
        "[code-server, code-server]",
        ((43, "extra_apps", "lists an item twice", "unique items"),),
    ),
    "duplicate-key": (
        "default_url: /lab",
        "default_url: /lab\ndefault_url: /tree",
        (
            (
                8,
                "",
                "invalid YAML: duplicate key 'default_url'",
                "plain YAML: one document, each key once,...",
            ),
        ),
    ),
    "anchors-bomb": (
        None,
        'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n',
        (
            (
                1,
                "",
                "invalid YAML: anchors and aliases are not allowed",
                "plain YAML: one document, each key once,...",
            ),
        ),
    ),
    "anchor-only": (
        "groups: [g-a, g-b]",
        "groups: &g [g-a, g-b]",
        (
            (
                5,
                "",
                "invalid YAML: anchors and aliases are not allowed",
                "plain YAML: one document, each key once,...",
            ),
        ),
    ),
    "not-a-mapping": (
        None,
        "- just\n- a list\n",
        ((1, "", "profile must be a mapping", "slug, display_name, image, ..."),),
    ),
    "invalid-yaml": (
        None,
        "slug: c\ndisplay_name: [unclosed\n",
        (
            (
                3,
                "",
                (
                    "invalid YAML: while parsing a flow sequence, expected ',' "
                    "or ']', but got '<stream end>'"
                ),
                "plain YAML: one document, each key once,...",
            ),
        ),
    ),
    "two-documents": (
        None,
        "slug: c\n---\nslug: d\n",
        (
            (
                2,
                "",
                (
                    "invalid YAML: expected a single document in the stream, but "
                    "found another document"
                ),
                "plain YAML: one document, each key once,...",
            ),
        ),
    ),
}


def _text(old: str | None, new: str) -> str:
    if old is None:
        return new
    if old == "":
        return BASE + new
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _matches(got: str, want: str) -> bool:
    return got.startswith(want[:-3]) if want.endswith("...") else got == want


def test_base_is_valid() -> None:
    profile, errors = parse_profile(BASE, FILE, POLICY)
    assert errors == [] and profile is not None


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_bad_profile_refused_precisely(name: str) -> None:
    old, new, expected = CASES[name]
    profile, errors = parse_profile(_text(old, new), FILE, POLICY)
    assert profile is None
    assert len(errors) == len(expected), [str(e) for e in errors]
    for error, (line, path, message, allowed) in zip(errors, expected, strict=True):
        assert error.file == FILE
        assert (error.line, error.path, error.message) == (line, path, message), str(error)
        assert _matches(error.allowed, allowed), str(error)
        where = f"{FILE}:{line}" if line else FILE
        assert str(error).startswith(f"{where}: {path or '<root>'}: {message}")


def test_oversized_file_refused() -> None:
    _, errors = parse_profile("description: " + "x" * 300_000 + "\n", FILE, POLICY)
    assert [str(e) for e in errors] == [
        "c/profile.yaml: <root>: file too large (allowed: at most 262144 bytes)"
    ]

"""Images without pulling: the map from image repository to the host command standing for it.

The development cluster has no container runtime and pulls no image. A cluster file's
``kubelet.images`` maps an image repository (the image reference without tag or digest, or a
shell-style pattern such as ``registry.example.org/courses/*``) to what the image would run::

    kubelet:
      images:
        quay.io/jupyterhub/configurable-http-proxy:
          entrypoint: [configurable-http-proxy]   # the image's ENTRYPOINT, as host commands
          cmd: []                                  # its CMD
          home: /home/jovyan                       # HOME when the pod sets none
          workingDir: /srv                         # the image's WORKDIR
      allowedHostPaths: [/srv/datasets]            # hostPath volumes under these are allowed
      crashLoopBackOffSeconds: 10                  # first back-off of a crashing container

``command`` and ``args`` then override ``entrypoint`` and ``cmd`` as in Kubernetes. The cluster
file's entries are added to (and replace) :data:`DEFAULT_IMAGES`, which covers the images the
LabHub chart runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class KubeletConfigError(ValueError):
    """A ``kubelet:`` section that cannot be used; the message names the field."""


@dataclass(frozen=True)
class ImageEntry:
    """What an image would run, in host terms."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    home: str = ""
    working_dir: str = ""


def _entry(
    entrypoint: Sequence[str], cmd: Sequence[str] = (), home: str = "", workdir: str = ""
) -> ImageEntry:
    return ImageEntry(tuple(entrypoint), tuple(cmd), home, workdir)


# The images the chart renders (helm/labhub/values.yaml) and the images of images/: an empty
# entrypoint stands for an exec wrapper (tini --), so that args alone are the command line.
SINGLEUSER = _entry((), ("jupyterhub-singleuser",), "/home/jovyan", "/home/jovyan")
DEFAULT_IMAGES: Mapping[str, ImageEntry] = {
    # images/hub: USER 1000 (home /home/jovyan), WORKDIR /srv/jupyterhub
    "ghcr.io/labhub/labhub-hub": _entry(
        (),
        ("jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"),
        "/home/jovyan",
        "/srv/jupyterhub",
    ),
    # images/singleuser-*, the chart's default singleuser image and the course images
    "ghcr.io/labhub/labhub-singleuser-*": SINGLEUSER,
    "*/labhub/singleuser-*": SINGLEUSER,
    "quay.io/jupyter/*": SINGLEUSER,
    # the example course images of profiles/ (built from images/singleuser-*)
    "registry.lab.example.edu/courses/*": SINGLEUSER,
    "quay.io/jupyterhub/configurable-http-proxy": _entry(("configurable-http-proxy",)),
    "registry.k8s.io/git-sync/git-sync": _entry(("git-sync",)),
    "registry.k8s.io/kube-scheduler": _entry(("kube-scheduler",)),
    "docker.io/library/traefik": _entry(("traefik",)),
    "docker.io/library/redis": _entry((), ("redis-server",)),
    # the pre-puller's main container (prePuller.pause.image): it only holds the pod open
    "registry.k8s.io/pause": _entry(("sleep", "infinity")),
}
DEFAULT_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class KubeletConfig:
    """The cluster file's ``kubelet:`` section."""

    images: Mapping[str, ImageEntry] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    allowed_host_paths: tuple[str, ...] = ()
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS

    def image(self, reference: str) -> ImageEntry | None:
        """The entry of an image reference (exact repository first, then patterns)."""
        repo = repository(reference)
        for candidate in (repo, _with_default_registry(repo)):
            if candidate in self.images:
                return self.images[candidate]
        for pattern, entry in self.images.items():
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(repo, pattern):
                return entry
        return None

    def host_path_allowed(self, path: str) -> bool:
        clean = "/" + path.strip("/")
        return any(
            clean == p.rstrip("/") or clean.startswith(p.rstrip("/") + "/")
            for p in self.allowed_host_paths
        )


def repository(reference: str) -> str:
    """``quay.io/jupyter/base-notebook:2025-03-17`` -> ``quay.io/jupyter/base-notebook``."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _with_default_registry(repo: str) -> str:
    first = repo.split("/", 1)[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        return repo
    return f"docker.io/{repo}" if "/" in repo else f"docker.io/library/{repo}"


def parse_kubelet_config(data: object, where: str = "kubelet") -> KubeletConfig:
    """Check a cluster file's ``kubelet:`` mapping."""
    if data is None:
        return KubeletConfig()
    allowed = {"images", "allowedHostPaths", "crashLoopBackOffSeconds"}
    root = _mapping(data, where, allowed)
    images = dict(DEFAULT_IMAGES)
    raw_images = _mapping(root.get("images") or {}, f"{where}.images", None)
    for repo, value in raw_images.items():
        images[str(repo)] = _image(value, f"{where}.images[{repo!r}]")
    paths = root.get("allowedHostPaths") or []
    if not isinstance(paths, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise KubeletConfigError(f"{where}.allowedHostPaths: must be a list of absolute paths")
    backoff = root.get("crashLoopBackOffSeconds", DEFAULT_BACKOFF_SECONDS)
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff <= 0:
        raise KubeletConfigError(
            f"{where}.crashLoopBackOffSeconds: must be a positive number of seconds (default 10)"
        )
    return KubeletConfig(images, tuple(paths), float(backoff))


def _mapping(data: object, where: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise KubeletConfigError(f"{where}: must be a mapping")
    unknown = sorted(str(k) for k in data if allowed is not None and k not in allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed or ()))
        raise KubeletConfigError(
            f"{where}: unknown field {unknown[0]!r}; accepted fields: {accepted}"
        )
    return dict(data)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KubeletConfigError(
            f"{where}: must be a list of strings, e.g. [jupyterhub-singleuser]"
        )
    return tuple(value)


def _image(value: object, where: str) -> ImageEntry:
    entry = _mapping(value, where, {"entrypoint", "cmd", "home", "workingDir"})
    entrypoint = _strings(entry.get("entrypoint"), f"{where}.entrypoint")
    cmd = _strings(entry.get("cmd"), f"{where}.cmd")
    if not entrypoint and not cmd:
        raise KubeletConfigError(f"{where}: give the host command as entrypoint or cmd")
    home, working_dir = entry.get("home") or "", entry.get("workingDir") or ""
    for key, text in (("home", home), ("workingDir", working_dir)):
        if not isinstance(text, str) or (text and not text.startswith("/")):
            raise KubeletConfigError(f"{where}.{key}: must be an absolute path")
    return ImageEntry(entrypoint, cmd, str(home), str(working_dir))


def container_argv(container: Mapping[str, Any], config: KubeletConfig) -> tuple[str, ...]:
    """The command line of a container: Kubernetes' rules for command/args over the image's
    ENTRYPOINT/CMD. Raises :class:`ImagePullError` for an image that is not in the map and a
    container that has no ``command``."""
    command = [str(a) for a in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if command:
        return (*command, *args)
    image = str(container.get("image") or "")
    entry = config.image(image)
    if entry is None:
        raise ImagePullError(image)
    argv = (*entry.entrypoint, *(args if args else entry.cmd))
    if not argv:
        raise ImagePullError(image)
    return argv


class ImagePullError(Exception):
    """An image the kubelet cannot stand in for (kubelet reason ``ErrImagePull``)."""

    reason = "ErrImagePull"

    def __init__(self, image: str) -> None:
        self.image = image
        self.message = (
            f'Failed to pull image "{image}": the devcluster pulls no images and has no host '
            f'command for repository "{repository(image)}": add it to the cluster file under '
            "kubelet.images (entrypoint/cmd), or give the container a command"
        )
        super().__init__(self.message)

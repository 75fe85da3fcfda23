"""Container init: enter a new mount namespace, mount the volumes, exec the container command.

Run as ``python3 -S nsinit.py SPEC.json`` (standard library only, no package import, so that it
starts fast). The spec gives ``mounts`` (source, target, readOnly), ``scratch`` (an empty host
directory of the pod's sandbox), ``cwd``, ``userns`` and ``argv``. A mount point that does not
exist on the host is created in a copy-on-write overlay of its nearest existing parent, so the
host's files stay visible and unchanged; the process runs the host's binaries. Failures print
one line naming the mount and what to do, and exit 128 (the container then fails to start).
"""

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


class InitError(Exception):
    pass


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise InitError(f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data, what):
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        what,
    )


def _enter(userns):
    uid, gid = os.getuid(), os.getgid()
    if not userns:
        _check(_libc.unshare(CLONE_NEWNS), "cannot create a mount namespace (unshare)")
        return
    _check(
        _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS),
        "cannot create a user and mount namespace as a normal user (unshare); enable "
        "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
        "user.max_user_namespaces > 0) or run the devcluster as root",
    )
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


class Layout:
    def __init__(self, scratch):
        self.scratch_fd = os.open(scratch, os.O_PATH | os.O_DIRECTORY)
        self.count = 0
        self.mounted = []  # targets mounted so far: creating below them writes to the volume
        self.overlaid = []

    def _inside(self, path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def ensure(self, target, is_dir):
        """Make ``target`` exist in this namespace, without writing to the host's directories."""
        if os.path.lexists(target):
            if os.path.isdir(target) != is_dir:
                kind = "a directory" if is_dir else "a file"
                raise InitError(f"mount point {target} exists and is not {kind}")
            return
        parent = os.path.dirname(target)
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if not self._inside(parent, self.mounted + self.overlaid):
            self._overlay(parent, target)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))

    def _overlay(self, lower, target):
        if lower == "/":
            top = "/" + target.strip("/").split("/")[0]
            if os.getuid() != 0:
                raise InitError(
                    f"mount point {target} needs the top-level directory {top}, which a normal "
                    f"user cannot create: create {top} on the host or choose another mountPath"
                )
            os.mkdir(top, 0o755)  # a top-level directory cannot be overlaid: an empty one
            self.overlaid.append(top)
            return
        n = self.count = self.count + 1
        for name in (f"u{n}", f"w{n}"):
            os.mkdir(name, 0o755, dir_fd=self.scratch_fd)
        base = f"/proc/self/fd/{self.scratch_fd}"
        options = f"lowerdir={lower},upperdir={base}/u{n},workdir={base}/w{n}"
        _mount("overlay", lower, "overlay", 0, options, f"cannot overlay {lower} for {target}")
        self.overlaid.append(lower)


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    _enter(spec.get("userns", False))
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "cannot make the mounts private")
    mounts = spec.get("mounts") or []
    fds = [os.open(m["source"], os.O_PATH) for m in mounts]  # before an overlay hides them
    # HOME and the working directory: made in the container only where the host has none
    missing = [path for path in spec.get("dirs") or [] if not os.path.isdir(path)]
    host_cwd = None if spec["cwd"] in missing else os.open(spec["cwd"], os.O_PATH)
    _mount("tmpfs", spec["scratch"], "tmpfs", 0, "mode=0700", "cannot mount the scratch tmpfs")
    layout = Layout(spec["scratch"])
    for m, fd in zip(mounts, fds, strict=True):
        target = m["target"]
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        layout.ensure(target, is_dir)
        _mount(
            f"/proc/self/fd/{fd}",
            target,
            None,
            MS_BIND | MS_REC,
            None,
            f"cannot mount {m['source']} at {target}",
        )
        if m.get("readOnly"):
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            _mount(None, target, None, flags, None, f"cannot make {target} read-only")
        layout.mounted.append(target)
        os.close(fd)
    for path in missing:
        if not os.path.isdir(path):
            layout.ensure(path, True)
    os.close(layout.scratch_fd)
    try:
        os.chdir(spec["cwd"])
    except OSError:
        if host_cwd is None:
            raise
        os.fchdir(host_cwd)  # a host directory that a volume now hides (e.g. under /tmp)
    if spec.get("readyFd") is not None:
        os.set_inheritable(spec["readyFd"], False)  # closed by exec: the kubelet sees EOF
    program = spec["argv"][0]
    try:
        os.execv(program, spec["argv"])  # noqa: S606 - the container's command, by design
    except OSError as exc:
        hidden = [m["target"] for m in mounts if program.startswith(m["target"].rstrip("/") + "/")]
        why = f": the volume mounted at {hidden[0]} hides the host's {hidden[0]}" if hidden else ""
        raise InitError(f'exec "{program}": {exc.strerror}{why}') from exc


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (InitError, OSError) as exc:
        sys.stderr.write(f"devcluster: cannot start the container: {exc}\n")
        sys.exit(128)

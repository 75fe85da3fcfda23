"""Container init: enter a new mount namespace, mount the volumes, then exec the command.

The kubelet runs :func:`prepare` in the forked child before it execs the container's command
(``preexec_fn``, see :mod:`.runtime`), so that a container start costs one fork and no extra
interpreter. The module is standard library only and imports nothing at run time, because the
child of a multi-threaded process must not take locks that another thread may hold. It also
runs as a script, ``python3 -S nsinit.py SPEC.json``, which execs ``argv`` itself (to try the
init as another user). The spec gives ``mounts`` (source, target, readOnly), ``scratch`` (an
empty host directory of the pod's sandbox), ``cwd``, ``userns`` and ``argv``. A mount point that
does not exist on the host is created in a copy-on-write overlay of its nearest existing parent,
so the host's files stay visible and unchanged; the process runs the host's binaries. Failures
print one line naming the mount and what to do, and exit 128 (the container then fails to start).
"""

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
FAILED = 128
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
    maps = (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1"))
    for name, text in maps:
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


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


def prepare(spec):
    """Enter the namespaces, mount the volumes and change to the working directory."""
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
    program = spec["argv"][0]
    if not os.access(program, os.X_OK):
        hidden = [m["target"] for m in mounts if program.startswith(m["target"].rstrip("/") + "/")]
        if hidden:
            raise InitError(
                f'exec "{program}": no such file or not executable: the volume mounted at '
                f"{hidden[0]} hides the host's {hidden[0]}"
            )


def child(spec, parent):
    """The ``preexec_fn`` of a container: its end is tied to the kubelet's (``parent``), then
    :func:`prepare`. A failure is written to the container's output, which the kubelet logs,
    and the child exits 128 without running the command."""
    try:
        _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "cannot set the parent-death signal")
        if os.getppid() != parent:  # the kubelet ended before the signal was armed
            os._exit(137)
        prepare(spec)
    except BaseException as exc:  # nothing may escape into the forked child
        _fail(exc)


def _fail(exc):
    message = f"devcluster: cannot start the container: {exc}\n".encode(errors="replace")
    try:
        os.write(2, message)
    finally:
        os._exit(FAILED)


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    try:
        prepare(spec)
        os.execv(spec["argv"][0], spec["argv"])  # noqa: S606 - the container's command
    except (InitError, OSError) as exc:
        _fail(exc)


if __name__ == "__main__":
    main(sys.argv)

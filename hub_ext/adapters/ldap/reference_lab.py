"""A private OpenLDAP server loaded with the reference lab (for tests and ``make demo``).

:func:`write_tls_files` makes a throw-away CA and a server certificate for ``127.0.0.1`` and
``localhost``; :func:`reference_lab` describes the lab's people and groups;
:class:`Slapd` writes its own ``slapd.conf`` and data directory under a work directory, starts
Debian's ``/usr/sbin/slapd`` in the foreground on free loopback ports (``ldap://`` with StartTLS
and ``ldaps://``) and loads the lab over LDAP so that the ``memberof`` overlay sees every group.
It never reads or touches a system-wide slapd configuration.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SLAPD = os.environ.get("LABHUB_SLAPD", "/usr/sbin/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
BASE_DN = "dc=lab,dc=example"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "labhub-root-secret"  # noqa: S105 - throw-away test directory
SERVICE_DN = f"cn=hub-service,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "labhub-service-secret"  # noqa: S105


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def write_tls_files(directory: Path, names: tuple[str, ...] = ("localhost",)) -> TlsFiles:
    """Create a CA and a server certificate (SANs: ``names`` and 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LabHub test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    files.server_key.chmod(0o600)
    return files


# --- the reference lab -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabGroup:
    cn: str
    members: tuple[str, ...]  # uids
    object_class: str = "groupOfNames"  # or groupOfUniqueNames
    subgroups: tuple[str, ...] = ()  # cns of groups that are members (nesting)


@dataclass(frozen=True)
class ReferenceLab:
    base_dn: str
    users: tuple[str, ...]
    groups: tuple[LabGroup, ...]
    passwords: dict[str, str] = field(default_factory=dict)

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.base_dn}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=groups,{self.base_dn}"

    def posix_group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=posixgroups,{self.base_dn}"

    def group(self, cn: str) -> LabGroup:
        return next(g for g in self.groups if g.cn == cn)


def lab_password(uid: str) -> str:
    """The reference lab's password for ``uid`` (only for the throw-away directory)."""
    return f"{uid}-Pa55word"


def reference_lab(base_dn: str = BASE_DN) -> ReferenceLab:
    """50 students in ml101-a/ml101-b, a second course, lecturers, admins and a nested group."""
    students = tuple(f"student{i:02d}" for i in range(1, 51))
    lecturers = ("lecturer1", "lecturer2")
    admins = ("labadmin",)
    groups = (
        LabGroup("ml101-a", students[:25]),
        LabGroup("ml101-b", students[25:]),
        LabGroup("cv201", students[:5] + students[45:], object_class="groupOfUniqueNames"),
        LabGroup("lecturers", lecturers),
        LabGroup("hub-admins", admins),
        LabGroup("ml101-all", (), subgroups=("ml101-a", "ml101-b")),
    )
    users = students + lecturers + admins
    return ReferenceLab(base_dn, users, groups, {u: lab_password(u) for u in users})


def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - LDAP {SSHA} format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def lab_ldif(lab: ReferenceLab) -> str:
    """The LDIF for ``lab`` (posixGroup copies of every group with direct members)."""
    b = lab.base_dn
    dc = b.split(",")[0].split("=")[1]
    out = [f"dn: {b}\nobjectClass: dcObject\nobjectClass: organization\ndc: {dc}\no: LabHub\n"]
    for ou in ("people", "groups", "posixgroups", "services"):
        out.append(f"dn: ou={ou},{b}\nobjectClass: organizationalUnit\nou: {ou}\n")
    out.append(
        f"dn: {SERVICE_DN.replace(BASE_DN, b)}\nobjectClass: person\ncn: hub-service\n"
        f"sn: service\nuserPassword: {ssha(SERVICE_PASSWORD)}\n"
    )
    for n, uid in enumerate(lab.users):
        out.append(
            f"dn: {lab.user_dn(uid)}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {uid}\ncn: {uid.title()}\nsn: {uid}\nmail: {uid}@lab.example\n"
            f"uidNumber: {10000 + n}\ngidNumber: 10000\nhomeDirectory: /home/{uid}\n"
            f"userPassword: {ssha(lab.passwords[uid])}\n"
        )
    for gid, g in enumerate(lab.groups):
        attr = "member" if g.object_class == "groupOfNames" else "uniqueMember"
        members = [lab.user_dn(u) for u in g.members] + [lab.group_dn(s) for s in g.subgroups]
        lines = [f"dn: {lab.group_dn(g.cn)}", f"objectClass: {g.object_class}", f"cn: {g.cn}"]
        lines += [f"{attr}: {m}" for m in members]
        out.append("\n".join(lines) + "\n")
        if g.members:
            lines = [f"dn: {lab.posix_group_dn(g.cn)}", "objectClass: posixGroup", f"cn: {g.cn}"]
            lines += [f"gidNumber: {20000 + gid}"] + [f"memberUid: {u}" for u in g.members]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# --- slapd -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memberof_available() -> bool:
    return (MODULE_DIR / "memberof.so").exists() or (MODULE_DIR / "memberof.la").exists()


def slapd_available() -> bool:
    return Path(SLAPD).exists() and (SCHEMA_DIR / "core.schema").exists()


SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/nis.schema
include {schema}/inetorgperson.schema
pidfile {work}/slapd.pid
argsfile {work}/slapd.args
modulepath {modules}
moduleload back_mdb
{memberof_module}
TLSCACertificateFile {tls.ca_cert}
TLSCertificateFile {tls.server_cert}
TLSCertificateKeyFile {tls.server_key}
database mdb
maxsize 67108864
suffix "{base}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {work}/data
index objectClass eq
index uid,memberUid,member,uniqueMember eq
{memberof_overlay}
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="{service}" read by users read by * none
"""

MEMBEROF_OVERLAY = """overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE"""


class Slapd:
    """One private slapd process (foreground, loopback only). Use ``start()``/``stop()``."""

    def __init__(self, work: Path, tls: TlsFiles, lab: ReferenceLab | None = None) -> None:
        self.work = work
        self.tls = tls
        self.lab = lab or reference_lab()
        self.port = 0
        self.tls_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.memberof = memberof_available()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def write_config(self) -> Path:
        (self.work / "data").mkdir(parents=True, exist_ok=True)
        conf = self.work / "slapd.conf"
        conf.write_text(
            SLAPD_CONF.format(
                schema=SCHEMA_DIR,
                work=self.work,
                modules=MODULE_DIR,
                tls=self.tls,
                base=self.lab.base_dn,
                rootdn=ROOT_DN.replace(BASE_DN, self.lab.base_dn),
                rootpw=ROOT_PASSWORD,
                service=SERVICE_DN.replace(BASE_DN, self.lab.base_dn),
                memberof_module="moduleload memberof" if self.memberof else "",
                memberof_overlay=MEMBEROF_OVERLAY if self.memberof else "",
            )
        )
        return conf

    def start(self, timeout: float = 20.0, load: bool = True) -> None:
        """Start slapd (fresh ports unless restarting) and load the lab if the data is new."""
        conf = self.write_config()
        fresh = not any((self.work / "data").glob("*.mdb"))
        if not self.port:
            self.port, self.tls_port = free_port(), free_port()
        urls = f"{self.url}/ {self.ldaps_url}/"
        log = open(self.work / "slapd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(conf), "-h", urls],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                text = (self.work / "slapd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: {text}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("slapd did not open its port in time") from None
                time.sleep(0.05)
        if load and fresh:
            try:
                self.ldap_modify(lab_ldif(self.lab), add=True)
            except BaseException:
                self.stop()
                raise

    def ldap_modify(self, ldif: str, add: bool = False) -> None:
        """Apply LDIF as the root DN with ``ldapadd``/``ldapmodify`` (ldap-utils)."""
        tool = shutil.which("ldapadd" if add else "ldapmodify") or "/usr/bin/ldapmodify"
        rootdn = ROOT_DN.replace(BASE_DN, self.lab.base_dn)
        subprocess.run(
            [tool, "-x", "-H", self.url, "-D", rootdn, "-w", ROOT_PASSWORD],
            input=ldif.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def kill(self) -> None:
        """Die abruptly (SIGKILL), like a crashed server."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

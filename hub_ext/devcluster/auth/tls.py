"""The cluster CA and the API server's serving certificate (for the secure port).

Real clients (kubectl, Helm: client-go) send credentials over TLS only, so the API server
serves HTTPS as kube-apiserver does; its CA is ``ca.crt`` in the kubeconfig, in the
``kube-root-ca.crt`` ConfigMaps and in every pod's ServiceAccount volume. Both are created once
in ``<state_dir>/auth`` (a temporary CA when there is no state directory).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAYS = 3650


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _build(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        ).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = (
            builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
    return builder.sign(issuer_key, hashes.SHA256())


class ClusterTLS:
    """The CA (``ca.crt``) and a serving certificate for 127.0.0.1 and kubernetes.default."""

    def __init__(self, directory: Path | None) -> None:
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="devcluster-tls-")
            directory = Path(self._tmp.name)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
        if not (ca_cert.exists() and ca_key.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _build("labhub-devcluster-ca", key, None, key)
            _write_key(ca_key, key)
            ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.ca_pem = ca_cert.read_text()
        server_cert, server_key = directory / "apiserver.crt", directory / "apiserver.key"
        if not (server_cert.exists() and server_key.exists()):
            ca = x509.load_pem_x509_certificate(self.ca_pem.encode())
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _build("kube-apiserver", key, ca, _load_key(ca_key))
            _write_key(server_key, key)
            server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file, self.key_file = server_cert, server_key

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

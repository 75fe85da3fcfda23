"""Credentials of the emulator's own components (scheduler, kubelets, node lifecycle and
volume controllers): each authenticates with a static token of its real cluster identity.

The API server registers its token signer under its URL when it starts; a component in the same
process asks for its token by that URL, as a real component reads its kubeconfig.
"""

from __future__ import annotations

from hub_ext.devcluster.auth.tokens import COMPONENTS, TokenSigner, node_user

_SIGNERS: dict[str, TokenSigner] = {}
_SECURE: dict[str, str] = {}


def register(url: str, signer: TokenSigner, secure: str = "") -> None:
    _SIGNERS[url.rstrip("/")] = signer
    _SECURE[url.rstrip("/")] = secure


def secure_url(url: str) -> str:
    """The HTTPS URL of the API server whose plain-HTTP URL is ``url`` ("" if unknown)."""
    return _SECURE.get(url.rstrip("/"), "")


def component_token(url: str, component: str = "controllers", node: str | None = None) -> str:
    """The bearer token of ``component`` (or of kubelet ``node``) for the API server at ``url``.

    Empty when no API server of this process serves ``url``.
    """
    signer = _SIGNERS.get(url.rstrip("/"))
    if signer is None:
        return ""
    return signer.component_token(node_user(node) if node else COMPONENTS[component])

"""Credentials of the emulator's own components (scheduler, kubelets, node lifecycle and
volume controllers): each authenticates with a static token of its real cluster identity.

The API server registers its token signer under its URL when it starts; a component in the same
process asks for its token by that URL, as a real component reads its kubeconfig.
"""

from __future__ import annotations

from hub_ext.devcluster.auth.tokens import COMPONENTS, TokenSigner, node_user

_SIGNERS: dict[str, TokenSigner] = {}


def register(url: str, signer: TokenSigner) -> None:
    _SIGNERS[url.rstrip("/")] = signer


def unregister(url: str) -> None:
    _SIGNERS.pop(url.rstrip("/"), None)


def component_token(url: str, component: str = "controllers", node: str | None = None) -> str:
    """The bearer token of ``component`` (or of kubelet ``node``) for the API server at ``url``.

    Empty when no API server of this process serves ``url``.
    """
    signer = _SIGNERS.get(url.rstrip("/"))
    if signer is None:
        return ""
    return signer.component_token(node_user(node) if node else COMPONENTS[component])

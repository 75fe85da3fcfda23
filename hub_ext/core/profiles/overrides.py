"""KubeSpawner settings a course profile may override (``kubespawner_override``).

:data:`KUBESPAWNER_TRAITS` is the list of KubeSpawner 7.1's configurable traits (a test checks it
against the installed KubeSpawner). A profile's override names one of them, not one of
:data:`HUB_OWNED` (set for the whole hub, or through a profile field of its own), and no value
that loosens the security floor (:mod:`hub_ext.core.pod_floors`). Anything else is an error that
names the setting: a typo is never ignored.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from hub_ext.core.pod_floors import setting_violations

__all__ = ["HUB_OWNED", "KUBESPAWNER_TRAITS", "override_problems"]

KUBESPAWNER_TRAITS = frozenset(
    (
        "additional_profile_form_template_paths",
        "after_pod_created_hook",
        "allow_privilege_escalation",
        "apply_user_options",
        "args",
        "auth_state_hook",
        "automount_service_account_token",
        "cmd",
        "common_labels",
        "component_label",
        "consecutive_failure_limit",
        "container_security_context",
        "cpu_guarantee",
        "cpu_limit",
        "debug",
        "default_url",
        "delete_grace_period",
        "delete_pvc",
        "delete_stopped_pods",
        "disable_user_config",
        "dns_name_template",
        "enable_user_namespaces",
        "env_keep",
        "environment",
        "events_enabled",
        "extra_annotations",
        "extra_container_config",
        "extra_containers",
        "extra_labels",
        "extra_pod_config",
        "extra_resource_guarantees",
        "extra_resource_limits",
        "fs_gid",
        "get_pod_url",
        "gid",
        "group_overrides",
        "handle_legacy_names",
        "http_timeout",
        "hub_connect_ip",
        "hub_connect_port",
        "hub_connect_url",
        "image",
        "image_pull_policy",
        "image_pull_secrets",
        "init_containers",
        "ip",
        "k8s_api_host",
        "k8s_api_request_retry_timeout",
        "k8s_api_request_timeout",
        "k8s_api_ssl_ca_cert",
        "k8s_api_threadpool_workers",
        "k8s_api_verify_ssl",
        "lifecycle_hooks",
        "mem_guarantee",
        "mem_limit",
        "modify_pod_hook",
        "namespace",
        "node_affinity_preferred",
        "node_affinity_required",
        "node_selector",
        "notebook_dir",
        "oauth_client_allowed_scopes",
        "oauth_roles",
        "options_form",
        "options_from_form",
        "pod_affinity_preferred",
        "pod_affinity_required",
        "pod_anti_affinity_preferred",
        "pod_anti_affinity_required",
        "pod_connect_ip",
        "pod_name_template",
        "pod_security_context",
        "poll_interval",
        "poll_jitter",
        "port",
        "post_stop_hook",
        "pre_spawn_hook",
        "priority_class_name",
        "privileged",
        "profile_form_template",
        "profile_list",
        "progress_ready_hook",
        "pvc_name_template",
        "remember_pvc_name",
        "scheduler_name",
        "secret_mount_path",
        "secret_name_template",
        "server_token_scopes",
        "service_account",
        "services_enabled",
        "slow_spawn_message",
        "slow_spawn_message_frequency",
        "slow_spawn_message_threshold",
        "slug_scheme",
        "ssl_alt_names",
        "ssl_alt_names_include_local",
        "start_timeout",
        "storage_access_modes",
        "storage_capacity",
        "storage_class",
        "storage_extra_annotations",
        "storage_extra_labels",
        "storage_pvc_ensure",
        "storage_selector",
        "supplemental_gids",
        "tolerations",
        "uid",
        "user_namespace_annotations",
        "user_namespace_labels",
        "user_namespace_template",
        "volume_mounts",
        "volumes",
        "working_dir",
    )
)

#: Settings a profile may not override, with what to use instead.
HUB_OWNED: dict[str, str] = {
    "image": "the profile's image field",
    "cpu_guarantee": "resources.cpu_guarantee",
    "cpu_limit": "resources.cpu_limit",
    "mem_guarantee": "resources.memory_guarantee",
    "mem_limit": "resources.memory_limit",
    "default_url": "the profile's default_url field",
    "environment": "the profile's env field",
    "storage_capacity": "storage.home_size",
    **dict.fromkeys(
        (
            "additional_profile_form_template_paths",
            "apply_user_options",
            "auth_state_hook",
            "component_label",
            "common_labels",
            "consecutive_failure_limit",
            "delete_pvc",
            "disable_user_config",
            "enable_user_namespaces",
            "env_keep",
            "get_pod_url",
            "group_overrides",
            "handle_legacy_names",
            "hub_connect_ip",
            "hub_connect_port",
            "hub_connect_url",
            "ip",
            "k8s_api_host",
            "k8s_api_ssl_ca_cert",
            "k8s_api_threadpool_workers",
            "k8s_api_verify_ssl",
            "modify_pod_hook",
            "after_pod_created_hook",
            "namespace",
            "oauth_client_allowed_scopes",
            "oauth_roles",
            "options_form",
            "options_from_form",
            "pod_name_template",
            "port",
            "post_stop_hook",
            "pre_spawn_hook",
            "profile_form_template",
            "profile_list",
            "progress_ready_hook",
            "pvc_name_template",
            "remember_pvc_name",
            "secret_mount_path",
            "secret_name_template",
            "server_token_scopes",
            "services_enabled",
            "slug_scheme",
            "ssl_alt_names",
            "ssl_alt_names_include_local",
            "start_timeout",
            "storage_class",
            "storage_pvc_ensure",
            "user_namespace_annotations",
            "user_namespace_labels",
            "user_namespace_template",
        ),
        "the hub's configuration (it applies to the whole lab)",
    ),
}


def override_problems(overrides: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, problem, what is accepted) for each bad entry of a ``kubespawner_override``."""
    out: list[tuple[str, str, str]] = []
    for name in overrides:
        if name not in KUBESPAWNER_TRAITS:
            close = difflib.get_close_matches(name, sorted(KUBESPAWNER_TRAITS), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "a KubeSpawner setting"
            out.append((name, "is not a KubeSpawner setting", hint))
        elif name in HUB_OWNED:
            out.append((name, "may not be set by a course profile", f"use {HUB_OWNED[name]}"))
        else:
            try:
                json.dumps(overrides[name])
            except (TypeError, ValueError):
                out.append((name, "has a value that is not plain data", "YAML values"))
    known = {k: v for k, v in overrides.items() if k in KUBESPAWNER_TRAITS}
    for problem in setting_violations(known):
        name = problem.split(" ", 1)[0].split(".", 1)[0].split("[", 1)[0]
        out.append((name, problem.removeprefix(name).strip(), "values within the security floor"))
    return out

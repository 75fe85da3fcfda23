{{/*
Checks that values.schema.json cannot express, and the values handed to the hub's config file.
*/}}

{{- define "labhub.validate" -}}
{{- $v := .Values -}}
{{- if eq $v.labhub.authenticator "ldap" -}}
{{- if not $v.labhub.ldap.servers -}}
{{- fail "labhub.ldap.servers: list at least one LDAP server (for example `- url: ldaps://ldap-a.example.edu:636`) when labhub.authenticator is ldap" -}}
{{- end -}}
{{- if and (not $v.labhub.ldap.bindDnTemplate) (not $v.labhub.ldap.userSearchBase) -}}
{{- fail "labhub.ldap.userSearchBase: set the base DN to search users under, or give labhub.ldap.bindDnTemplate" -}}
{{- end -}}
{{- end -}}
{{- if eq $v.labhub.authenticator "oidc" -}}
{{- range $key := list "clientId" "authorizeUrl" "tokenUrl" "userdataUrl" -}}
{{- if not (index $v.labhub.oidc $key) -}}
{{- fail (printf "labhub.oidc.%s: required when labhub.authenticator is oidc" $key) -}}
{{- end -}}
{{- end -}}
{{- if not $v.labhub.oidc.clientSecret.secretName -}}
{{- fail "labhub.oidc.clientSecret.secretName: name the Secret holding the OAuth client secret" -}}
{{- end -}}
{{- end -}}
{{- if and $v.hub.existingSecret (or $v.hub.cookieSecret $v.proxy.secretToken) -}}
{{- fail "hub.existingSecret: put the cookie secret and the proxy token into that Secret (keys hub.cookie-secret and proxy.token) and leave hub.cookieSecret and proxy.secretToken empty" -}}
{{- end -}}
{{- if and $v.hub.db.password $v.hub.db.passwordSecret.name -}}
{{- fail "hub.db.password: give the PostgreSQL password either in hub.db.password or in the Secret named by hub.db.passwordSecret.name, not both" -}}
{{- end -}}
{{- if and $v.imagePullSecret.create (not $v.imagePullSecret.registry) -}}
{{- fail "imagePullSecret.registry: name the registry host (for example registry.lab.example.edu) when imagePullSecret.create is true" -}}
{{- end -}}
{{- if and (eq $v.hub.db.type "postgres") (not $v.hub.db.url) -}}
{{- fail "hub.db.url: set the PostgreSQL URL (postgresql://USER@HOST:5432/DB) when hub.db.type is postgres" -}}
{{- end -}}
{{- if and (eq $v.labhub.profiles.source "git") (not $v.labhub.profiles.git.repo) -}}
{{- fail "labhub.profiles.git.repo: set the repository URL when labhub.profiles.source is git" -}}
{{- end -}}
{{- if and (eq $v.labhub.slices.strategy "mixed") (not $v.labhub.slices.types) -}}
{{- fail "labhub.slices.types: list the MIG profile names offered (for example 1g.10gb) for the mixed strategy" -}}
{{- end -}}
{{- end -}}

{{/*
The hub's policy.yaml: labhub.policy in the schema of profiles/policy.yaml (snake_case keys, read
by hub_ext/core/profiles/policy.py), so that lecturers and the hub validate against one file.
*/}}
{{- define "labhub.policyYaml" -}}
{{- $p := .Values.labhub.policy -}}
{{- $doc := dict "allowed_registries" $p.allowedRegistries "max_cpu" $p.maxCpu -}}
{{- if $p.maxMemory }}{{ $_ := set $doc "max_memory" (toString $p.maxMemory) }}{{ end -}}
{{- if $p.maxHomeSize }}{{ $_ := set $doc "max_home_size" (toString $p.maxHomeSize) }}{{ end -}}
{{- range $key, $name := dict "allowedSliceTypes" "allowed_slice_types" "allowedVolumes" "allowed_volumes" "allowedStorageClasses" "allowed_storage_classes" -}}
{{- with (index $p $key) }}{{ $_ := set $doc $name . }}{{ end -}}
{{- end -}}
{{- toYaml $doc -}}
{{- end -}}

{{- define "labhub.profilesDir" -}}
{{- if eq .Values.labhub.profiles.source "git" -}}
{{- $sub := trimSuffix "/" .Values.labhub.profiles.git.subPath -}}
{{- if $sub -}}/srv/labhub/profiles-git/current/{{ $sub }}{{- else -}}/srv/labhub/profiles-git/current{{- end -}}
{{- else -}}
/srv/labhub/profiles
{{- end -}}
{{- end -}}

{{/* Values the hub's config file reads (stored in the hub Secret as values.yaml). */}}
{{- define "labhub.hubValues" -}}
{{- $root := . -}}
{{- $full := include "labhub.fullname" . -}}
{{- $hub := omit .Values.hub "cookieSecret" "db" -}}
{{- $_ := set $hub "db" (omit .Values.hub.db "password") -}}
{{- $computed := dict
  "chartVersion" .Chart.Version
  "releaseName" .Release.Name
  "namespace" .Release.Namespace
  "fullname" $full
  "hubServiceName" (printf "%s-hub" $full)
  "hubPort" 8081
  "proxyType" .Values.proxy.type
  "proxyApiUrl" (printf "http://%s-proxy-api:8001" $full)
  "redisUrl" (printf "redis://%s-proxy-store:6379" $full)
  "profilesDir" (include "labhub.profilesDir" .)
  "profileSource" .Values.labhub.profiles.source
  "policyFile" "/usr/local/etc/labhub/policy/policy.yaml"
  "backupDir" "/srv/jupyterhub/backups"
  "ldapCaFile" (ternary "/usr/local/etc/labhub/ldap-ca/ca.crt" "" (ne .Values.labhub.ldap.tlsCA.secretName ""))
  "userSchedulerName" (ternary (printf "%s-user-scheduler" $full) "" .Values.scheduling.userScheduler.enabled)
  "userPriorityClassName" (ternary (printf "%s-user" $full) "" .Values.scheduling.podPriority.enabled)
  "metricsServiceEnabled" .Values.monitoring.serviceMonitor.enabled
  "imagePullSecrets" (include "labhub.imagePullSecretNames" . | fromJsonArray)
-}}
{{- $doc := dict
  "computed" $computed
  "hub" $hub
  "singleuser" .Values.singleuser
  "cull" .Values.cull
  "labhub" .Values.labhub
-}}
{{- toYaml $doc -}}
{{- end -}}

{{/*
Names and labels shared by every LabHub template.
*/}}

{{- define "labhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "labhub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: "<fullname>-<component>". */}}
{{- define "labhub.componentName" -}}
{{- printf "%s-%s" (include "labhub.fullname" .root) .component -}}
{{- end -}}

{{- define "labhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "labhub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "labhub.labels" -}}
{{ include "labhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: labhub
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* "name:tag" of an image value; refuses empty and `latest` tags. */}}
{{- define "labhub.image" -}}
{{- $tag := toString .image.tag -}}
{{- if or (eq $tag "") (eq $tag "latest") -}}
{{- fail (printf "%s.tag: set a fixed image version (got %q); `latest` and empty tags are refused" .key $tag) -}}
{{- end -}}
{{- printf "%s:%s" .image.name $tag -}}
{{- end -}}

{{- define "labhub.imagePullPolicy" -}}
{{- default "IfNotPresent" .pullPolicy -}}
{{- end -}}

{{/* Restricted container securityContext; .uid is the user id to run as. */}}
{{- define "labhub.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ default .uid .gid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "labhub.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- with .fsGroup }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
{{- end }}
{{- end -}}

{{- define "labhub.imagePullSecrets" -}}
{{- with (include "labhub.imagePullSecretNames" . | fromJsonArray) }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* imagePullSecrets plus the Secret of imagePullSecret.create, as a JSON list of names. */}}
{{- define "labhub.imagePullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets }}{{ $names = append $names . }}{{ end -}}
{{- if .Values.imagePullSecret.create -}}
{{- $names = append $names (include "labhub.componentName" (dict "root" . "component" "image-pull-secret")) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Placement of core pods: node selector, tolerations, priority, spreading over rooms. */}}
{{- define "labhub.corePlacement" -}}
{{- $root := .root -}}
{{- $core := $root.Values.scheduling.corePods -}}
{{- $nodeSelector := merge (dict) (.nodeSelector | default dict) ($core.nodeSelector | default dict) -}}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := concat ($core.tolerations | default list) (.tolerations | default list) -}}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $root.Values.scheduling.podPriority.enabled }}
priorityClassName: {{ include "labhub.componentName" (dict "root" $root "component" "core") }}
{{- end }}
{{- if $core.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ $core.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ $core.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "labhub.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "labhub.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
{{- end }}
{{- end -}}

{{/*
The Secret holding proxy.token, hub.cookie-secret and metrics.token: hub.existingSecret when set
(stable across `helm template` runs, for GitOps), else the chart's hub Secret.
*/}}
{{- define "labhub.tokenSecretName" -}}
{{- .Values.hub.existingSecret | default (include "labhub.componentName" (dict "root" . "component" "hub")) -}}
{{- end -}}

{{/* Secret values generated once and kept on upgrade (lookup), unless given in values. */}}
{{- define "labhub.hubSecretValue" -}}
{{- $root := .root -}}
{{- if .given -}}
{{- .given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "labhub.componentName" (dict "root" $root "component" "hub")) -}}
{{- if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randBytes 32 | b64dec | printf "%x" | trunc 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

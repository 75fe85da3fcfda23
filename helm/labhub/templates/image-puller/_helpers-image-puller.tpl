{{- /*
The course images to pull: every entry of prePuller.imagesLock (the profiles' images.lock.yaml,
slug: registry/repository:tag@sha256:...) plus prePuller.extraImages. Inline profiles must each
have a pinned entry. Returns a YAML mapping name -> pinned reference, sorted by name.
*/}}
{{- define "labhub.prePullImages" -}}
{{- $pp := .Values.prePuller }}
{{- $images := dict }}
{{- if $pp.imagesLock }}
{{- $lock := fromYaml $pp.imagesLock }}
{{- if hasKey $lock "Error" }}{{ fail (printf "prePuller.imagesLock is not YAML (%s); pass the profiles' lock file with --set-file prePuller.imagesLock=profiles/images.lock.yaml" (get $lock "Error")) }}{{ end }}
{{- range $slug, $ref := $lock }}
{{- $_ := set $images $slug (toString $ref) }}
{{- end }}
{{- end }}
{{- range $name, $ref := $pp.extraImages }}
{{- $_ := set $images $name (toString $ref) }}
{{- end }}
{{- range $name, $ref := $images }}
{{- if not (regexMatch "^[^@\\s]+@sha256:[0-9a-f]{64}$" $ref) }}
{{- fail (printf "prePuller: image %s (%s) is not pinned by digest; write it as registry/repository:tag@sha256:<64 hex digits> (labhub profiles pin writes images.lock.yaml)" $name $ref) }}
{{- end }}
{{- end }}
{{- if eq .Values.labhub.profiles.source "inline" }}
{{- range $slug, $_ := .Values.labhub.profiles.inline }}
{{- if and (or $pp.hook.enabled $pp.continuous.enabled) (gt (len $images) 0) (not (hasKey $images $slug)) }}
{{- fail (printf "prePuller: the course profile %s has no pinned image in prePuller.imagesLock; run labhub profiles pin and pass the lock file with --set-file prePuller.imagesLock=profiles/images.lock.yaml" $slug) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $images }}
{{- end -}}

{{- /* The pod spec of a pre-puller DaemonSet: one init container per image, then pause. */}}
{{- define "labhub.prePullerPod" -}}
{{- $root := .root }}
{{- $pp := $root.Values.prePuller }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: 0
securityContext:
  {{- include "labhub.podSecurityContext" dict | nindent 2 }}
{{- include "labhub.imagePullSecrets" $root }}
{{- with $pp.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $pp.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
initContainers:
  {{- $i := 0 }}
  {{- range $name, $ref := .images }}
  - name: image-{{ $i }}
    image: {{ $ref }}
    imagePullPolicy: IfNotPresent
    # Pulling is the point: the container only proves the image is there.
    command: [/bin/sh, -c, "echo pulled {{ $name }}"]
    resources:
      {{- toYaml $pp.resources | nindent 6 }}
    securityContext:
      {{- include "labhub.containerSecurityContext" (dict "uid" 65534) | nindent 6 }}
  {{- $i = add1 $i }}
  {{- end }}
containers:
  - name: pause
    image: {{ include "labhub.image" (dict "image" $pp.pause.image "key" "prePuller.pause.image") }}
    imagePullPolicy: {{ include "labhub.imagePullPolicy" $pp.pause.image }}
    resources:
      {{- toYaml $pp.resources | nindent 6 }}
    securityContext:
      {{- include "labhub.containerSecurityContext" (dict "uid" 65534) | nindent 6 }}
{{- end -}}

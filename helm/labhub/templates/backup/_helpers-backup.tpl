{{- /*
The worker pod of the off-site backup with backup.restic.homesSource=snapshots: the hub image
running labhub-backup backup-home on one temporary claim. It carries the backup job's labels (so
the job's network policy lets it reach the repository), mounts no service account token and runs
restricted. The job adds the claim volume and the arguments.
*/}}
{{- define "labhub.backupWorkerPod" -}}
{{- $b := .Values.backup }}
{{- $r := $b.restic }}
metadata:
  labels:
    {{- include "labhub.selectorLabels" (dict "root" . "component" "backup") | nindent 4 }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 30
  securityContext:
    {{- include "labhub.podSecurityContext" dict | nindent 4 }}
  {{- include "labhub.imagePullSecrets" . | nindent 2 }}
  {{- $placement := include "labhub.corePlacement" (dict "root" . "component" "backup") | fromYaml }}
  {{- $_ := unset $placement "topologySpreadConstraints" }}
  {{- with $placement }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  containers:
    - name: backup
      image: {{ include "labhub.image" (dict "image" .Values.hub.image "key" "hub.image") }}
      imagePullPolicy: {{ include "labhub.imagePullPolicy" .Values.hub.image }}
      command: [python3, -m, hub_ext.services.backup]
      args: [--cache-dir=/cache]
      env:
        - name: RESTIC_REPOSITORY
          value: {{ $r.repository | quote }}
        - name: RESTIC_PASSWORD
          valueFrom:
            secretKeyRef: {name: {{ $r.passwordSecret.name }}, key: {{ $r.passwordSecret.key }}}
      {{- with $r.credentialsSecret }}
      envFrom:
        - secretRef: {name: {{ . }}}
      {{- end }}
      volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: tmp, mountPath: /tmp}
      resources:
        {{- toYaml $b.resources | nindent 8 }}
      securityContext:
        {{- include "labhub.containerSecurityContext" (dict "uid" 1000) | nindent 8 }}
  volumes:
    - {name: cache, emptyDir: {}}
    - {name: tmp, emptyDir: {}}
{{- end -}}

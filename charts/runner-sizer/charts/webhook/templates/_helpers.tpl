{{- define "webhook.fullname" -}}
{{- printf "%s-webhook" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "webhook.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required with tls.mode=secret" .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "webhook.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "webhook.serviceHost" -}}
{{- printf "%s.%s.svc" (include "webhook.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "webhook.sidecarMounts" -}}
{{- $mounts := list -}}
{{- range .Values.sidecarVolumeMounts -}}
{{- $mounts = append $mounts (printf "%s:%s" .name .mountPath) -}}
{{- end -}}
{{- join "," $mounts -}}
{{- end -}}

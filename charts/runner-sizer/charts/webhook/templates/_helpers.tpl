{{- define "webhook.fullname" -}}
{{- printf "%s-webhook" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /*
One Secret name per mode, so switching modes never meets a Secret of the other owner:
Helm's own (mode helm), cert-manager's (which Helm must neither adopt nor delete), the
webhook's own (mode managed, kept on uninstall), yours.
*/ -}}
{{- define "webhook.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required with tls.mode=secret" .Values.tls.secret.name -}}
{{- else if eq .Values.tls.mode "cert-manager" -}}
{{- printf "%s-cert-manager-tls" (include "webhook.fullname" .) -}}
{{- else if eq .Values.tls.mode "managed" -}}
{{- printf "%s-managed-tls" (include "webhook.fullname" .) -}}
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

{{/* The HTTPS port the webhook listens on (10250 by default: GKE private clusters let the control plane reach it). */}}
{{- define "webhook.port" -}}
{{- dig "port" 10250 .Values.AsMap | int -}}
{{- end -}}

{{/* Render-time checks of values that only make sense together. */}}
{{- define "webhook.validate" -}}
{{- if and (dig "hostNetwork" false .Values.AsMap) (eq (include "webhook.port" .) "10250") -}}
{{- fail "webhook.hostNetwork=true needs webhook.port other than 10250: the kubelet listens on 10250 on every node. Pick a free port the control plane may reach (e.g. 9443)." -}}
{{- end -}}
{{- if ge (float64 .Values.deadline) (float64 .Values.admission.timeoutSeconds) -}}
{{- fail (printf "webhook.deadline (%v s) must be below webhook.admission.timeoutSeconds (%v s): the apiserver gives up first and the pod goes through unmutated." .Values.deadline .Values.admission.timeoutSeconds) -}}
{{- end -}}
{{- end -}}

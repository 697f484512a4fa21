{{- define "recorder.fullname" -}}
{{- printf "%s-recorder" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

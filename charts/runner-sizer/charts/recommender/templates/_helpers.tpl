{{- define "recommender.fullname" -}}
{{- printf "%s-recommender" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

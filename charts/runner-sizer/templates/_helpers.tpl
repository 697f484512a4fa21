{{/* Helpers shared by the umbrella and its subcharts; all prefixed "runner-sizer.". */}}

{{- define "runner-sizer.name" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "runner-sizer.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: runner-sizer
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "runner-sizer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "runner-sizer.image" -}}
{{- $registry := .Values.global.imageRegistry -}}
{{- $repository := ternary .Values.image.repository (printf "%s/%s" $registry .Values.image.repository) (empty $registry) -}}
{{- if .Values.image.digest -}}
{{ $repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "runner-sizer.receiverSecretName" -}}
{{- .Values.global.sizer.existingSecret | default (printf "%s-receiver" .Release.Name | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/*
Passes the `restricted` Pod Security Standard; `podSecurityContext` and
`containerSecurityContext` override it key by key (OpenShift's restricted-v2 assigns the
UID: set runAsUser, runAsGroup and fsGroup to null). `dig`: a `--reuse-values` upgrade
from a release without these values renders the defaults.
*/}}
{{- define "runner-sizer.podSecurityContext" -}}
{{- $default := dict "runAsNonRoot" true "runAsUser" 10001 "runAsGroup" 10001 "fsGroup" 10001 "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (dig "podSecurityContext" $default .Values.AsMap) -}}
{{- end -}}

{{- define "runner-sizer.containerSecurityContext" -}}
{{- $default := dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "runAsNonRoot" true "capabilities" (dict "drop" (list "ALL")) "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (dig "containerSecurityContext" $default .Values.AsMap) -}}
{{- end -}}

{{/* The history ConfigMap: one per release (the recorder writes it, the webhook reads it). */}}
{{- define "runner-sizer.historyConfigMapName" -}}
{{- $name := ternary (printf "%s-history" .Release.Name) (printf "%s-runner-sizer-history" .Release.Name) (contains "runner-sizer" .Release.Name) -}}
{{- .Values.global.history.configMapName | default $name -}}
{{- end -}}

{{/*
The shard names `<name>-<bank><i>` (history/recordset.py) of banks `.banks`, `.shards` each, of a
record set with head `.name`, as a JSON list for RBAC resourceNames.
*/}}
{{- define "runner-sizer.recordSetShardNames" -}}
{{- $names := list -}}
{{- range $bank := .banks -}}
{{- range $index := until (int $.shards) -}}
{{- $names = append $names (printf "%s-%s%d" $.name $bank $index) -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
Every shard name the history can use: banks a and b of MAX_SHARDS (history/recordset.py), so a
move between shard counts needs no new grant.
*/}}
{{- define "runner-sizer.historyShardNames" -}}
{{- include "runner-sizer.recordSetShardNames" (dict "name" (include "runner-sizer.historyConfigMapName" .) "banks" (list "a" "b") "shards" 32) -}}
{{- end -}}

{{/* The OOM kill records: one per release, beside the history (the recorder writes them, the recommender reads them). */}}
{{- define "runner-sizer.oomConfigMapName" -}}
{{- ternary (printf "%s-ooms" .Release.Name) (printf "%s-runner-sizer-ooms" .Release.Name) (contains "runner-sizer" .Release.Name) -}}
{{- end -}}

{{/*
The OOM records' shard names. Their count has been 2 since they became a record set, so their
layout never leaves bank a (a single-ConfigMap head from before moves into bank a) and no shard is
deleted. Another count would move them into bank b: grant both banks then.
*/}}
{{- define "runner-sizer.oomShardNames" -}}
{{- /* 2 mirrors OOM_SHARDS in src/runner_sizer/history/oom_store.py. */ -}}
{{- include "runner-sizer.recordSetShardNames" (dict "name" (include "runner-sizer.oomConfigMapName" .) "banks" (list "a") "shards" 2) -}}
{{- end -}}

{{/* The webhook's name inside its configuration: the apiserver's admission metrics carry it as `name`. */}}
{{- define "runner-sizer.admissionWebhookName" -}}
{{- printf "%s.%s.pods.runner-sizer.io" .Release.Name .Release.Namespace -}}
{{- end -}}

{{/*
A cpu or memory bound: a quantity string or a number (cores; bytes for memory), or empty.
Called with (dict "key" "webhook.sizing.maxCpu" "value" $value); prints the quantity.
*/}}
{{- define "runner-sizer.quantity" -}}
{{- $value := .value -}}
{{- $form := "a number (cpu: cores, memory: bytes) or a Kubernetes quantity string such as \"500m\", \"1.5\" or \"4Gi\"" -}}
{{- if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) -}}
{{- if lt (float64 $value) 0.0 -}}
{{- fail (printf "%s: %v is negative; want %s" .key $value $form) -}}
{{- end -}}
{{- if eq (float64 $value) (floor $value) -}}{{ int64 $value }}{{- else -}}{{ $value }}{{- end -}}
{{- else if kindIs "string" $value -}}
{{- if and $value (not (regexMatch "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$" $value)) -}}
{{- fail (printf "%s: %q is not a quantity; want %s" .key $value $form) -}}
{{- end -}}
{{- $value -}}
{{- else if not (kindIs "invalid" $value) -}}
{{- fail (printf "%s: want %s, got %s" .key $form (kindOf $value)) -}}
{{- end -}}
{{- end -}}

{{- define "runner-sizer.proxyEnv" -}}
{{- with .Values.global.proxy }}
{{- if .httpProxy }}
- name: HTTP_PROXY
  value: {{ .httpProxy | quote }}
{{- end }}
{{- if .httpsProxy }}
- name: HTTPS_PROXY
  value: {{ .httpsProxy | quote }}
{{- end }}
{{- if .noProxy }}
- name: NO_PROXY
  value: {{ .noProxy | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "runner-sizer.podPlacement" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/*
NetworkPolicy egress to the HTTP(S) proxy (its port, and `networkPolicy.proxyCIDRs`) when
global.proxy is set: calls through HTTPS_PROXY go to the proxy, not to the receiver.
Then `networkPolicy.extraEgress`, verbatim.
*/}}
{{- define "runner-sizer.extraEgress" -}}
{{- $ports := list -}}
{{- range $url := list .Values.global.proxy.httpProxy .Values.global.proxy.httpsProxy -}}
{{- if $url -}}
{{- $parsed := urlParse $url -}}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $parsed.host) | default (ternary "443" "80" (eq $parsed.scheme "https")) -}}
{{- $ports = append $ports $port -}}
{{- end -}}
{{- end -}}
{{- with $ports | uniq }}
- ports:
    {{- range . }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with dig "networkPolicy" "proxyCIDRs" list $.Values.AsMap }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
{{- end }}
{{- with dig "networkPolicy" "extraEgress" list .Values.AsMap }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Where the webhook's sizing comes from: the receiver in global.sizer.url, else this
release's recommender when global.recommender.enabled (it serves the same read
contract, mints no push tokens). Empty: no sizing.
*/}}
{{- define "runner-sizer.recommenderIsSource" -}}
{{- if and (dig "recommender" "enabled" false .Values.global) (not .Values.global.sizer.url) -}}true{{- end -}}
{{- end -}}

{{- define "runner-sizer.sizerUrl" -}}
{{- if include "runner-sizer.recommenderIsSource" . -}}
{{- printf "http://%s-recommender.%s.svc:8080" .Release.Name .Release.Namespace | trunc 253 -}}
{{- else -}}
{{- .Values.global.sizer.url -}}
{{- end -}}
{{- end -}}

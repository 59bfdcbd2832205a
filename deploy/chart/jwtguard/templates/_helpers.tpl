{{/* SPDX-License-Identifier: Apache-2.0 */}}

{{- define "jwtguard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object: the release name, with the chart's added when it lacks it. */}}
{{- define "jwtguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jwtguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwtguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jwtguard.labels" -}}
{{ include "jwtguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "jwtguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "jwtguard.adminSecretName" -}}
{{- .Values.admin.existingSecret | default (include "jwtguard.fullname" .) -}}
{{- end -}}
{{- define "jwtguard.adminSecretKey" -}}
{{- if .Values.admin.existingSecret }}{{ .Values.admin.existingSecretKey }}{{ else }}admin-token{{ end -}}
{{- end -}}
{{- define "jwtguard.redisSecretName" -}}
{{- .Values.redis.existingSecret | default (include "jwtguard.fullname" .) -}}
{{- end -}}
{{- define "jwtguard.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end -}}
{{- end -}}

{{/* Where the pod reads its settings; the keys the chart owns in the --config file. */}}
{{- define "jwtguard.configDir" -}}/etc/jwtguard/config{{- end -}}
{{- define "jwtguard.adminDir" -}}/etc/jwtguard/admin{{- end -}}
{{- define "jwtguard.dataDir" -}}/var/lib/jwtguard{{- end -}}

{{- define "jwtguard.configFile" -}}
{{- $own := dict "grpc-addr" ":9191" "http-addr" ":8181" "admin-addr" ":8182" "admin-token-file" (printf "%s/token" (include "jwtguard.adminDir" .)) "data-dir" (include "jwtguard.dataDir" .) -}}
{{- range $key, $_ := .Values.config }}
{{- if or (hasKey $own $key) (eq $key "source") (eq $key "config") }}
{{- fail (printf "config.%s: the chart sets %s itself (see values.yaml)" $key $key) }}
{{- end }}
{{- end }}
{{- toYaml (merge (deepCopy $own) .Values.config) -}}
{{- end -}}

{{/* Refuses values that would deploy a jwtguard that cannot start or is unsafe. */}}
{{- define "jwtguard.validate" -}}
{{- if not (has .Values.shape (list "kubernetes" "pool" "daemonset")) }}
{{- fail (printf "shape: %q, want kubernetes, pool or daemonset" .Values.shape) }}
{{- end }}
{{- if eq (empty .Values.admin.existingSecret) (empty .Values.admin.token) }}
{{- fail "admin: set exactly one of admin.existingSecret and admin.token (the admin API's bearer token)" }}
{{- end }}
{{- if and .Values.admin.token (lt (len .Values.admin.token) 16) }}
{{- fail "admin.token: shorter than 16 characters; jwtguard refuses it" }}
{{- end }}
{{- if eq (empty .Values.redis.existingSecret) (empty .Values.redis.url) }}
{{- fail "redis: set exactly one of redis.existingSecret and redis.url (the revocation source every pod follows)" }}
{{- end }}
{{- if and .Values.redis.url (not (regexMatch "^rediss?://" .Values.redis.url)) }}
{{- fail "redis.url: want a redis:// or rediss:// URL" }}
{{- end }}
{{- if not (or .Values.config.issuers (index .Values.config "issuer")) }}
{{- fail "config.issuers: list at least one issuer" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (empty .Values.networkPolicy.admins) }}
{{- fail "networkPolicy.admins: empty would let any client reach the admin API" }}
{{- end }}
{{- if and (eq .Values.shape "pool") (ge (int .Values.pool.minAvailable) (int .Values.pool.replicas)) }}
{{- fail "pool.minAvailable: must be below pool.replicas, or no node could ever be drained" }}
{{- end }}
{{- end -}}

{{/* The chart name, or nameOverride. */}}
{{- define "iamra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it already contains
the chart name ("iamra" for `helm install iamra`), else "<release>-<chart>". 63 characters at
most (DNS label).
*/}}
{{- define "iamra.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "iamra.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "iamra.labels" -}}
helm.sh/chart: {{ include "iamra.chart" . }}
{{ include "iamra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels the Deployment, Service and PodDisruptionBudget select the controller pods by. */}}
{{- define "iamra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iamra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "iamra.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iamra.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "iamra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The sidecar image: sidecarImage, each part defaulting to the controller's image. */}}
{{- define "iamra.sidecarImage" -}}
{{- $repository := default .Values.image.repository .Values.sidecarImage.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.sidecarImage.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{- define "iamra.leaseName" -}}
{{- default (include "iamra.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "iamra.webhookConfigurationName" -}}
{{- default (include "iamra.fullname" .) .Values.webhook.configurationName }}
{{- end }}

{{/* The CRL distribution point URL of the chart's Issuer. */}}
{{- define "iamra.issuerCrlUrl" -}}
{{- if .Values.issuer.crl.distributionPointUrl }}
{{- .Values.issuer.crl.distributionPointUrl }}
{{- else }}
{{- printf "http://%s.%s.svc:%v/crl/%s/%s.crl" (include "iamra.fullname" .) .Release.Namespace .Values.http.port .Release.Namespace .Values.issuer.name }}
{{- end }}
{{- end }}

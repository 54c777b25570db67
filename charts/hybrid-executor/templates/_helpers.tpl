{{/*
The chart name, or nameOverride.
*/}}
{{- define "hybrid-executor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base of every object's name: fullnameOverride, else <release>-<chart> (just <release> when it
already contains the chart name). At most 40 characters, so "-api-server-logs" still fits in 63.
*/}}
{{- define "hybrid-executor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "hybrid-executor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The standard labels of every object this chart creates (never of the worker pods: the executor
labels those app.kubernetes.io/managed-by=hybrid-executor).
*/}}
{{- define "hybrid-executor.labels" -}}
helm.sh/chart: {{ include "hybrid-executor.chart" . }}
app.kubernetes.io/name: {{ include "hybrid-executor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The namespace of the scheduler and the api-server: airflow.namespace, else the release's.
*/}}
{{- define "hybrid-executor.airflowNamespace" -}}
{{- default .Release.Namespace .Values.airflow.namespace }}
{{- end }}

{{- define "hybrid-executor.schedulerServiceAccountNamespace" -}}
{{- default (include "hybrid-executor.airflowNamespace" .) .Values.rbac.scheduler.serviceAccount.namespace }}
{{- end }}

{{- define "hybrid-executor.apiServerServiceAccountNamespace" -}}
{{- default (include "hybrid-executor.airflowNamespace" .) .Values.rbac.apiServerLogReader.serviceAccount.namespace }}
{{- end }}

{{- define "hybrid-executor.podTemplateConfigMapName" -}}
{{- printf "%s-pod-template" (include "hybrid-executor.fullname" .) }}
{{- end }}

{{/*
The ConfigMap key (file name) of a worker namespace's own pod template.
*/}}
{{- define "hybrid-executor.podTemplateKey" -}}
{{- printf "pod_template-%s.yaml" . }}
{{- end }}

{{/*
Checks what the schema cannot express, and fails with a message naming the entry and the fix:
unique namespace names, a queue for every worker namespace after the first, unique queues.
*/}}
{{- define "hybrid-executor.validate" -}}
{{- $names := list }}
{{- $queues := list }}
{{- range $index, $ns := .Values.workerNamespaces }}
{{- if has $ns.name $names }}
{{- fail (printf "workerNamespaces[%d]: namespace %q is listed twice; list each worker namespace once" $index $ns.name) }}
{{- end }}
{{- $names = append $names $ns.name }}
{{- $queue := $ns.queue | default "" }}
{{- if and (eq $index 0) (not $queue) }}
{{- $queue = "kubernetes" }}
{{- end }}
{{- if not $queue }}
{{- fail (printf "workerNamespaces[%d] (%s): set `queue`, the Kubernetes queue whose pods run in this namespace (only the first namespace, the executor-wide one, may leave it out)" $index $ns.name) }}
{{- end }}
{{- if has $queue $queues }}
{{- fail (printf "workerNamespaces[%d] (%s): queue %q is already routed to another namespace; give each namespace its own queue" $index $ns.name $queue) }}
{{- end }}
{{- $queues = append $queues $queue }}
{{- end }}
{{- end }}

{{/*
The pod template settings of one worker namespace (dict "root" $ "ns" $ns): podTemplate with the
namespace's podTemplate merged over it, as YAML.
*/}}
{{- define "hybrid-executor.podTemplateValues" -}}
{{- $values := deepCopy .root.Values.podTemplate }}
{{- with .ns }}
{{- with .podTemplate }}
{{- $values = mergeOverwrite $values (deepCopy .) }}
{{- end }}
{{- end }}
{{- toYaml $values }}
{{- end }}

{{/*
The URL of the execution API the pods report to.
*/}}
{{- define "hybrid-executor.executionApiServerUrl" -}}
{{- if .Values.podTemplate.executionApiServerUrl }}
{{- .Values.podTemplate.executionApiServerUrl }}
{{- else }}
{{- printf "http://%s-api-server.%s.svc.cluster.local:%d/execution/" .Values.airflow.releaseName (include "hybrid-executor.airflowNamespace" .) (int .Values.networkPolicy.apiServer.port) }}
{{- end }}
{{- end }}

{{/*
One pod template (dict "root" $ "values" <podTemplate values>), as YAML. The worker container is
`base` without `command`: the executor passes `execute_workload` as its args, and the image's
entrypoint runs them.
*/}}
{{- define "hybrid-executor.podTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $image := printf "%s:%s" $v.image.repository (toString $v.image.tag) }}
{{- if $v.image.digest }}
{{- $image = printf "%s@%s" $image $v.image.digest }}
{{- end }}
apiVersion: v1
kind: Pod
metadata:
  name: hybrid-executor-worker
  {{- with $v.labels }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- with $v.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: base
      image: {{ $image }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      env:
        - name: AIRFLOW__CORE__EXECUTION_API_SERVER_URL
          value: {{ include "hybrid-executor.executionApiServerUrl" $root | quote }}
        {{- with $v.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.containerSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
The `[hybrid_executor] kubernetes_queues` value for these worker namespaces, on one line: the first
namespace's queue uses the executor-wide namespace; every other queue names its namespace; a
namespace with a podTemplate of its own names its template file.
*/}}
{{- define "hybrid-executor.kubernetesQueues" -}}
{{- $root := . }}
{{- $entries := list }}
{{- range $index, $ns := .Values.workerNamespaces }}
{{- $entry := $ns.queue | default "kubernetes" }}
{{- if gt $index 0 }}
{{- $entry = printf "%s namespace=%s" $entry $ns.name }}
{{- end }}
{{- if $ns.podTemplate }}
{{- $entry = printf "%s pod_template_file=%s/%s" $entry (trimSuffix "/" $root.Values.podTemplate.mountPath) (include "hybrid-executor.podTemplateKey" $ns.name) }}
{{- end }}
{{- $entries = append $entries $entry }}
{{- end }}
{{- join ", " $entries }}
{{- end }}

{{/*
The executor-wide pod template file, as the scheduler and the api-server see it.
*/}}
{{- define "hybrid-executor.podTemplateFile" -}}
{{- printf "%s/pod_template.yaml" (trimSuffix "/" .Values.podTemplate.mountPath) }}
{{- end }}

{{/*
Merges a worker namespace's override (a dict or nil) over a chart-wide dict, key by key.
(dict "base" <dict> "override" <dict or nil>)
*/}}
{{- define "hybrid-executor.merged" -}}
{{- $merged := deepCopy .base }}
{{- with .override }}
{{- $merged = mergeOverwrite $merged (deepCopy .) }}
{{- end }}
{{- toYaml $merged }}
{{- end }}

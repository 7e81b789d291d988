{{/*
Helpers shared by every template. Names are prefixed "sentryk8s." so that
nothing collides with a parent chart.
*/}}

{{/* sentryk8s.name: the chart name, or nameOverride. */}}
{{- define "sentryk8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
sentryk8s.fullname: prefix of every resource name. Capped at 40 characters so
that "<fullname>-scheduler-<ordinal>" and the StatefulSet's
controller-revision-hash label stay within Kubernetes' 63-character limits.
*/}}
{{- define "sentryk8s.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* sentryk8s.componentName: "<fullname>-<component>"; call with (dict "root" $ "component" "worker"). */}}
{{- define "sentryk8s.componentName" -}}
{{- printf "%s-%s" (include "sentryk8s.fullname" .root) .component -}}
{{- end -}}

{{/* sentryk8s.chart: chart name and version for the helm.sh/chart label. */}}
{{- define "sentryk8s.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* sentryk8s.labels: labels of every object that belongs to no single component. */}}
{{- define "sentryk8s.labels" -}}
helm.sh/chart: {{ include "sentryk8s.chart" . }}
app.kubernetes.io/name: {{ include "sentryk8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentryk8s
{{- end -}}

{{/*
sentryk8s.componentLabels: labels of a component's objects; call with
(dict "root" $ "component" "scheduler").
*/}}
{{- define "sentryk8s.componentLabels" -}}
{{ include "sentryk8s.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
sentryk8s.selectorLabels: immutable selector of a component's pods. The
component is part of it so that roles never select each other's pods.
*/}}
{{- define "sentryk8s.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentryk8s.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* sentryk8s.serviceAccountName: the ServiceAccount long-running pods run as. */}}
{{- define "sentryk8s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sentryk8s.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* sentryk8s.image: repository:tag or repository@digest of the SentryK8s image. */}}
{{- define "sentryk8s.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
sentryk8s.durationSeconds: whole seconds of a duration like "500ms", "20s",
"2m" or "1h" (rounded up), for values Kubernetes wants as integers.
*/}}
{{- define "sentryk8s.durationSeconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+ms$" $d -}}
{{- div (add (trimSuffix "ms" $d | int) 999) 1000 -}}
{{- else if regexMatch "^[0-9]+s$" $d -}}
{{- trimSuffix "s" $d | int -}}
{{- else if regexMatch "^[0-9]+m$" $d -}}
{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if regexMatch "^[0-9]+h$" $d -}}
{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else -}}
{{- fail (printf "sentryk8s: %q is not a duration like 500ms, 20s, 2m or 1h" $d) -}}
{{- end -}}
{{- end -}}

{{/* sentryk8s.terminationGracePeriodSeconds: the drain timeout plus 10 s for the process to exit. */}}
{{- define "sentryk8s.terminationGracePeriodSeconds" -}}
{{- add (include "sentryk8s.durationSeconds" .Values.config.drainTimeout | int) 10 -}}
{{- end -}}

{{/* sentryk8s.secretName: the Secret holding SENTRYK8S_DATABASE_URL and SENTRYK8S_AMQP_URL. */}}
{{- define "sentryk8s.secretName" -}}
{{- default (include "sentryk8s.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
sentryk8s.databaseUrl / sentryk8s.amqpUrl: the URLs the chart writes into its
own Secret (only used when secrets.existingSecret is empty). The bundled
services' URLs are built from their credentials; otherwise the URL is
required, with a message saying how to provide it.
*/}}
{{- define "sentryk8s.databaseUrl" -}}
{{- if .Values.secrets.databaseUrl -}}
{{- .Values.secrets.databaseUrl -}}
{{- else if .Values.postgresql.enabled -}}
{{- $a := .Values.postgresql.auth -}}
{{- printf "postgres://%s:%s@%s:5432/%s" (urlquery $a.username) (urlquery $a.password) (include "sentryk8s.componentName" (dict "root" . "component" "postgresql")) $a.database -}}
{{- else -}}
{{- fail "sentryk8s: no database URL. Set secrets.existingSecret (a Secret with key secrets.databaseUrlKey), secrets.databaseUrl, or postgresql.enabled=true." -}}
{{- end -}}
{{- end -}}

{{- define "sentryk8s.amqpUrl" -}}
{{- if .Values.secrets.amqpUrl -}}
{{- .Values.secrets.amqpUrl -}}
{{- else if .Values.rabbitmq.enabled -}}
{{- $a := .Values.rabbitmq.auth -}}
{{- printf "amqp://%s:%s@%s:5672/%%2f" (urlquery $a.username) (urlquery $a.password) (include "sentryk8s.componentName" (dict "root" . "component" "rabbitmq")) -}}
{{- else -}}
{{- fail "sentryk8s: no RabbitMQ URL. Set secrets.existingSecret (a Secret with key secrets.amqpUrlKey), secrets.amqpUrl, or rabbitmq.enabled=true." -}}
{{- end -}}
{{- end -}}

{{/*
sentryk8s.configToml: the configuration file. Keys are exactly those of
src/config/default.toml; strings go through toJson, whose escapes are valid
TOML basic-string escapes. The URLs are left out: they are secrets and come
from the environment.
*/}}
{{- define "sentryk8s.configToml" -}}
{{- $c := .Values.config -}}
# Rendered by the sentryk8s Helm chart from .Values.config.
# database_url and amqp_url come from the Secret as SENTRYK8S_DATABASE_URL
# and SENTRYK8S_AMQP_URL; scheduler.shards and worker.concurrency are flags.
listen = {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | toJson }}
log_format = {{ $c.logFormat | toJson }}
log_level = {{ $c.logLevel | toJson }}
drain_timeout = {{ $c.drainTimeout | toJson }}
partitions = {{ $c.partitions | int64 }}

[database]
pool_size = {{ $c.database.poolSize | int64 }}
connect_timeout = {{ $c.database.connectTimeout | toJson }}

[amqp]
exchange = {{ $c.amqp.exchange | toJson }}
queue = {{ $c.amqp.queue | toJson }}
queues = {{ $c.amqp.queues | int64 }}
delivery_limit = {{ $c.amqp.deliveryLimit | int64 }}
max_queue_length = {{ $c.amqp.maxQueueLength | int64 }}
heartbeat = {{ $c.amqp.heartbeat | toJson }}
reconnect_max_backoff = {{ $c.amqp.reconnectMaxBackoff | toJson }}

[scheduler]
lease_ttl = {{ $c.scheduler.leaseTtl | toJson }}
renew_interval = {{ $c.scheduler.renewInterval | toJson }}
reload_interval = {{ $c.scheduler.reloadInterval | toJson }}
catch_up = {{ $c.scheduler.catchUp | toJson }}
tick = {{ $c.scheduler.tick | toJson }}
slots_per_message = {{ $c.scheduler.slotsPerMessage | int64 }}
batch_linger = {{ $c.scheduler.batchLinger | toJson }}
max_clock_skew = {{ $c.scheduler.maxClockSkew | toJson }}

[worker]
batch_size = {{ $c.worker.batchSize | int64 }}
batch_max_delay = {{ $c.worker.batchMaxDelay | toJson }}
body_limit = {{ $c.worker.bodyLimit | int64 }}
body_limit_max = {{ $c.worker.bodyLimitMax | int64 }}
body_budget = {{ $c.worker.bodyBudget | int64 }}
json_max_bytes = {{ $c.worker.jsonMaxBytes | int64 }}
user_agent = {{ $c.worker.userAgent | toJson }}
deny_targets = {{ $c.worker.denyTargets | toJson }}

[results]
retention_days = {{ $c.results.retentionDays | int64 }}

[history]
hourly_retention_days = {{ $c.history.hourlyRetentionDays | int64 }}
daily_retention_days = {{ $c.history.dailyRetentionDays | int64 }}
incident_retention_days = {{ $c.history.incidentRetentionDays | int64 }}

[alerts]
deliver = {{ $c.alerts.deliver }}
poll_interval = {{ $c.alerts.pollInterval | toJson }}
batch_size = {{ $c.alerts.batchSize | int64 }}
concurrency = {{ $c.alerts.concurrency | int64 }}
send_timeout = {{ $c.alerts.sendTimeout | toJson }}
lease = {{ $c.alerts.lease | toJson }}
max_attempts = {{ $c.alerts.maxAttempts | int64 }}
retry_initial = {{ $c.alerts.retryInitial | toJson }}
retry_max = {{ $c.alerts.retryMax | toJson }}
reminder_scan_interval = {{ $c.alerts.reminderScanInterval | toJson }}
retention_days = {{ $c.alerts.retentionDays | int64 }}

[checks]
allow_env = {{ $c.checks.allowEnv | toJson }}
max_file_bytes = {{ $c.checks.maxFileBytes | int64 }}

[web]
listen = {{ printf "0.0.0.0:%d" (int .Values.web.port) | toJson }}
public_read = {{ $c.web.publicRead }}
public_url = {{ $c.web.publicUrl | toJson }}
max_connections = {{ $c.web.maxConnections | int64 }}
header_read_timeout = {{ $c.web.headerReadTimeout | toJson }}
request_timeout = {{ $c.web.requestTimeout | toJson }}
rate_limit_per_second = {{ $c.web.rateLimitPerSecond | int64 }}
rate_limit_burst = {{ $c.web.rateLimitBurst | int64 }}
metrics_refresh = {{ $c.web.metricsRefresh | toJson }}
metrics_labels = {{ $c.web.metricsLabels | toJson }}
{{- end -}}

{{/* sentryk8s.checksYaml: the checks file applied by the migrate hook. */}}
{{- define "sentryk8s.checksYaml" -}}
# Rendered by the sentryk8s Helm chart from .Values.checks, .Values.checksDefaults,
# .Values.checksAlerts and .Values.checksMaintenance.
{{- if .Values.checksDefaults }}
{{ dict "defaults" .Values.checksDefaults | toYaml }}
{{- end }}
{{- if .Values.checksAlerts }}
{{ dict "alerts" .Values.checksAlerts | toYaml }}
{{- end }}
{{- if .Values.checksMaintenance }}
{{ dict "maintenance" .Values.checksMaintenance | toYaml }}
{{- end }}
{{ dict "checks" .Values.checks | toYaml }}
{{- end -}}

{{/*
sentryk8s.env: the environment of every SentryK8s container: the config file
and the two secret URLs. Nothing else with the SENTRYK8S_ prefix, because the
binary rejects unknown SENTRYK8S_* variables. "noAmqp" leaves the broker's
URL (and password) out, for the web role, which never talks to RabbitMQ.
*/}}
{{- define "sentryk8s.env" -}}
- name: SENTRYK8S_CONFIG
  value: /etc/sentryk8s/config.toml
- name: SENTRYK8S_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .root.Values.secrets.databaseUrlKey }}
{{- if not .noAmqp }}
- name: SENTRYK8S_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .root.Values.secrets.amqpUrlKey }}
{{- end }}
{{- end -}}

{{/* sentryk8s.probes: liveness on /healthz, readiness on /readyz, and a startup allowance. */}}
{{- define "sentryk8s.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/*
sentryk8s.checksumAnnotations: hashes of the config and the chart-made Secret
on pod templates, so that a change to either rolls the pods. Deterministic:
Argo CD sees no diff when nothing changed.
*/}}
{{- define "sentryk8s.checksumAnnotations" -}}
checksum/config: {{ include "sentryk8s.configToml" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ printf "%s\n%s" (include "sentryk8s.databaseUrl" .) (include "sentryk8s.amqpUrl" .) | sha256sum }}
{{- end }}
{{- end -}}

{{/*
sentryk8s.migrateInitContainer: with the bundled PostgreSQL, which cannot
exist before a pre-install hook runs, every long-running pod first runs
`migrate --wait` itself (idempotent, serialised by an advisory lock), so that
no role starts on an empty database whatever the order of creation (helm
--wait, Argo CD waves).
*/}}
{{- define "sentryk8s.migrateInitContainer" -}}
{{- if .Values.postgresql.enabled }}
initContainers:
  - name: migrate
    image: {{ include "sentryk8s.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["/usr/local/bin/sentryk8s"]
    args: ["migrate", "--wait", {{ .Values.migrate.wait | quote }}]
    env:
      {{- include "sentryk8s.env" (dict "root" . "secretName" (include "sentryk8s.secretName" .)) | nindent 6 }}
    securityContext:
      {{- toYaml .Values.containerSecurityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.migrate.resources | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/sentryk8s/config.toml
        subPath: config.toml
        readOnly: true
      - name: tmp
        mountPath: /tmp
{{- end }}
{{- end -}}

{{/*
sentryk8s.migrateHookAnnotations: hook annotations of the migrate Job
(weight 0) and of what it needs (weight -10: created first). With an external
database the Job runs before install and upgrade. With the bundled
PostgreSQL it cannot run before install (the database is part of the
release), so it runs after install instead; Argo CD is told PostSync
explicitly (its own annotation wins over the Helm mapping), and the pods'
init container has migrated by then.
*/}}
{{- define "sentryk8s.migrateHookAnnotations" -}}
{{- if .root.Values.postgresql.enabled }}
helm.sh/hook: post-install,pre-upgrade
argocd.argoproj.io/hook: PostSync
{{- else }}
helm.sh/hook: pre-install,pre-upgrade
{{- end }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/* sentryk8s.hasChecks: non-empty when the migrate Job applies checks. */}}
{{- define "sentryk8s.hasChecks" -}}
{{- if gt (len .Values.checks) 0 }}true{{ end -}}
{{- end -}}

{{/*
sentryk8s.autoscaled: non-empty when something other than the Deployment owns
the worker replica count (HPA or KEDA).
*/}}
{{- define "sentryk8s.autoscaled" -}}
{{- if or .Values.worker.autoscaling.enabled .Values.worker.autoscaling.keda.enabled }}true{{ end -}}
{{- end -}}

{{/*
sentryk8s.webAutoscaled: non-empty when the web HPA owns the web replica count.
*/}}
{{- define "sentryk8s.webAutoscaled" -}}
{{- if .Values.web.autoscaling.enabled }}true{{ end -}}
{{- end -}}

{{/*
sentryk8s.jobQueues: the job queues, one name per line: config.amqp.queue,
then "<queue>.1" … "<queue>.<queues-1>" (src/queue/topology.rs). Each name is
also a label value of the HPA's metric selector, so at most 63 characters.
*/}}
{{- define "sentryk8s.jobQueues" -}}
{{- $q := .Values.config.amqp.queue -}}
{{- $names := list $q -}}
{{- range $i := untilStep 1 (int .Values.config.amqp.queues) 1 -}}
{{- $names = append $names (printf "%s.%d" $q $i) -}}
{{- end -}}
{{- range $names -}}
{{- if gt (len .) 63 -}}
{{- fail (printf "sentryk8s: job queue name %q is longer than 63 characters (a Kubernetes label value): shorten config.amqp.queue" .) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $names -}}
{{- end -}}

{{/*
sentryk8s.jobQueueRegex: a PromQL regex matching exactly the job queues
(Prometheus anchors it), their dots escaped.
*/}}
{{- define "sentryk8s.jobQueueRegex" -}}
{{- $out := list -}}
{{- range (include "sentryk8s.jobQueues" . | splitList "\n") -}}
{{- $out = append $out (regexQuoteMeta .) -}}
{{- end -}}
{{- join "|" $out -}}
{{- end -}}

{{/*
sentryk8s.slotsPerMessageQuery: PromQL of the slots one job message carries
on average, measured on this release's schedulers (prometheus-operator names
their job after the metrics Service) over 2 minutes. Without publishes
(0 / 0, or no such series) it is 1: the one-slot formats, which is also what
a scheduler from before job format 3 publishes. Capped at
config.scheduler.slotsPerMessage, which no message exceeds.
*/}}
{{- define "sentryk8s.slotsPerMessageQuery" -}}
{{- $s := printf "job=%q,namespace=%q" (include "sentryk8s.componentName" (dict "root" . "component" "scheduler")) .Release.Namespace -}}
{{- printf "scalar(clamp_max(sum(rate(sentryk8s_slots_published_total{%s}[2m])) / sum(rate(sentryk8s_job_messages_published_total{%s}[2m])), %d) >= 1 or vector(1))" $s $s (int .Values.config.scheduler.slotsPerMessage) -}}
{{- end -}}

{{/*
sentryk8s.backlogQuery: PromQL of the worker backlog in JOBS, as the KEDA
prometheus trigger computes it (the adapter rule in
examples/prometheus-adapter-values.yaml asks the same): ready + unacked
messages of every job queue, scraped from RabbitMQ's
/metrics/detailed?family=queue_coarse_metrics, times the slots a message
carries (sentryk8s.slotsPerMessageQuery). A message holds 1 to
slotsPerMessage jobs, so messages alone would undercount the work.
*/}}
{{- define "sentryk8s.backlogQuery" -}}
{{- $m := printf "queue=~%q" (include "sentryk8s.jobQueueRegex" .) -}}
{{- printf "(sum(rabbitmq_detailed_queue_messages_ready{%s}) + sum(rabbitmq_detailed_queue_messages_unacked{%s})) * %s" $m $m (include "sentryk8s.slotsPerMessageQuery" .) -}}
{{- end -}}

{{/*
sentryk8s.metricSelector: the selector of the External backlog metric:
queue In <every job queue> (prometheus-adapter turns it into the regex
queue=~"<queue>|<queue>.1|…"), plus namespace with the bundled RabbitMQ and
worker.autoscaling.metricSelector as further matchLabels (its "queue", if
any, is ignored: the job queues are the chart's to name).
*/}}
{{- define "sentryk8s.metricSelector" -}}
{{- $labels := omit (deepCopy .Values.worker.autoscaling.metricSelector) "queue" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- $_ := set $labels "namespace" .Release.Namespace -}}
{{- end -}}
{{- $sel := dict "matchExpressions" (list (dict "key" "queue" "operator" "In" "values" (include "sentryk8s.jobQueues" . | splitList "\n"))) -}}
{{- if $labels -}}
{{- $_ := set $sel "matchLabels" $labels -}}
{{- end -}}
{{- toYaml $sel -}}
{{- end -}}

{{/*
sentryk8s.podCommon: pod-level settings shared by every SentryK8s pod.
enableServiceLinks is off because Kubernetes would otherwise inject
<SERVICE>_PORT… variables for every Service in the namespace.
*/}}
{{- define "sentryk8s.podCommon" -}}
{{- include "sentryk8s.podCommonWithSysctls" (dict "root" . "sysctls" list) -}}
{{- end -}}

{{/*
sentryk8s.podCommonWithSysctls: sentryk8s.podCommon, with the pod sysctls of
one role ("sysctls", a list of name/value) added to podSecurityContext's own.
*/}}
{{- define "sentryk8s.podCommonWithSysctls" -}}
{{- $root := .root -}}
{{- $securityContext := deepCopy $root.Values.podSecurityContext -}}
{{- if .sysctls -}}
{{- $_ := set $securityContext "sysctls" (concat (default list $securityContext.sysctls) .sysctls) -}}
{{- end -}}
{{- with $root -}}
serviceAccountName: {{ include "sentryk8s.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "sentryk8s.terminationGracePeriodSeconds" . }}
securityContext:
  {{- toYaml $securityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* sentryk8s.volumes: the config file and a writable /tmp (the root filesystem is read-only). */}}
{{- define "sentryk8s.volumes" -}}
- name: config
  configMap:
    name: {{ include "sentryk8s.componentName" (dict "root" . "component" "config") }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "sentryk8s.volumeMounts" -}}
- name: config
  mountPath: /etc/sentryk8s/config.toml
  subPath: config.toml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
sentryk8s.spreadAffinity: preferred or required anti-affinity that keeps a
component's pods on different nodes; call with (dict "root" $ "component" "scheduler" "mode" "soft").
*/}}
{{- define "sentryk8s.spreadAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "sentryk8s.selectorLabels" . | fromYaml)) -}}
{{- if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - {{- toYaml $term | nindent 6 }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end -}}

{{/* sentryk8s.metricsIngress: who may reach a pod: the metrics port only. */}}
{{- define "sentryk8s.metricsIngress" -}}
- ports:
    - port: metrics
      protocol: TCP
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* sentryk8s.serviceEgress: DNS, PostgreSQL and RabbitMQ (wherever they are: managed services live outside the cluster). */}}
{{- define "sentryk8s.serviceEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- ports:
    {{- range .Values.networkPolicy.servicePorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}

{{/* sentryk8s.bundledPodSecurityContext: pod security of the bundled services (uid 999 is postgres/rabbitmq in the official images). */}}
{{- define "sentryk8s.bundledPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
fsGroup: 999
# Re-chmod the volume only on first mount: PostgreSQL refuses a group-writable
# PGDATA and Erlang a group-readable .erlang.cookie after a restart.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sentryk8s.bundledContainerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
sentryk8s.clientPeers: the SentryK8s pods of this release that are clients of
a bundled service; call with (dict "root" $ "components" (list "scheduler" …)).
PostgreSQL serves every role, RabbitMQ all but the web role.
*/}}
{{- define "sentryk8s.clientPeers" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "sentryk8s.name" .root }}
      app.kubernetes.io/instance: {{ .root.Release.Name }}
    matchExpressions:
      - key: app.kubernetes.io/component
        operator: In
        values: {{ .components | toJson }}
{{- end -}}

{{/*
Names and labels.
*/}}
{{- define "mailgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailgate.fullname" -}}
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

{{- define "mailgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mailgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "virus-scan") */}}
{{- define "mailgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mailgate.componentLabels" -}}
{{ include "mailgate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mailgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mailgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The fixed facts of each service (CLI subcommand, config section, http port, kind, and for pipeline stages the Kafka
consumer group and input topic) and its default autoscaling numbers: generated/services.yaml, written by `npm run gen`
from the SERVICES table in packages/contracts/src/services.ts (CI fails if it is stale). Not values: a user cannot
point a stage at the wrong topic by accident.
*/}}
{{- define "mailgate.generated" -}}
{{- .Files.Get "generated/services.yaml" }}
{{- end }}

{{/*
The generated entry of the stage chain the values ask for: the check stages, or with stages.stageChain.includeDelivery
the check stages and delivery (`mailgate chain …,spam-check,delivery`, its own consumer group). YAML.
*/}}
{{- define "mailgate.chainEntry" -}}
{{- $g := include "mailgate.generated" . | fromYaml -}}
{{- ternary $g.stageChainWithDelivery $g.stageChain (eq (include "mailgate.chainDelivers" .) "true") | toYaml }}
{{- end }}

{{/* "true" when delivery (with its retry worker and reconciler) runs inside the stage chain's pods. */}}
{{- define "mailgate.chainDelivers" -}}
{{- if and .Values.stages.stageChain.enabled .Values.stages.stageChain.includeDelivery }}true{{ end -}}
{{- end }}

{{/* Helm key -> catalog entry (component, subcommand, section, httpPort, kind, consumerGroup, topic, autoscaling). */}}
{{- define "mailgate.catalog" -}}
{{- $g := include "mailgate.generated" . | fromYaml -}}
{{- $services := $g.services -}}
{{- if .Values.stages.stageChain.enabled }}{{ $_ := set $services "stageChain" (include "mailgate.chainEntry" . | fromYaml) }}{{ end -}}
{{- $services | toYaml }}
{{- end }}

{{/*
Service keys with the stage chain in place of the stages it replaces when stages.stageChain.enabled (the chain's
key where the first of them was; delivery too with includeDelivery): (dict "root" $ "keys" <list>) -> YAML list.
*/}}
{{- define "mailgate.withChain" -}}
{{- $keys := .keys -}}
{{- if .root.Values.stages.stageChain.enabled -}}
{{- $replaces := (include "mailgate.chainEntry" .root | fromYaml).replaces -}}
{{- $out := list -}}
{{- range $keys -}}
{{- if eq . (first $replaces) }}{{ $out = append $out "stageChain" }}{{ end -}}
{{- if not (has . $replaces) }}{{ $out = append $out . }}{{ end -}}
{{- end -}}
{{- $keys = $out -}}
{{- end -}}
{{- $keys | toYaml }}
{{- end }}

{{/*
The services' Helm keys in pipeline order, as a YAML list: `include "mailgate.serviceKeys" . | fromYamlArray`.
With stages.stageChain.enabled, `stageChain` stands in for the stages it runs (the check stages, and delivery with
stages.stageChain.includeDelivery).
*/}}
{{- define "mailgate.serviceKeys" -}}
{{- include "mailgate.withChain" (dict "root" . "keys" (include "mailgate.generated" . | fromYaml).serviceKeys) }}
{{- end }}

{{/* The Helm keys of the pipeline stages that consume Kafka (KEDA-scaled), as a YAML list. */}}
{{- define "mailgate.consumerKeys" -}}
{{- include "mailgate.withChain" (dict "root" . "keys" (include "mailgate.generated" . | fromYaml).consumerKeys) }}
{{- end }}

{{/* Pipeline topics (TOPICS of packages/contracts): key -> Kafka topic name. */}}
{{- define "mailgate.topics" -}}
{{- (include "mailgate.generated" . | fromYaml).topics | toYaml }}
{{- end }}

{{/*
A stage's values with `defaults` underneath, and under those the generated autoscaling defaults of the SERVICES
table: (dict "root" $ "key" "virusScan") -> YAML
*/}}
{{- define "mailgate.stageValues" -}}
{{- $c := index (include "mailgate.catalog" .root | fromYaml) .key -}}
{{- $base := dict -}}
{{- if $c.autoscaling }}{{ $_ := set $base "autoscaling" (deepCopy $c.autoscaling) }}{{ end -}}
{{- $stage := deepCopy (index .root.Values.stages .key) -}}
{{- $defaults := deepCopy .root.Values.defaults -}}
{{- $merged := mustMergeOverwrite $base $defaults $stage -}}
{{- toYaml $merged }}
{{- end }}

{{- define "mailgate.strimziCluster" -}}
{{- printf "%s-kafka" (include "mailgate.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Kafka bootstrap servers as a list (YAML). */}}
{{- define "mailgate.kafkaBrokers" -}}
{{- if .Values.kafka.strimzi.enabled }}
- {{ printf "%s-kafka-bootstrap:9092" (include "mailgate.strimziCluster" .) }}
{{- else }}
{{- toYaml .Values.kafka.external.brokers }}
{{- end }}
{{- end }}

{{- define "mailgate.kafkaSaslSecret" -}}
{{- default (printf "%s-kafka-sasl" (include "mailgate.fullname" .)) .Values.kafka.sasl.existingSecret }}
{{- end }}

{{- define "mailgate.redisSecret" -}}
{{- default (printf "%s-redis-url" (include "mailgate.fullname" .)) .Values.redis.external.existingSecret }}
{{- end }}

{{- define "mailgate.tlsSecret" -}}
{{- $tls := .Values.stages.ingressSmtp.tls }}
{{- if $tls.existingSecret }}{{ $tls.existingSecret }}{{ else }}{{ printf "%s-smtp-tls" (include "mailgate.fullname" .) }}{{ end }}
{{- end }}

{{/*
The configuration document: `config` as written, with the keys the chart owns filled in (they win).
*/}}
{{- define "mailgate.configDocument" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $catalog := include "mailgate.catalog" . | fromYaml -}}
{{- $kafka := dict "brokers" (include "mailgate.kafkaBrokers" . | fromYamlArray) -}}
{{- $topicsCreate := and .Values.kafka.topics.create (not .Values.kafka.strimzi.enabled) -}}
{{- $_ := set $kafka "topics" (dict "create" $topicsCreate "partitions" (int .Values.kafka.topics.partitions) "replicationFactor" (int .Values.kafka.topics.replicationFactor)) -}}
{{- if .Values.kafka.tls.enabled -}}
{{- $ssl := dict "rejectUnauthorized" true -}}
{{- if .Values.kafka.tls.caKey }}{{ $_ := set $ssl "caFile" (printf "/etc/mailgate/kafka-tls/%s" .Values.kafka.tls.caKey) }}{{ end -}}
{{- if .Values.kafka.tls.certKey }}{{ $_ := set $ssl "certFile" (printf "/etc/mailgate/kafka-tls/%s" .Values.kafka.tls.certKey) }}{{ end -}}
{{- if .Values.kafka.tls.keyKey }}{{ $_ := set $ssl "keyFile" (printf "/etc/mailgate/kafka-tls/%s" .Values.kafka.tls.keyKey) }}{{ end -}}
{{- $_ := set $kafka "ssl" $ssl -}}
{{- end -}}
{{- if .Values.kafka.sasl.enabled -}}
{{- /* the password arrives as env MAILGATE__KAFKA__SASL__PASSWORD from a Secret */ -}}
{{- $_ := set $kafka "sasl" (dict "mechanism" .Values.kafka.sasl.mechanism "username" .Values.kafka.sasl.username) -}}
{{- end -}}
{{- $_ := set $cfg "kafka" (mustMergeOverwrite (deepCopy (default dict $cfg.kafka)) $kafka) -}}
{{- if .Values.redis.internal.enabled -}}
{{- $_ := set $cfg "redis" (mustMergeOverwrite (deepCopy (default dict $cfg.redis)) (dict "url" (printf "redis://%s-redis:6379" (include "mailgate.fullname" .)))) -}}
{{- end -}}
{{- range $key, $c := $catalog -}}
{{- $section := deepCopy (default dict (index $cfg $c.section)) -}}
{{- $http := deepCopy (default dict $section.http) -}}
{{- $_ := set $http "port" (int $c.httpPort) -}}
{{- $_ := set $section "http" $http -}}
{{- $_ := set $cfg $c.section $section -}}
{{- end -}}
{{- $ing := .Values.stages.ingressSmtp -}}
{{- $listeners := dict "mx" (dict "enabled" true "port" (int $ing.containerPorts.smtp)) -}}
{{- $_ := set $listeners "submission" (dict "enabled" (eq (include "mailgate.submissionEnabled" .) "true") "port" (int $ing.containerPorts.submission)) -}}
{{- $_ := set $cfg.ingress "listeners" $listeners -}}
{{- $_ := set $cfg.ingress "drainTimeoutMs" (mul (int $ing.drain.closeTimeoutSeconds) 1000) -}}
{{- if $ing.auth.enabled -}}
{{- $_ := set $cfg.ingress "auth" (mustMergeOverwrite (deepCopy (default dict $cfg.ingress.auth)) (dict "usersFile" (printf "/etc/mailgate/auth/%s" $ing.auth.secretKey))) -}}
{{- end -}}
{{- if $ing.tls.enabled -}}
{{- $_ := set $cfg.ingress "tls" (mustMergeOverwrite (deepCopy (default dict $cfg.ingress.tls)) (dict "certFile" "/etc/mailgate/tls/tls.crt" "keyFile" "/etc/mailgate/tls/tls.key")) -}}
{{- end -}}
{{- if $ing.proxyProtocol.enabled -}}
{{- $_ := set $cfg.ingress "proxy" (mustMergeOverwrite (deepCopy (default dict $cfg.ingress.proxy)) (dict "trusted" $ing.proxyProtocol.trustedCidrs)) -}}
{{- end -}}
{{- $ldap := $ing.recipients.ldap -}}
{{- if $ldap.enabled -}}
{{- /* the bind password and the CA are files mounted from a Secret/ConfigMap (stages.yaml), never in here */ -}}
{{- $src := dict "type" "ldap" "url" (join "," $ldap.urls) "startTls" $ldap.startTls "baseDn" $ldap.baseDn "scope" $ldap.scope "timeoutMs" (int $ldap.timeoutMs) "connectTimeoutMs" (int $ldap.connectTimeoutMs) "poolSize" (int $ldap.poolSize) -}}
{{- if $ldap.filter }}{{ $_ := set $src "filter" $ldap.filter }}{{ end -}}
{{- if $ldap.bindDn -}}
{{- $_ := set $src "bindDn" $ldap.bindDn -}}
{{- $_ := set $src "bindPasswordFile" "/etc/mailgate/ldap-bind/password" -}}
{{- end -}}
{{- if or $ldap.ca.existingConfigMap $ldap.ca.existingSecret }}{{ $_ := set $src "caFile" (printf "/etc/mailgate/ldap-ca/%s" $ldap.ca.key) }}{{ end -}}
{{- $rcpt := deepCopy (default dict $cfg.ingress.recipients) -}}
{{- $sources := deepCopy (default dict $rcpt.sources) -}}
{{- $_ := set $sources $ldap.sourceName $src -}}
{{- $_ := set $rcpt "sources" $sources -}}
{{- $domains := default list $rcpt.domains -}}
{{- range $ldap.domains -}}
{{- $domains = append $domains (dict "domain" . "sources" (list $ldap.sourceName)) -}}
{{- end -}}
{{- if $domains }}{{ $_ := set $rcpt "domains" $domains }}{{ end -}}
{{- $_ := set $cfg.ingress "recipients" $rcpt -}}
{{- end -}}
{{- if .Values.clamd.enabled -}}
{{- /* the in-chart clamd Service, and its StreamMaxLength so virus-scan never sends what clamd would refuse */ -}}
{{- $clamd := dict "endpoints" (list (dict "host" (printf "%s-clamd" (include "mailgate.fullname" .)) "port" 3310)) -}}
{{- with .Values.clamd.config.StreamMaxLength }}{{ $_ := set $clamd "streamMaxLength" (toString .) }}{{ end -}}
{{- $_ := set $cfg.virusScan "clamd" (mustMergeOverwrite $clamd (deepCopy (default dict $cfg.virusScan.clamd))) -}}
{{- end -}}
{{- $dkim := .Values.stages.delivery.dkimSigning -}}
{{- if $dkim.enabled -}}
{{- /* signing keys are files of the Secret mounted at /etc/mailgate/dkim in the delivery pods */ -}}
{{- $domains := list -}}
{{- range $dkim.domains -}}
{{- $keys := list -}}
{{- range .keys -}}
{{- $keys = append $keys (dict "selector" .selector "keyFile" (printf "/etc/mailgate/dkim/%s" .secretKey) "active" (ternary .active true (hasKey . "active"))) -}}
{{- end -}}
{{- $d := dict "domain" .domain "keys" $keys -}}
{{- if hasKey . "subdomains" }}{{ $_ := set $d "subdomains" .subdomains }}{{ end -}}
{{- $domains = append $domains $d -}}
{{- end -}}
{{- $sa := deepCopy (default dict $cfg.senderAuth) -}}
{{- $_ := set $sa "signing" (mustMergeOverwrite (deepCopy (default dict $sa.signing)) (dict "enabled" true "domains" $domains)) -}}
{{- $_ := set $cfg "senderAuth" $sa -}}
{{- end -}}
{{- if .Values.stages.spamCheck.enabled -}}
{{- /* spam-check asks rspamd's normal worker; the in-chart rspamd Service or rspamd.external */ -}}
{{- $r := include "mailgate.rspamdEndpoints" . | fromYaml -}}
{{- $sc := deepCopy (default dict $cfg.spamCheck) -}}
{{- $rs := dict "worker" (dict "host" $r.host "port" (int $r.workerPort)) "controller" (dict "host" $r.host "port" (int $r.controllerPort)) -}}
{{- $_ := set $sc "rspamd" (mustMergeOverwrite (deepCopy (default dict $sc.rspamd)) $rs) -}}
{{- $_ := set $cfg "spamCheck" $sc -}}
{{- end -}}
{{- if include "mailgate.adminLearns" . -}}
{{- /* admin trains Bayes through the controller; the password is a file from the Secret (stages.yaml) */ -}}
{{- $r := include "mailgate.rspamdEndpoints" . | fromYaml -}}
{{- $learn := dict "controllerUrl" $r.controllerUrl "passwordFile" "/etc/mailgate/rspamd/password" -}}
{{- $_ := set $cfg.admin "rspamd" (mustMergeOverwrite (deepCopy (default dict $cfg.admin.rspamd)) $learn) -}}
{{- end -}}
{{- $tokens := list -}}
{{- range .Values.stages.admin.tokens -}}
{{- $tokens = append $tokens (dict "name" .name "role" (default "admin" .role) "tokenFile" (printf "/etc/mailgate/admin-tokens/%s" .name)) -}}
{{- end -}}
{{- if $tokens }}{{ $_ := set $cfg.admin "tokens" $tokens }}{{ end -}}
{{- toYaml $cfg }}
{{- end }}

{{/* "true" when the submission listener (587) runs: it needs STARTTLS, AUTH is never offered in clear. */}}
{{- define "mailgate.submissionEnabled" -}}
{{- $ing := .Values.stages.ingressSmtp -}}
{{- if and $ing.submission.enabled $ing.tls.enabled }}true{{ end -}}
{{- end }}

{{/* Env overrides carrying secrets, shared by every mailgate container. */}}
{{- define "mailgate.secretEnv" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: MAILGATE__KAFKA__SASL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mailgate.kafkaSaslSecret" . }}
      key: {{ if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.passwordKey }}{{ else }}password-yaml{{ end }}
{{- end }}
{{- if not .Values.redis.internal.enabled }}
- name: MAILGATE__REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mailgate.redisSecret" . }}
      key: {{ if .Values.redis.external.existingSecret }}{{ .Values.redis.external.urlKey }}{{ else }}url-yaml{{ end }}
{{- end }}
{{- end }}

{{/* rspamd as mailgate reaches it: the in-chart Service or rspamd.external. */}}
{{- define "mailgate.rspamdEndpoints" -}}
{{- if .Values.rspamd.enabled }}
{{- $host := printf "%s-rspamd" (include "mailgate.fullname" .) }}
host: {{ $host }}
workerPort: 11333
controllerPort: 11334
controllerUrl: {{ printf "http://%s:11334" $host }}
{{- else }}
{{- with .Values.rspamd.external }}
host: {{ .host }}
workerPort: {{ .workerPort }}
controllerPort: {{ .controllerPort }}
controllerUrl: {{ printf "http://%s:%d" .host (int .controllerPort) }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when admin trains rspamd (admin.rspamd rendered, the controller password mounted). */}}
{{- define "mailgate.adminLearns" -}}
{{- $v := .Values -}}
{{- if and $v.stages.admin.enabled $v.stages.spamCheck.enabled $v.rspamd.learning.enabled (or $v.rspamd.enabled $v.rspamd.external.host) }}true{{ end -}}
{{- end }}

{{/* Secret holding the rspamd controller password: (name, key). */}}
{{- define "mailgate.rspamdSecret" -}}
{{- $r := .Values.rspamd.controllerPassword -}}
name: {{ default (printf "%s-rspamd" (include "mailgate.fullname" .)) $r.existingSecret }}
key: {{ if $r.existingSecret }}{{ $r.passwordKey }}{{ else }}password{{ end }}
{{- end }}

{{/*
Redis for rspamd's Bayes (host:port): rspamd.redis.servers, else the in-chart Redis, else the host of an inline
redis.external.url without credentials (a password never goes into the ConfigMap: use rspamd.redis.existingSecret).
Empty when none applies (_checks.tpl then fails with what to set).
*/}}
{{- define "mailgate.rspamdRedisServers" -}}
{{- $v := .Values -}}
{{- if $v.rspamd.redis.servers -}}
{{- $v.rspamd.redis.servers -}}
{{- else if $v.redis.internal.enabled -}}
{{- printf "%s-redis:6379" (include "mailgate.fullname" .) -}}
{{- else if and $v.redis.external.url (not $v.redis.external.existingSecret) -}}
{{- $u := urlParse $v.redis.external.url -}}
{{- if and (not $u.userinfo) (eq $u.scheme "redis") -}}
{{- if contains ":" $u.host }}{{ $u.host }}{{ else }}{{ printf "%s:6379" $u.host }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Checks the schema cannot express (they need several values at once). Each `fail` names the keys to change.
*/}}
{{- define "mailgate.checks" -}}
{{- $v := .Values -}}
{{- if and (not $v.kafka.strimzi.enabled) (empty $v.kafka.external.brokers) -}}
{{- fail "kafka: set kafka.external.brokers (host:port list of your Kafka cluster) or kafka.strimzi.enabled=true" -}}
{{- end -}}
{{- if and $v.kafka.strimzi.enabled (not (empty $v.kafka.external.brokers)) -}}
{{- fail "kafka: kafka.external.brokers and kafka.strimzi.enabled are exclusive; pick one" -}}
{{- end -}}
{{- if and (not $v.redis.internal.enabled) (not $v.redis.external.url) (not $v.redis.external.existingSecret) -}}
{{- fail "redis: set redis.external.url (or redis.external.existingSecret) or redis.internal.enabled=true" -}}
{{- end -}}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.existingSecret) (not $v.kafka.sasl.password) -}}
{{- fail "kafka.sasl: set kafka.sasl.password or kafka.sasl.existingSecret" -}}
{{- end -}}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.existingSecret) -}}
{{- fail "kafka.tls: set kafka.tls.existingSecret (Secret with the CA, and client cert/key for mTLS)" -}}
{{- end -}}
{{- if and $v.kafka.strimzi.enabled (gt (int $v.kafka.topics.replicationFactor) (int $v.kafka.strimzi.replicas)) -}}
{{- fail (printf "kafka.topics.replicationFactor (%d) cannot exceed kafka.strimzi.replicas (%d)" (int $v.kafka.topics.replicationFactor) (int $v.kafka.strimzi.replicas)) -}}
{{- end -}}
{{- /* KEDA never runs more consumers than the topic has partitions: a larger max is a lie about capacity. */ -}}
{{- $partitions := int $v.kafka.topics.partitions -}}
{{- range $key := include "mailgate.consumerKeys" $ | fromYamlArray -}}
{{- $s := include "mailgate.stageValues" (dict "root" $ "key" $key) | fromYaml -}}
{{- if and $s.enabled $s.autoscaling.enabled -}}
{{- if gt (int $s.autoscaling.maxReplicaCount) $partitions -}}
{{- fail (printf "stages.%s.autoscaling.maxReplicaCount (%d) exceeds kafka.topics.partitions (%d): a consumer group cannot use more consumers than partitions; raise the partitions or lower the max" $key (int $s.autoscaling.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if gt (int $s.autoscaling.minReplicaCount) (int $s.autoscaling.maxReplicaCount) -}}
{{- fail (printf "stages.%s.autoscaling.minReplicaCount exceeds maxReplicaCount" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $v.stages.ingressSmtp -}}
{{- if .enabled -}}
{{- $scaling := (include "mailgate.stageValues" (dict "root" $ "key" "ingressSmtp") | fromYaml).autoscaling -}}
{{- if and $scaling.enabled (gt (int $scaling.minReplicas) (int $scaling.maxReplicas)) -}}
{{- fail "stages.ingressSmtp.autoscaling.minReplicas exceeds maxReplicas" -}}
{{- end -}}
{{- $need := add .drain.preStopSleepSeconds .drain.closeTimeoutSeconds 10 -}}
{{- if lt (int .terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "stages.ingressSmtp.terminationGracePeriodSeconds (%d) must cover drain.preStopSleepSeconds + drain.closeTimeoutSeconds + 10s to flush Kafka (%d), or open SMTP sessions are killed" (int .terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- if and .tls.enabled (not .tls.existingSecret) (not .tls.certManager.enabled) -}}
{{- fail "stages.ingressSmtp.tls: set tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" -}}
{{- end -}}
{{- if and .tls.certManager.enabled (or (not .tls.certManager.issuerRef.name) (empty .tls.certManager.dnsNames)) -}}
{{- fail "stages.ingressSmtp.tls.certManager: set issuerRef.name and dnsNames" -}}
{{- end -}}
{{- if and .auth.enabled (not (include "mailgate.submissionEnabled" $)) -}}
{{- fail "stages.ingressSmtp.auth needs the submission listener: enable stages.ingressSmtp.tls (AUTH is only offered after STARTTLS) and submission.enabled" -}}
{{- end -}}
{{- if and .auth.enabled (not .auth.existingSecret) (empty .auth.users) -}}
{{- fail "stages.ingressSmtp.auth: set auth.users (username: scrypt hash) or auth.existingSecret" -}}
{{- end -}}
{{- with .recipients.ldap -}}
{{- if .enabled -}}
{{- if or (empty .urls) (not .baseDn) -}}
{{- fail "stages.ingressSmtp.recipients.ldap: set urls (ldap://... or ldaps://...) and baseDn" -}}
{{- end -}}
{{- if and .bindDn (not .existingSecret) (not .bindPassword) -}}
{{- fail "stages.ingressSmtp.recipients.ldap: bindDn needs existingSecret (+ passwordKey) or bindPassword" -}}
{{- end -}}
{{- if and .ca.existingConfigMap .ca.existingSecret -}}
{{- fail "stages.ingressSmtp.recipients.ldap.ca: set existingConfigMap or existingSecret, not both" -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled $v.networkPolicy.egress.enabled (empty $v.networkPolicy.egress.ldap.to) -}}
{{- fail "networkPolicy.egress.ldap.to: list your directory servers' peers (ipBlock), or egress would block LDAP" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .proxyProtocol.enabled (empty .proxyProtocol.trustedCidrs) -}}
{{- fail "stages.ingressSmtp.proxyProtocol.trustedCidrs: list the proxies' CIDRs (never trust everyone)" -}}
{{- end -}}
{{- if and (eq .service.type "LoadBalancer") (eq .service.externalTrafficPolicy "Cluster") (not .proxyProtocol.enabled) -}}
{{- fail "stages.ingressSmtp.service.externalTrafficPolicy=Cluster hides the client IP (SNAT) and breaks DNSBL/SPF/relay checks; use Local, or enable proxyProtocol" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.stages.spamCheck.enabled -}}
{{- if and (not $v.rspamd.enabled) (not $v.rspamd.external.host) -}}
{{- fail "rspamd: spam-check needs rspamd: keep rspamd.enabled=true or set rspamd.external.host (your rspamd's worker/controller)" -}}
{{- end -}}
{{- if and (not $v.rspamd.enabled) (include "mailgate.adminLearns" $) (not $v.rspamd.controllerPassword.value) (not $v.rspamd.controllerPassword.existingSecret) -}}
{{- fail "rspamd.controllerPassword: learning against your own rspamd needs its controller password (value or existingSecret), or set rspamd.learning.enabled=false" -}}
{{- end -}}
{{- if and $v.rspamd.enabled (not (include "mailgate.rspamdRedisServers" $)) -}}
{{- fail "rspamd.redis.servers: rspamd keeps Bayes in Redis; set rspamd.redis.servers (host:port of your Redis; rspamd.redis.existingSecret if it needs a password): the chart cannot take it from a Secret or a URL with credentials" -}}
{{- end -}}
{{- if and $v.rspamd.enabled $v.rspamd.autoscaling.enabled (gt (int $v.rspamd.autoscaling.minReplicas) (int $v.rspamd.autoscaling.maxReplicas)) -}}
{{- fail "rspamd.autoscaling.minReplicas exceeds maxReplicas" -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (or $v.networkPolicy.egress.enabled $v.networkPolicy.defaultDeny.enabled) (not $v.rspamd.enabled) (empty $v.networkPolicy.egress.rspamd.to) -}}
{{- fail "networkPolicy.egress.rspamd.to: list your rspamd's peers, or egress would block spam-check and admin from it" -}}
{{- end -}}
{{- end -}}
{{- with $v.stages.stageChain -}}
{{- if and .includeDelivery (not .enabled) -}}
{{- fail "stages.stageChain.includeDelivery runs delivery inside the stage chain: it needs stages.stageChain.enabled=true (or set includeDelivery=false)" -}}
{{- end -}}
{{- if and .enabled .includeDelivery (not $v.stages.delivery.enabled) -}}
{{- fail "stages.stageChain.includeDelivery: stages.delivery.enabled is false; a chain that ends in delivery delivers mail (its dkimSigning and grace period apply to the chain); enable delivery or set includeDelivery=false" -}}
{{- end -}}
{{- end -}}
{{- with $v.stages.admin -}}
{{- if and .enabled .ingress.enabled (not .ingress.host) -}}
{{- fail "stages.admin.ingress.host is required when stages.admin.ingress.enabled" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* clamd.conf: what the official image's entrypoint expects (local socket, TCP 3310), then the user's options. */}}
{{- define "mailgate.clamdConf" -}}
{{- $conf := dict "LogTime" "yes" "LogClean" "no" "DatabaseDirectory" "/var/lib/clamav" "LocalSocket" "/tmp/clamd.sock" "TCPSocket" "3310" "TCPAddr" "0.0.0.0" -}}
{{- $conf = mustMergeOverwrite $conf .Values.clamd.config -}}
{{- range $k, $v := $conf }}
{{ printf "%s %v" $k $v }}
{{- end }}
{{- end }}

#!/usr/bin/env bash
# Installs the Debian packages the tests (and `mailgate dev`'s local clamd/redis) use. Needs root (or sudo).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v clamd >/dev/null || need+=(clamav-daemon)
command -v rbldnsd >/dev/null || need+=(rbldnsd)
command -v smtp-source >/dev/null || need+=(postfix)
command -v redis-server >/dev/null || need+=(redis-server)
command -v openssl >/dev/null || need+=(openssl)
command -v unzip >/dev/null || need+=(unzip)
command -v zip >/dev/null || need+=(zip)
command -v setpriv >/dev/null || need+=(util-linux)
command -v chromium >/dev/null || need+=(chromium)  # console tests (services/admin, playwright-core)
command -v kcat >/dev/null || need+=(kcat)  # librdkafka client against kafka-lite (packages/kafka-lite/test/kcat.test.ts)
/usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null || need+=(python3-confluent-kafka)  # second librdkafka client
# Sender authentication (packages/sender-auth): independent DKIM/ARC implementations the tests check against.
[ -x /usr/sbin/opendkim-testmsg ] || need+=(opendkim-tools)  # libopendkim verifies our signatures
/usr/bin/python3 -c 'import dkim, nacl, dns.resolver, authres' 2>/dev/null ||
  need+=(python3-dkim python3-nacl python3-dnspython python3-authres)  # dkimpy: signs, verifies, ARC; Ed25519
[ -x /usr/sbin/slapd ] || need+=(slapd)  # recipient validation tests: a real LDAP directory (packages/testkit startSlapd)
command -v ldapsearch >/dev/null || need+=(ldap-utils)
command -v rspamd >/dev/null || need+=(rspamd)  # spam-check engine (packages/rspamd tests, services/spam-check)
command -v ip >/dev/null || need+=(iproute2)  # `ip link set lo up` in the DNS sandbox for opendkim-testmsg
if [ ${#need[@]} -eq 0 ]; then echo "system packages present"; exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# slapd: install the binaries only; the tests generate their own slapd.conf (no system directory, no service).
if [[ " ${need[*]} " == *" slapd "* ]]; then echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"

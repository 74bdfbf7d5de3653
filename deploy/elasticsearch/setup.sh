#!/bin/bash
# One-shot set-up of Elasticsearch's users for the onair stack (docker-compose service `es-setup`,
# run with the Elasticsearch image, which has bash and curl). Idempotent: every `docker compose up`
# runs it again, so passwords changed in the environment take effect.
#
#   kibana_system     built-in; Kibana's own connection (Elastic's documented Docker Compose set-up)
#   onair_fluentd     fluentd: create documents in onair-access (cannot overwrite or read them)
#   onair_monitoring  monitoring: provisions the ILM policy, index template and data stream at
#                     start, then reads. ILM runs its rollover/delete actions with the privileges
#                     of the user who last put the policy, hence `manage` on the data stream
#                     (and its .ds- backing indices).
# People log in to Kibana as `elastic` (ELASTIC_PASSWORD).
set -euo pipefail

ES_URL="${ES_URL:-http://elasticsearch:9200}"
for var in ELASTIC_PASSWORD KIBANA_SYSTEM_PASSWORD FLUENTD_ES_PASSWORD MONITORING_ES_PASSWORD; do
  if [ -z "${!var:-}" ]; then
    echo "es-setup: $var is not set" >&2
    exit 1
  fi
done

# JSON string body of a password: backslash and double quote escaped.
json_string() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# The superuser's credentials go to curl through a config file on stdin, not the command line.
es() { # METHOD PATH [BODY]
  local method=$1 path=$2
  local args=(--silent --show-error --fail-with-body --config - -X "$method" -H 'Content-Type: application/json')
  if [ $# -ge 3 ]; then args+=(--data-binary "$3"); fi
  local auth="elastic:${ELASTIC_PASSWORD}"
  auth=${auth//\\/\\\\}
  auth=${auth//\"/\\\"}
  printf 'user = "%s"\n' "$auth" | curl "${args[@]}" "${ES_URL}${path}"
  echo
}

echo "es-setup: waiting for Elasticsearch at ${ES_URL}"
for attempt in $(seq 1 60); do
  if es GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null 2>&1; then break; fi
  if [ "$attempt" -eq 60 ]; then
    echo "es-setup: Elasticsearch did not answer (wrong ELASTIC_PASSWORD?)" >&2
    exit 1
  fi
  sleep 5
done

echo "es-setup: kibana_system password"
es POST /_security/user/kibana_system/_password "{\"password\":$(json_string "$KIBANA_SYSTEM_PASSWORD")}"

echo "es-setup: role onair_fluentd_writer, user onair_fluentd"
es PUT /_security/role/onair_fluentd_writer '{
  "cluster": ["monitor"],
  "indices": [
    { "names": ["onair-access", "onair-access*", ".ds-onair-access*"], "privileges": ["create_doc", "auto_configure"] }
  ],
  "metadata": { "managed_by": "onair" }
}'
es PUT /_security/user/onair_fluentd "{
  \"password\": $(json_string "$FLUENTD_ES_PASSWORD"),
  \"roles\": [\"onair_fluentd_writer\"],
  \"full_name\": \"onair fluentd (access records writer)\"
}"

echo "es-setup: role onair_monitoring, user onair_monitoring"
es PUT /_security/role/onair_monitoring '{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [
    { "names": ["onair-access", "onair-access*", ".ds-onair-access*"], "privileges": ["read", "view_index_metadata", "create_doc", "manage"] }
  ],
  "metadata": { "managed_by": "onair" }
}'
es PUT /_security/user/onair_monitoring "{
  \"password\": $(json_string "$MONITORING_ES_PASSWORD"),
  \"roles\": [\"onair_monitoring\"],
  \"full_name\": \"onair monitoring (provisioning, queries)\"
}"

echo "es-setup: done"

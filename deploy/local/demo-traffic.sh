#!/usr/bin/env bash
# Demo traffic: what a phone system, a web form and the hotline would send.
set -euo pipefail
url=${1:-http://127.0.0.1:8080}
key=${TP_DEMO_KEY:-tp-local-dev-key}
# The phone system signs its requests (deploy/local/api-keys.ini, [cti]).
cti_key=${TP_DEMO_CTI_KEY:-tp-local-cti-key}
cti_secret=${TP_DEMO_CTI_SECRET:-tp-local-cti-signing-secret}
now=$(($(date +%s%N) / 1000000))
post() {
  curl -fsS -X POST "$url/v1/events" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' --data-binary "$1"
  echo
}
# README, "Signed requests": HMAC-SHA256(secret, timestamp "." body), hex.
post_signed() {
  local ts sig
  ts=$(date +%s)
  sig=$(printf '%s.%s' "$ts" "$1" | openssl dgst -sha256 -hmac "$cti_secret" | sed 's/^.*= //')
  curl -fsS -X POST "$url/v1/events" -H "Authorization: Bearer $cti_key" \
    -H "X-TP-Timestamp: $ts" -H "X-TP-Signature: v1=$sig" \
    -H 'Content-Type: application/json' --data-binary "$1"
  echo
}
echo "demo traffic:"
post '{"events":[
 {"id":"demo-lead-acme","type":"lead.captured","ts":'$now',"src":"web","customer":"DEMO-ACME",
  "data":{"company":"ACME Manufacturing","contact":{"name":"Wang Fang","title":"CIO","phone":"138 0013 8000","email":"wang@acme.example"},
          "industry":"manufacturing","size":800,"channel":"exhibition","need":"MES rollout this quarter",
          "urgency":3,"budget":3,"decision":2,"owner":"rep-wang"}},
 {"id":"demo-lead-initech","type":"lead.captured","ts":'$now',"src":"phone","customer":"DEMO-INITECH",
  "data":{"company":"Initech","contact":{"name":"Zhao Lei","email":"zhao@initech.example"},
          "industry":"services","size":40,"channel":"search","urgency":1,"budget":1,"decision":0,"owner":"rep-li"}},
 {"id":"demo-inquiry-1","type":"inquiry.received","ts":'$now',"src":"email","customer":"DEMO-INITECH",
  "data":{"channel":"email","urgent":false,"text":"Do you support SSO?","owner":"rep-li"}},
 {"id":"demo-ticket-1","type":"ticket.opened","ts":'$now',"src":"hotline","customer":"DEMO-ACME",
  "data":{"ticket":"T-DEMO-1","title":"Production line terminals cannot log in","category":"fault","priority":"urgent","channel":"hotline","owner":"agent-chen"}}]}'
post_signed '{"id":"demo-call-1","type":"call.ended","ts":'$now',"src":"phone",
  "data":{"from":"+86 138 0013 8000","to":"4008001234","direction":"in","agent":"agent-chen","queue":"sales","duration_s":95}}'

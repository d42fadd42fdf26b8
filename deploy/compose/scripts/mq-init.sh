#!/bin/sh
# Through the management API, with the admin user once: the regular user
# MinIO and lazaret use, the topic exchange MinIO publishes to, the queue
# lazaret reads (with a dead-letter queue for messages that are not S3
# events) and the binding.
set -eu
API=http://mq-service:15672/api
A="$RABBITMQ_DEFAULT_USER:$RABBITMQ_DEFAULT_PASS"
put() { curl -fsS -u "$A" -H 'content-type: application/json' -X PUT "$API/$1" -d "$2"; }
until curl -fsS -u "$A" "$API/overview" >/dev/null; do sleep 1; done
put "users/$RABBITMQ_REGULAR_USER_NAME" "{\"password\":\"$RABBITMQ_REGULAR_USER_PASS\",\"tags\":\"\"}"
put "permissions/%2F/$RABBITMQ_REGULAR_USER_NAME" '{"configure":".*","write":".*","read":".*"}'
put "exchanges/%2F/$RABBITMQ_TOPIC" '{"type":"topic","durable":true}'
put "queues/%2F/$RABBITMQ_QUEUE_NAME.dead" '{"durable":true}'
put "queues/%2F/$RABBITMQ_QUEUE_NAME" "{\"durable\":true,\"arguments\":{\"x-dead-letter-exchange\":\"\",\"x-dead-letter-routing-key\":\"$RABBITMQ_QUEUE_NAME.dead\"}}"
curl -fsS -u "$A" -H 'content-type: application/json' -X POST \
  "$API/bindings/%2F/e/$RABBITMQ_TOPIC/q/$RABBITMQ_QUEUE_NAME" -d "{\"routing_key\":\"$RABBITMQ_QUEUE_ROUTING_KEY\"}"
echo "rabbitmq ready"

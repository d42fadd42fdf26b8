#!/bin/sh
# Creates the bucket, a regular user limited to it, and the bucket's event
# subscription (all ObjectCreated events, as bucket-av-scanner does; lazaret
# ignores its own tag writes).
set -eu
until mc alias set local https://minio-service:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" --insecure >/dev/null 2>&1; do sleep 1; done
mc mb --ignore-existing --insecure "local/$MINIO_BUCKET_NAME"
cat > /tmp/policy.json <<JSON
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
             "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:GetObjectVersionTagging", "s3:PutObjectVersionTagging",
             "s3:ListBucket"],
  "Resource": ["arn:aws:s3:::$MINIO_BUCKET_NAME", "arn:aws:s3:::$MINIO_BUCKET_NAME/*"]}]}
JSON
mc admin policy create --insecure local lazaret-scanner /tmp/policy.json || true
mc admin user add --insecure local "$MINIO_USER_NAME" "$MINIO_USER_PASSWORD"
mc admin policy attach --insecure local lazaret-scanner --user "$MINIO_USER_NAME" || true
mc event add --insecure "local/$MINIO_BUCKET_NAME" arn:minio:sqs::PRIMARY:amqp --event put --ignore-existing || true

#!/bin/sh
# A self-signed certificate for minio-service, made once.
set -eu
[ -f /certs/public.crt ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=minio-service" \
  -addext "subjectAltName=DNS:minio-service,DNS:localhost,IP:127.0.0.1" \
  -keyout /certs/private.key -out /certs/public.crt
chmod 0644 /certs/public.crt; chmod 0600 /certs/private.key

#!/bin/sh
# Test-only PKI for SIP over TLS: a CA and a certificate for the simulated centre
# (centre.test, 127.0.0.1). Long validity so tests do not expire. Never use in production.
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
  -subj "/CN=Vigil test CA" -keyout tls_ca.key -out tls_ca.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=centre.test" -keyout tls_centre.key -out tls_centre.csr
printf 'subjectAltName=DNS:centre.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > tls_ext.cnf
openssl x509 -req -in tls_centre.csr -CA tls_ca.pem -CAkey tls_ca.key -CAcreateserial \
  -days 36500 -extfile tls_ext.cnf -out tls_centre.pem
openssl pkcs8 -topk8 -nocrypt -in tls_centre.key -out tls_centre.key.pk8
mv tls_centre.key.pk8 tls_centre.key
rm -f tls_centre.csr tls_ext.cnf tls_ca.srl tls_ca.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 -subj "/CN=Some other CA" -keyout /dev/null -out tls_other_ca.pem

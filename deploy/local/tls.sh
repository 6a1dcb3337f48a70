#!/usr/bin/env bash
# Test certificates for a secured local broker, made with openssl.
# Usage: deploy/local/tls.sh [DIR]     (default out/tls, relative to the repository root)
# Writes, when missing or no longer valid (idempotent: existing, valid files are kept):
#   ca.crt ca.key                   the test CA clients trust (ssl.ca.location)
#   broker.crt broker.key           the broker's certificate, signed by ca.crt,
#                                   SAN DNS:localhost, IP:127.0.0.1 (PKCS#8 key)
#   client.crt client.key           a client certificate signed by ca.crt (for mTLS)
#   untrusted-ca.crt untrusted-ca.key
#                                   a second CA that signed nothing the broker
#                                   uses: a client trusting only it must fail
#                                   the handshake ("untrusted certificate")
# Prints DIR (absolute) on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${1:-out/tls}
[[ $dir == /* ]] || dir="$repo/$dir"
days=3650

log() { echo "tls: $*" >&2; }
mkdir -p "$dir"
cd "$dir"

# A certificate is usable when it and its key exist, match, and it does
# not expire within a day; a leaf must also verify against its CA.
pair_ok() {
    [[ -s $1.crt && -s $1.key ]] &&
        openssl x509 -in "$1.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
        [[ $(openssl x509 -in "$1.crt" -noout -pubkey) == $(openssl pkey -in "$1.key" -pubout) ]]
}
leaf_ok() { # name ca
    pair_ok "$1" && openssl verify -CAfile "$2.crt" "$1.crt" >/dev/null 2>&1
}

new_ca() { # name subject
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.crt" -days "$days" -subj "$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    log "made $dir/$1.crt ($2)"
}

new_leaf() { # name subject ca extensions
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
        -out "$1.crt" -days "$days" -extfile <(printf '%s\n' "$4") 2>/dev/null
    rm -f "$1.csr"
    log "made $dir/$1.crt ($2, signed by $3)"
}

remade=
if ! pair_ok ca; then
    new_ca ca "/CN=tillsyn test CA"
    remade=1
fi
if [[ -n $remade ]] || ! leaf_ok broker ca; then
    new_leaf broker "/CN=localhost" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
fi
if [[ -n $remade ]] || ! leaf_ok client ca; then
    new_leaf client "/CN=tillsyn" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi
if ! pair_ok untrusted-ca; then
    new_ca untrusted-ca "/CN=tillsyn untrusted test CA"
fi
chmod 600 ./*.key
echo "$dir"

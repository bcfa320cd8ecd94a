# Test X.509 certificates and PSK files, generated at test time with certtool
# (gnutls-bin) into the test's temporary directory; nothing here is secret
# and nothing generated is kept. Source after functions.sh.
#
# Directory layouts are the ones nbdkit, libnbd and qemu read:
#   server dir (nbdkit --tls-certificates):  ca-cert.pem server-cert.pem server-key.pem
#   client dir (libnbd tls-certificates=, qemu tls-creds-x509 dir=):
#                                            ca-cert.pem client-cert.pem client-key.pem
# ECDSA P-256 keys: generated in milliseconds, accepted by every client here.

# make_ca NAME: a CA in NAME/ (ca-cert.pem, ca-key.pem).
make_ca () {
  local ca=$1
  mkdir -p "$ca"
  certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
    --outfile "$ca/ca-key.pem" 2>/dev/null
  printf 'cn = cryptvol test CA %s\nca\ncert_signing_key\nexpiration_days = 2\n' \
    "$(basename "$ca")" >"$ca/ca.info"
  certtool --generate-self-signed --load-privkey "$ca/ca-key.pem" \
    --template "$ca/ca.info" --outfile "$ca/ca-cert.pem" 2>/dev/null
}

# make_cert CA DIR server|client CN [IP...]: a key and certificate signed by
# CA in DIR/ (named as nbdkit or the clients expect), with ca-cert.pem
# copied from CA. A server certificate carries each IP in subjectAltName.
make_cert () {
  local ca=$1 dir=$2 role=$3 cn=$4 ip
  shift 4
  mkdir -p "$dir"
  {
    echo "organization = cryptvol tests"
    echo "cn = $cn"
    echo "expiration_days = 2"
    if [ "$role" = server ]; then
      echo "dns_name = $cn"
      for ip in "$@"; do echo "ip_address = $ip"; done
      echo "tls_www_server"
    else
      echo "tls_www_client"
    fi
    echo "signing_key"
  } >"$dir/$role.info"
  certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
    --outfile "$dir/$role-key.pem" 2>/dev/null
  chmod 0600 "$dir/$role-key.pem"
  certtool --generate-certificate --load-ca-certificate "$ca/ca-cert.pem" \
    --load-ca-privkey "$ca/ca-key.pem" --load-privkey "$dir/$role-key.pem" \
    --template "$dir/$role.info" --outfile "$dir/$role-cert.pem" 2>/dev/null
  cp "$ca/ca-cert.pem" "$dir/ca-cert.pem"
}

# make_psk FILE USER: a PSK file with one fresh random key for USER (psktool).
make_psk () {
  psktool -u "$2" -p "$1" >/dev/null
  chmod 0600 "$1"
}

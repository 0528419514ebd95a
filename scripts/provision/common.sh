# Shared helpers of the provisioning scripts (sourced by scripts/test).
need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if need apt-get; then
    echo "installing $* from Debian packages"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "missing $* and no apt-get to install it" >&2; exit 1
  fi
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_port PORT SECONDS WHAT
wait_port() {
  for _ in $(seq 1 $(( $2 * 2 ))); do port_open "$1" && return 0; sleep 0.5; done
  echo "$3 is not listening on 127.0.0.1:$1 after $2 s" >&2; exit 1
}

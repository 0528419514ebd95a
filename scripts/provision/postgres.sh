# PostgreSQL on loopback for the store tests (sourced by scripts/test).
# ---- PostgreSQL on loopback (store backend tests) --------------------------
# Unless SLUICE_TEST_POSTGRES_URL is given: when nothing listens on
# 127.0.0.1:5432, install the Debian package if needed and start its cluster;
# make sure the postgres role gets in over TCP without a password (trust, on
# loopback only); then point the tests at it.
pg_listening() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
pg_ready() {
  if need pg_isready; then pg_isready -q -h 127.0.0.1 -p 5432; else pg_listening; fi
}
pg_trusted() { PGCONNECT_TIMEOUT=5 psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }
provision_postgres() {
  local version=""
  if ! pg_listening; then
    need pg_ctlcluster || apt_install postgresql
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    [ -n "$version" ] || { echo "no PostgreSQL cluster under /etc/postgresql" >&2; exit 1; }
    echo "starting PostgreSQL $version on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
  pg_ready || { echo "PostgreSQL is not ready on 127.0.0.1:5432 after 30 s" >&2; exit 1; }
  if need psql && ! pg_trusted; then
    version="${version:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)}"
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    [ -n "$version" ] && [ -f "$hba" ] || {
      echo "cannot log in as postgres on 127.0.0.1:5432 and found no pg_hba.conf to fix; set SLUICE_TEST_POSTGRES_URL" >&2
      exit 1
    }
    echo "allowing the postgres role in over loopback TCP without a password ($hba)"
    sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    for _ in $(seq 1 20); do pg_trusted && break; sleep 0.5; done
    pg_trusted || { echo "still cannot log in as postgres on 127.0.0.1:5432" >&2; exit 1; }
  fi
  export SLUICE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
}
if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then provision_postgres; fi
echo "PostgreSQL tests use $SLUICE_TEST_POSTGRES_URL" | sed -E 's#(//[^:@/]*):[^@/]*@#\1:***@#'

#!/usr/bin/env bash
# Makes sure the local services the integration tests talk to are running on loopback:
# PostgreSQL (127.0.0.1:5432, trust auth, database `test`), Redis (127.0.0.1:6379) and
# NATS with JetStream (127.0.0.1:4222), and promtool for checking /metrics. Installs the Debian packages when they are missing,
# starts what is stopped, and never stops or restarts a service that is already up.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not open 127.0.0.1:$port"
  return 1
}

apt_updated=0
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    log "missing ${missing[*]} and no apt-get to install them"
    return 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ $apt_updated -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_postgres() {
  port_open 5432 && return 0
  ensure_packages postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local conf=/etc/postgresql/$version/main
  # Trust auth on loopback, as the tests connect as `postgres` without a password.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
}

ensure_test_database() {
  command -v psql >/dev/null || return 0
  if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'test'" postgres 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c 'create database test' postgres >/dev/null
  fi
}

start_redis() {
  port_open 6379 && return 0
  ensure_packages redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

start_nats() {
  port_open 4222 && return 0
  ensure_packages nats-server
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
}

ensure_promtool() {
  command -v promtool >/dev/null && return 0
  # promtool ships in Debian's prometheus package; keep the package's server from starting
  # (it would take port 9090) while it installs.
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  ensure_packages prometheus || true
  [ $had_policy -eq 1 ] || rm -f /usr/sbin/policy-rc.d
  command -v promtool >/dev/null || { log "promtool could not be installed"; return 1; }
}

start_postgres
ensure_test_database
start_redis
start_nats
ensure_promtool
log "PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379 and NATS 127.0.0.1:4222 are up"

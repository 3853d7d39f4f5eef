#!/bin/sh
# Every environment variable tonic-blueprint services read, with its default.
# Generated from tonic_blueprint::config::VARIABLES (a test keeps this file in step).
# Source it and change what you need:  . ./export.sh

# the service's name: cache key prefix, NATS subjects, logs
export SERVICE_NAME="service"

# where the gRPC server listens
export GRPC_ADDR="127.0.0.1:50051"

# where /metrics is served; off to turn it off
export METRICS_ADDR="127.0.0.1:9090"

# how long in-flight RPCs may run after SIGTERM or SIGINT
export SHUTDOWN_GRACE_SECONDS="30"

# how long to keep accepting calls after health turns NOT_SERVING, so load balancers stop routing first (Kubernetes: a few seconds)
export SHUTDOWN_DRAIN_DELAY_SECONDS="0"

# concurrent calls one HTTP/2 connection may open
export MAX_CONCURRENT_STREAMS="200"

# calls in flight across all connections before new ones are refused with RESOURCE_EXHAUSTED (health exempt); 0: no limit
export MAX_IN_FLIGHT="10000"

# the largest request metadata (HTTP/2 header list) accepted
export MAX_HEADER_LIST_BYTES="16384"

# HTTP/2 keepalive ping interval
export KEEPALIVE_INTERVAL_SECONDS="30"

# how long a keepalive ping may go unanswered
export KEEPALIVE_TIMEOUT_SECONDS="10"

# the PEM certificate chain the gRPC server presents (feature tls); with TLS_KEY_FILE the server speaks only TLS, ALPN h2; empty: plaintext
export TLS_CERT_FILE=""

# the PEM private key of TLS_CERT_FILE (PKCS#8, PKCS#1 or SEC1)
export TLS_KEY_FILE=""

# PEM CA certificates client certificates must chain to: every client must present a valid one (mutual TLS); empty: no client certificate asked
export TLS_CLIENT_CA_FILE=""

# how often the TLS certificate, key and client CA files are checked for change (new connections get the new ones, open ones keep theirs); SIGHUP reloads at once; 0: on SIGHUP only
export TLS_RELOAD_SECONDS="10"

# postgres://... or sqlite://...; empty: the embedded SQLite default. PostgreSQL TLS (feature tls) in the URL: sslmode=require (encrypted, server not verified), verify-ca (and its certificate chains to sslrootcert=FILE, else the system roots), verify-full (and names the host); sslcert and sslkey for a client certificate; the default prefer falls back to plaintext
export DATABASE_URL=""

# the pool's maximum size
export DATABASE_MAX_CONNECTIONS="100"

# redis://... or rediss://... (TLS, feature tls; the server's certificate verified); empty: in-process cache and rate limits
export REDIS_URL=""

# the longest any one Redis command (cache, invalidation, rate limit) may take; while Redis is unreachable, commands fail at once
export REDIS_COMMAND_TIMEOUT_MS="100"

# PEM CA certificates a rediss:// server's certificate must chain to; empty: the system's roots
export REDIS_CA_FILE=""

# the PEM client certificate chain presented to a rediss:// server that asks for one (with REDIS_CLIENT_KEY_FILE)
export REDIS_CLIENT_CERT_FILE=""

# the PEM private key of REDIS_CLIENT_CERT_FILE
export REDIS_CLIENT_KEY_FILE=""

# nats://... or tls://... (TLS required; a server announcing tls_required gets TLS with nats:// too), several separated by commas; empty: no events
export NATS_URL=""

# PEM CA certificates the NATS server's certificate must chain to; empty: the system's roots
export NATS_CA_FILE=""

# the PEM client certificate chain presented to a NATS server that verifies clients (with NATS_CLIENT_KEY_FILE)
export NATS_CLIENT_CERT_FILE=""

# the PEM private key of NATS_CLIENT_CERT_FILE
export NATS_CLIENT_KEY_FILE=""

# a NATS credentials file (user JWT and NKey seed, .creds) to authenticate with
export NATS_CREDS_FILE=""

# calls per minute per caller and method
export RATE_LIMIT_PER_MINUTE="100"

# metadata naming the caller, set by a trusted gateway that strips it from callers; empty: the verified identity, else the peer IP
export RATE_LIMIT_KEY=""

# the secret rate-limit keys are hashed with; required with REDIS_URL (replicas share it); empty: random per process
export RATE_LIMIT_KEY_SECRET=""

# the HS256 secret bearer tokens are signed with; with AUTH_JWKS_URL both are accepted
export AUTH_JWT_SECRET=""

# the JWKS the token signing keys come from (fetched at start-up, refreshed in the background)
export AUTH_JWKS_URL=""

# the iss tokens must carry; empty: not checked
export AUTH_ISSUER=""

# the aud tokens must carry; empty: not checked
export AUTH_AUDIENCE=""

# with TLS_CLIENT_CA_FILE, what names a caller that sends no token: cn (the verified client certificate's subject common name), san (its first URI, else DNS, else email subject alternative name), or off (tokens only)
export AUTH_MTLS_IDENTITY="cn"

# how long cached responses live
export CACHE_TTL_SECONDS="300"

# the in-process cache's size
export CACHE_MAX_BYTES="67108864"

# the server's deadline for a unary or client-streaming call (a shorter client deadline wins)
export REQUEST_TIMEOUT_SECONDS="30"

# the server's deadline for a server- or bidi-streaming call; 0: none, for long-lived streams (a client deadline still applies; HTTP/2 keepalive finds dead peers)
export STREAM_TIMEOUT_SECONDS="0"

# the largest request message accepted
export MAX_MESSAGE_BYTES="4194304"

# pretty or json
export LOG_FORMAT="pretty"

# rotated log files here; empty: standard output
export LOG_DIR=""

# the log filter when RUST_LOG is not set
export LOG_LEVEL="info"

# OTLP/gRPC endpoint spans are exported to (feature otel), such as http://127.0.0.1:4317; empty: no export
export OTEL_EXPORTER_OTLP_ENDPOINT=""

# service.name of the exported spans; empty: SERVICE_NAME
export OTEL_SERVICE_NAME=""

# which traces are recorded: the caller's decision, else a new trace always (the default)
export OTEL_TRACES_SAMPLER="parentbased_always_on"

# the ratio of the traceidratio samplers, from 0 to 1; empty: 1
export OTEL_TRACES_SAMPLER_ARG=""

# true: export no spans (trace ids are still logged and carried on)
export OTEL_SDK_DISABLED="false"

# An optional TOML file with the same settings by section; variables win.
export CONFIG_FILE=""

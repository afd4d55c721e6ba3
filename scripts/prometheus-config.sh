#!/usr/bin/env bash
# Writes the Prometheus configuration for a PhotonCloud cluster to standard output: one scrape
# job fed by photon-server's HTTP service discovery (photon-server, every node's agent and the
# daemons behind its providers; docs/operations.md "Prometheus"), and photon-server as the
# Alertmanager its alerting rules notify. scripts/start.sh and ops_prometheus_tests both use
# it, so the configuration the start command runs is the one the tests check.
#   scripts/prometheus-config.sh --server HOST:PORT --token-file FILE [--scrape-interval 15s]
#                                [--refresh-interval 30s] [--rules GLOB]
# --token-file: a photon token that is an admin (the discovery) and may create events (the
# alerts); Prometheus reads it at every request, so a rotated token is picked up.
# --rules: alerting/recording rule files (a glob, e.g. DIR/rules/*.yml); none by default.
set -euo pipefail
server="" token="" scrape=15s refresh=30s rules=""
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server="$2" ;;
    --token-file) token="$2" ;;
    --scrape-interval) scrape="$2" ;;
    --refresh-interval) refresh="$2" ;;
    --rules) rules="$2" ;;
    *) echo "prometheus-config.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift 2 || { echo "prometheus-config.sh: '$1' needs a value" >&2; exit 2; }
done
if [ -z "$server" ] || [ -z "$token" ]; then
  echo "prometheus-config.sh: --server HOST:PORT and --token-file FILE are required" >&2
  exit 2
fi
case "$token" in /*) ;; *) echo "prometheus-config.sh: --token-file: an absolute path" >&2; exit 2 ;; esac
# Values are quoted YAML strings: a path with ': ' or '#' stays one value.
q() { printf "'%s'" "${1//\'/\'\'}"; }
cat <<YAML
global:
  scrape_interval: $scrape
  evaluation_interval: $scrape
YAML
if [ -n "$rules" ]; then
  echo "rule_files: [$(q "$rules")]"
fi
cat <<YAML
alerting:
  alertmanagers:
  - api_version: v2
    authorization: {type: Bearer, credentials_file: $(q "$token")}
    static_configs: [{targets: [$(q "$server")]}]
scrape_configs:
- job_name: photon
  http_sd_configs:
  - url: $(q "http://$server/v1/ops/prometheus/targets")
    refresh_interval: $refresh
    authorization: {type: Bearer, credentials_file: $(q "$token")}
YAML

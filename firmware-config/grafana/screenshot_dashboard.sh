#!/usr/bin/env bash
# The fleet dashboard's panels as a picture (docs/screenshots/dashboard.png), from real data: `alnrisk demo --quick
# --stay` (a real daemon with its embedded broker) is scraped by a real Prometheus (Debian's `prometheus`) every
# 2 s with the site/device target labels of scrape-example.yml; more examinations and one bad file are dropped into
# its export folder for a few minutes; then render_panels.py draws every panel from Prometheus' answers to the
# dashboard's own PromQL, and headless Chromium takes the screenshot. Not part of the test suite (it takes
# about 5 minutes); run it after changing the dashboard:
#
#   cargo build --release && bash firmware-config/grafana/screenshot_dashboard.sh [MINUTES]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release/alnrisk
minutes=${1:-4}
work=$(mktemp -d /tmp/alnrisk-dashboard.XXXXXX)
metrics=127.0.0.1:19208
prom=127.0.0.1:19290
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin" demo --quick --stay --dir "$work/demo" --mqtt-port 19283 --metrics "$metrics" \
  --console 127.0.0.1:19243 --board 127.0.0.1:19244 > "$work/demo.out" 2>&1 &
pids+=($!)
cat > "$work/prometheus.yml" <<YML
global: { scrape_interval: 2s, evaluation_interval: 2s }
rule_files: ["$root/firmware-config/prometheus/alnrisk-rules.yml"]
scrape_configs:
  - job_name: alnrisk
    static_configs:
      - targets: ["$metrics"]
        labels: { site: demo-site, device: demo-box }
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="$prom" > "$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q "staying up until Ctrl-C" "$work/demo.out" && break; sleep 1; done
grep -q "staying up until Ctrl-C" "$work/demo.out" || { cat "$work/demo.out"; exit 1; }
# more of the day: the synthetic test cohort's other examinations, one every ~20 s, and a file that is no DICOM
export_dir=$work/demo/export
end=$(( $(date +%s) + 60 * minutes ))
n=0
for exam in "$work"/demo/cohort/SYN*; do
  [ "$(date +%s)" -lt "$end" ] || break
  id=$(basename "$exam")
  [ -e "$export_dir/$id" ] && continue
  "$bin" synth replay --from "$exam" --to "$export_dir/$id" --pace 5ms > /dev/null
  n=$((n + 1))
  if [ "$n" -eq 2 ]; then head -c 4096 /dev/urandom > "$export_dir/not-dicom.dcm"; fi
  sleep 20
done
while [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
python3 "$root/firmware-config/grafana/render_panels.py" "$root/firmware-config/grafana/dashboards/alnrisk-fleet.json" \
  "http://$prom" "$work/dashboard.html" --minutes $((minutes + 1))
mkdir -p "$root/docs/screenshots"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1470,1560 \
  --screenshot="$root/docs/screenshots/dashboard.png" "file://$work/dashboard.html" 2> /dev/null
echo "$n more examinations replayed; panels rendered from $work/dashboard.html into docs/screenshots/dashboard.png"

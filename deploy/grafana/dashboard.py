"""Writes deploy/grafana/gslbd-dashboard.json (Grafana 10+): `python3 deploy/grafana/dashboard.py
> deploy/grafana/gslbd-dashboard.json`. Edit panels here, not in the JSON; .ci/run checks the two
agree, and tests/promtool.rs checks every expression parses and names only exported metrics."""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
def sel(extra=""):
    return '{instance=~"$instance"%s}' % (("," + extra) if extra else "")
panels = []
y = 0
pid = 0
def nid():
    global pid
    pid += 1
    return pid
def row(title):
    global y
    panels.append({"type": "row", "id": nid(), "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
def target(expr, legend="", instant=False, fmt="time_series", ref="A"):
    t = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True; t["range"] = False
    if fmt != "time_series":
        t["format"] = fmt
    return t
def panel(kind, title, desc, targets, x, w, h, unit=None, extra=None):
    p = {"type": kind, "id": nid(), "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "targets": [target(*t) if isinstance(t, tuple) else t for t in targets],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    refs = "ABCDEFGH"
    for i, t in enumerate(p["targets"]):
        t["refId"] = refs[i]
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "desc"}}
    if extra:
        for k, v in extra.items():
            if k == "defaults":
                p["fieldConfig"]["defaults"].update(v)
            else:
                p[k] = v
    panels.append(p)
    return p
health_mappings = [{"type": "value", "options": {
    "1": {"text": "healthy", "color": "green", "index": 0},
    "0.5": {"text": "unknown", "color": "yellow", "index": 1},
    "0": {"text": "unhealthy", "color": "red", "index": 2}}}]

row("Health")
panel("table", "Health matrix: service × region",
      "Health of every service in every region as the selected servers answer it (worst across servers): healthy, unknown (answered, not confirmed) or unhealthy. /state on any server says why.",
      [(f'min by (service, region) (gslbd_service_region_health{sel(chr(115)+"ervice=~"+chr(34)+"$service"+chr(34))})', "", True, "table")],
      0, 14, 10, extra={
          "defaults": {"mappings": health_mappings, "custom": {"cellOptions": {"type": "color-background"}, "align": "center"},
                       "color": {"mode": "thresholds"},
                       "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "yellow", "value": 0.5}, {"color": "green", "value": 1}]}},
          "transformations": [{"id": "groupingToMatrix", "options": {"columnField": "region", "rowField": "service", "valueField": "Value"}}],
      })
panel("stat", "Services with no healthy region",
      "Services every region of which is unhealthy on some server: answered fail-open or empty.",
      [(f'max(gslbd_services_unavailable{sel()}) or vector(0)', "")],
      14, 5, 5, extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}}})
panel("stat", "Regions down (every service)",
      "Regions unhealthy for every service they serve.",
      [(f'count(max by (region) (gslbd_region_services{sel(chr(104)+"ealth!="+chr(34)+"unhealthy"+chr(34))}) == 0) or vector(0)', "")],
      19, 5, 5, extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}}})
panel("stat", "Healthy targets",
      "Addresses not found down, out of all addresses, over the selected services.",
      [(f'sum(min by (service, region) (gslbd_service_region_healthy_targets{sel(chr(115)+"ervice=~"+chr(34)+"$service"+chr(34))}))', "healthy"),
       (f'sum(max by (service, region) (gslbd_service_region_targets{sel(chr(115)+"ervice=~"+chr(34)+"$service"+chr(34))}))', "all")],
      14, 10, 5)
y += 10
panel("state-timeline", "Region health over time",
      "Each (service, region) over time, worst across the selected servers.",
      [(f'min by (service, region) (gslbd_service_region_health{sel(chr(115)+"ervice=~"+chr(34)+"$service"+chr(34))})', "{{service}} {{region}}")],
      0, 24, 8, extra={"defaults": {"mappings": health_mappings, "color": {"mode": "thresholds"},
                       "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "yellow", "value": 0.5}, {"color": "green", "value": 1}]}}})
y += 8
row("Traffic")
panel("timeseries", "Queries per second by rcode", "DNS queries answered, by response code.",
      [(f'sum by (rcode) (rate(gslbd_dns_queries_total{sel()}[$__rate_interval]))', "{{rcode}}")], 0, 8, 8, unit="reqps")
panel("timeseries", "Queries per second by type and transport", "",
      [(f'sum by (qtype, transport) (rate(gslbd_dns_queries_total{sel()}[$__rate_interval]))', "{{qtype}} {{transport}}")], 8, 8, 8, unit="reqps")
panel("timeseries", "Answer latency", "Time to answer one query inside gslbd (parse, answer, encode), p50/p99/p99.9.",
      [(f'histogram_quantile(0.5, sum by (le) (rate(gslbd_dns_answer_duration_seconds_bucket{sel()}[$__rate_interval])))', "p50"),
       (f'histogram_quantile(0.99, sum by (le) (rate(gslbd_dns_answer_duration_seconds_bucket{sel()}[$__rate_interval])))', "p99"),
       (f'histogram_quantile(0.999, sum by (le) (rate(gslbd_dns_answer_duration_seconds_bucket{sel()}[$__rate_interval])))', "p99.9")],
      16, 8, 8, unit="s")
y += 8
panel("timeseries", "Answers by strategy and result",
      "A/AAAA answers about services: from healthy regions, fail-open (no region available, every address), or none.",
      [(f'sum by (strategy, result) (rate(gslbd_dns_answers_total{sel()}[$__rate_interval]))', "{{strategy}} {{result}}")], 0, 8, 8, unit="reqps")
panel("timeseries", "Dropped packets", "Datagrams not answered (responses, runts), by reason.",
      [(f'sum by (reason) (rate(gslbd_dns_dropped_total{sel()}[$__rate_interval]))', "{{reason}}")], 8, 8, 8, unit="pps")
panel("timeseries", "Rate-limited answers",
      "UDP answers over the response rate limit (server.rrl), by class of answer: slipped (sent truncated, the client retries over TCP) or dropped. Sustained values: a flood or a reflection attempt.",
      [(f'sum by (class, action) (rate(gslbd_dns_rate_limited_total{sel()}[$__rate_interval]))', "{{class}} {{action}}")], 16, 8, 8, unit="pps")
y += 8
panel("timeseries", "TCP connections",
      "DNS TCP connections open on each server, against the cap in force (server.tcp.max_connections, lowered to keep 256 file descriptors for probes, gossip and admin). Open near the cap: new connections are being reset.",
      [(f'gslbd_dns_tcp_connections{sel()}', "open {{instance}}"),
       (f'gslbd_dns_tcp_connections_max{sel()}', "cap {{instance}}")], 0, 8, 8)
panel("timeseries", "TCP connections refused and cut",
      "Connections reset at once (total cap, per-network cap), and those closed by a timeout or the query limit. Sustained refusals or read timeouts: a connection flood or a slow-client attack.",
      [(f'sum by (reason) (rate(gslbd_dns_tcp_refused_total{sel()}[$__rate_interval]))', "refused {{reason}}"),
       (f'sum by (reason) (rate(gslbd_dns_tcp_closed_total{sel(chr(114)+"eason=~"+chr(34)+"read_timeout|write_timeout|query_limit"+chr(34))}[$__rate_interval]))', "closed {{reason}}")],
      8, 8, 8, unit="cps")
panel("timeseries", "TCP accept failures",
      "Failed accepts of DNS TCP connections, by reason (fd_limit: the process is out of file descriptors). Each pauses the accept loop 100 ms.",
      [(f'sum by (reason) (rate(gslbd_dns_tcp_accept_errors_total{sel()}[$__rate_interval]))', "{{reason}}")], 16, 8, 8, unit="cps")
y += 8
row("Failover")
panel("timeseries", "Failover events by region",
      "A region leaving a server's answers for a service after its probes failed; one event per (service, server).",
      [(f'sum by (region) (increase(gslbd_failover_seconds_count{sel()}[$__rate_interval]))', "{{region}}")],
      0, 8, 8, extra={"defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 60}}})
panel("timeseries", "Failover latency by region (p50, p95 over 30 m)",
      "From the region's first failing probe to the first snapshot a server publishes without it.",
      [(f'histogram_quantile(0.5, sum by (le, region) (increase(gslbd_failover_seconds_bucket{sel()}[30m])))', "p50 {{region}}"),
       (f'histogram_quantile(0.95, sum by (le, region) (increase(gslbd_failover_seconds_bucket{sel()}[30m])))', "p95 {{region}}")],
      8, 8, 8, unit="s")
panel("stat", "Mean failover latency (time range)", "",
      [(f'sum by (region) (increase(gslbd_failover_seconds_sum{sel()}[$__range])) / sum by (region) (increase(gslbd_failover_seconds_count{sel()}[$__range]))', "{{region}}")],
      16, 8, 8, unit="s")
y += 8
row("Gossip")
panel("timeseries", "Gossip members alive", "Members each server sees alive, itself included.",
      [(f'gslbd_gossip_members{sel()}', "{{instance}}")], 0, 6, 8)
panel("timeseries", "Last heard from each region", "Seconds since a region's heartbeat last advanced; regions leave answers after the peer timeout (15 s by default).",
      [(f'max by (instance, region) (gslbd_gossip_region_last_seen_seconds{sel()})', "{{instance}} → {{region}}")], 6, 6, 8, unit="s")
panel("timeseries", "Rejected gossip by reason", "Packets dropped before gossip (keys) and values refused after: signatures, regions, replays and superseded runs, instance caps, names the zone owns.",
      [(f'sum by (reason) (rate(gslbd_gossip_packets_rejected_total{sel()}[$__rate_interval]))', "packet {{reason}}"),
       (f'sum by (reason) (rate(gslbd_gossip_reports_rejected_total{sel()}[$__rate_interval]))', "report {{reason}}")], 12, 6, 8, unit="pps")
panel("timeseries", "Gossip bandwidth", "",
      [(f'sum by (instance) (rate(gslbd_gossip_sent_bytes_total{sel()}[$__rate_interval]))', "sent {{instance}}"),
       (f'sum by (instance) (rate(gslbd_gossip_received_bytes_total{sel()}[$__rate_interval]))', "received {{instance}}")], 18, 6, 8, unit="Bps")
y += 8
row("Observers")
panel("timeseries", "Services the observers decide, by region", "Other regions' probes of each region's targets: overruled = they see targets down the region reports healthy (out of every answer); decided = the region is silent (suspect, stale) and they decide. README, When a region fails.",
      [(f'max by (region, decision) (gslbd_region_observed_services{sel()})', "{{region}} {{decision}}")], 0, 24, 8)
y += 8
row("Probes")
panel("timeseries", "Probe failures by result", "Failed probes per second by outcome (timeout, connect, status, body, tls, ...).",
      [(f'sum by (result) (rate(gslbd_probe_results_total{sel(chr(114)+"esult!="+chr(34)+"success"+chr(34))}[$__rate_interval]))', "{{result}}")], 0, 12, 8, unit="ops")
panel("timeseries", "Probe duration", "",
      [(f'histogram_quantile(0.5, sum by (le) (rate(gslbd_probe_duration_seconds_bucket{sel()}[$__rate_interval])))', "p50"),
       (f'histogram_quantile(0.95, sum by (le) (rate(gslbd_probe_duration_seconds_bucket{sel()}[$__rate_interval])))', "p95")], 12, 12, 8, unit="s")
y += 8
row("Internals")
panel("timeseries", "Snapshot rebuilds", "Snapshots built and published per second, and their build time.",
      [(f'sum by (instance) (rate(gslbd_snapshot_builds_total{sel()}[$__rate_interval]))', "{{instance}}")], 0, 8, 8, unit="ops")
panel("timeseries", "Snapshot build time (p99)", "",
      [(f'histogram_quantile(0.99, sum by (le, instance) (rate(gslbd_snapshot_build_seconds_bucket{sel()}[$__rate_interval])))', "{{instance}}")], 8, 8, 8, unit="s")
panel("timeseries", "Config reloads", "",
      [(f'sum by (result) (increase(gslbd_config_reloads_total{sel()}[$__rate_interval]))', "{{result}}")], 16, 8, 8,
      extra={"defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 60}}})
y += 8
row("DNSSEC")
panel("timeseries", "Signatures made", "RRSIGs made by online signing: an RRset answered for the first time today (a new answer combination, a new name that does not exist, every RRset once a day). Everything else is served from the cache. A steady high rate under a random-subdomain flood is what rate limiting bounds. Empty for an unsigned zone.",
      [(f'sum by (instance) (rate(gslbd_dnssec_signatures_total{sel()}[$__rate_interval]))', "{{instance}}")], 0, 8, 8, unit="ops")
panel("timeseries", "Signed RRsets cached", "Signatures kept for reuse (at most 200 000 per server).",
      [(f'max by (instance) (gslbd_dnssec_signature_cache_entries{sel()})', "{{instance}}")], 8, 8, 8)
panel("table", "Keys", "The DNSKEY set every server publishes: 1 for a key that signs, 0 for one only published (a rollover). Every server should list the same keys.",
      [(f'max by (instance, key_tag, algorithm, sep) (gslbd_dnssec_key{sel()})', "", True, "table")], 16, 8, 8)
y += 8
row("Kubernetes")
panel("timeseries", "Watch events by kind", "Objects applied and deleted as the watches see them; init_* when a watch lists again.",
      [(f'sum by (kind, event) (rate(gslbd_kubernetes_watch_events_total{sel()}[$__rate_interval]))', "{{kind}} {{event}}")], 0, 8, 8, unit="ops")
panel("timeseries", "Watch errors by kind", "API server unreachable, expired watches (410 Gone), undecodable objects. The last known services keep serving.",
      [(f'sum by (kind) (rate(gslbd_kubernetes_watch_errors_total{sel()}[$__rate_interval]))', "{{kind}}")], 8, 8, 8, unit="ops")
panel("timeseries", "Discovered services, skipped objects, refused hosts", "Services from annotated objects; objects skipped by reason (BadAnnotation, HostConflict, HostRefused, NoHostInZone, NoHostname); hosts refused because the zone owns the name (apex, nameserver, wildcard).",
      [(f'max(gslbd_kubernetes_services{sel()})', "services"),
       (f'sum by (kind, reason) (gslbd_kubernetes_objects_skipped{sel()})', "skipped {{kind}} {{reason}}"),
       (f'sum by (kind, reason) (gslbd_kubernetes_hosts_refused{sel()})', "refused host {{kind}} {{reason}}")], 16, 8, 8)
y += 8

dash = {
    "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                   {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
    "title": "gslbd", "uid": "gslbd-overview", "description": "gslbd: region health, DNS traffic, failovers, gossip and probes.",
    "tags": ["gslbd", "dns", "gslb"], "timezone": "browser", "editable": True, "graphTooltip": 1,
    "schemaVersion": 38, "version": 1, "refresh": "30s",
    "time": {"from": "now-1h", "to": "now"},
    "annotations": {"list": []},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
        {"name": "instance", "label": "Server", "type": "query", "datasource": DS,
         "query": {"query": "label_values(gslbd_dns_queries_total, instance)", "refId": "instance"},
         "definition": "label_values(gslbd_dns_queries_total, instance)",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1, "hide": 0},
        {"name": "service", "label": "Service", "type": "query", "datasource": DS,
         "query": {"query": "label_values(gslbd_service_region_health, service)", "refId": "service"},
         "definition": "label_values(gslbd_service_region_health, service)",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1, "hide": 0},
    ]},
    "panels": panels,
}
print(json.dumps(dash, indent=2, ensure_ascii=False))

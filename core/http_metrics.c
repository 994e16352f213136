/*
 * http_metrics.c — GET /metrics: the host's counters and gauges in the
 * Prometheus text format (docs/api.md, "Operations").
 */
#include <stdio.h>
#include <stdlib.h>

#include "http_int.h"
#include "pipeline.h"
#include "script.h"

/* Commit latency buckets, in milliseconds. */
static const double commit_bounds_ms[] = CORE_COMMIT_BUCKETS_MS;
#define N_BOUNDS CORE_COMMIT_BUCKETS

/* ---- /metrics ------------------------------------------------------------ */

static void metric_head(FILE *f, const char *name, const char *type,
                        const char *help)
{
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum MHD_Result http_h_metrics(req *r)
{
  core_http *s = r->srv;
  core_host *h = s->h;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return http_fail(r, 500, "internal", NULL, "out of memory");
  metric_head(f, "twinhost_http_requests_total", "counter",
              "HTTP requests answered, by route and status.");
  for (size_t i = 0; i <= HTTP_N_ROUTES; i++)
    for (size_t j = 0; j < HTTP_N_STATUS; j++) {
      uint64_t c =
          __atomic_load_n(&s->counts[i * HTTP_N_STATUS + j], __ATOMIC_RELAXED);
      if (c)
        fprintf(f,
                "twinhost_http_requests_total{method=\"%s\",route=\"%s\","
                "code=\"%d\"} %llu\n",
                i < HTTP_N_ROUTES ? http_routes[i].method : "any",
                i < HTTP_N_ROUTES ? http_routes[i].path : "unknown",
                http_counted_status[j], (unsigned long long)c);
    }
  metric_head(f, "twinhost_http_request_seconds_total", "counter",
              "Time spent answering requests, by route.");
  for (size_t i = 0; i <= HTTP_N_ROUTES; i++) {
    double sec;
    __atomic_load(&s->seconds[i], &sec, __ATOMIC_RELAXED);
    if (sec > 0)
      fprintf(f,
              "twinhost_http_request_seconds_total{method=\"%s\",route="
              "\"%s\"} %.6f\n",
              i < HTTP_N_ROUTES ? http_routes[i].method : "any",
              i < HTTP_N_ROUTES ? http_routes[i].path : "unknown", sec);
  }
  metric_head(f, "twinhost_http_connections", "gauge",
              "Open HTTP connections.");
  fprintf(f, "twinhost_http_connections %ld\n",
          __atomic_load_n(&s->connections, __ATOMIC_RELAXED));
  metric_head(f, "twinhost_event_streams", "gauge",
              "Open Server-Sent Events streams.");
  pthread_mutex_lock(&s->sse_mu);
  fprintf(f, "twinhost_event_streams %ld\n", s->n_streams);
  pthread_mutex_unlock(&s->sse_mu);

  core_pipeline_stats st;
  core_pipeline_stats_get(s->p, &st);
  metric_head(f, "twinhost_ingest_documents_total", "counter",
              "Documents ingested, by town, plugin and result.");
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    uint64_t d = __atomic_load_n(&ci->docs, __ATOMIC_RELAXED),
             bad = __atomic_load_n(&ci->docs_rejected, __ATOMIC_RELAXED);
    fprintf(f,
            "twinhost_ingest_documents_total{town=\"%s\",plugin=\"%s\","
            "result=\"accepted\"} %llu\n"
            "twinhost_ingest_documents_total{town=\"%s\",plugin=\"%s\","
            "result=\"rejected\"} %llu\n",
            ci->town->id, ci->plugin->desc.name, (unsigned long long)(d - bad),
            ci->town->id, ci->plugin->desc.name, (unsigned long long)bad);
  }
  metric_head(f, "twinhost_ingest_items_refused_total", "counter",
              "Items of ingested documents their plugin refused "
              "(refuse_item), by town, plugin and reason code.");
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    for (size_t k = 0; k < ci->n_refused_codes; k++)
      fprintf(f,
              "twinhost_ingest_items_refused_total{town=\"%s\",plugin=\"%s\","
              "code=\"%s\"} %llu\n",
              ci->town->id, ci->plugin->desc.name, ci->refused_codes[k].code,
              (unsigned long long)ci->refused_codes[k].n);
  }
  metric_head(f, "twinhost_plugin_fetches_total", "counter",
              "Plugin fetches (feed pulls) run, by town, plugin and result.");
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    if (!ci->fetch_s)
      continue;
    fprintf(f,
            "twinhost_plugin_fetches_total{town=\"%s\",plugin=\"%s\","
            "result=\"ok\"} %llu\n"
            "twinhost_plugin_fetches_total{town=\"%s\",plugin=\"%s\","
            "result=\"failed\"} %llu\n",
            ci->town->id, ci->plugin->desc.name,
            (unsigned long long)(ci->fetches - ci->fetch_errors), ci->town->id,
            ci->plugin->desc.name, (unsigned long long)ci->fetch_errors);
  }
  pthread_mutex_unlock(&h->lock);
  metric_head(f, "twinhost_commits_total", "counter",
              "Write transactions committed by the writer.");
  fprintf(f, "twinhost_commits_total %llu\n", (unsigned long long)st.batches);
  metric_head(f, "twinhost_commit_seconds", "histogram",
              "Time from the start of a batch to its durable commit.");
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BOUNDS; i++) {
    cum += st.commit_buckets[i];
    fprintf(f, "twinhost_commit_seconds_bucket{le=\"%g\"} %llu\n",
            commit_bounds_ms[i] / 1000, (unsigned long long)cum);
  }
  fprintf(f, "twinhost_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
          (unsigned long long)st.batches);
  fprintf(f, "twinhost_commit_seconds_sum %.6f\n",
          (double)st.commit_ns_total / 1e9);
  fprintf(f, "twinhost_commit_seconds_count %llu\n",
          (unsigned long long)st.batches);
  metric_head(f, "twinhost_plugin_tick_errors_total", "counter",
              "Failed plugin ticks, by town and plugin.");
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n_inst; i++)
    fprintf(f,
            "twinhost_plugin_tick_errors_total{town=\"%s\",plugin=\"%s\"} "
            "%llu\n",
            h->inst[i].town->id, h->inst[i].plugin->desc.name,
            (unsigned long long)h->inst[i].tick_errors);
  metric_head(f, "twinhost_plugin_up", "gauge",
              "1 when the plugin instance runs, 0 when disabled or backing "
              "off.");
  for (size_t i = 0; i < h->n_inst; i++)
    fprintf(f, "twinhost_plugin_up{town=\"%s\",plugin=\"%s\"} %d\n",
            h->inst[i].town->id, h->inst[i].plugin->desc.name,
            h->inst[i].state == CORE_INSTANCE_RUNNING);
  pthread_mutex_unlock(&h->lock);
  metric_head(f, "twinhost_rule_runs_total", "counter",
              "Town rule hook calls, by town.");
  json_t *rule_stats = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    struct core_script *sc = core_host_script(h, &h->cfg->towns[i]);
    char *text = sc ? core_script_status(sc) : NULL;
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_int_t calls = 0, errors = 0;
    size_t k;
    json_t *hook;
    json_array_foreach(json_object_get(o, "hooks"), k, hook)
    {
      calls += json_integer_value(json_object_get(hook, "calls"));
      errors += json_integer_value(json_object_get(hook, "errors"));
    }
    json_decref(o);
    json_array_append_new(rule_stats, json_pack("[I,I]", calls, errors));
    fprintf(f, "twinhost_rule_runs_total{town=\"%s\"} %lld\n",
            h->cfg->towns[i].id, (long long)calls);
  }
  metric_head(f, "twinhost_rule_errors_total", "counter",
              "Town rule hook calls that failed, by town.");
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    fprintf(f, "twinhost_rule_errors_total{town=\"%s\"} %lld\n",
            h->cfg->towns[i].id,
            (long long)json_integer_value(
                json_array_get(json_array_get(rule_stats, i), 1)));
  json_decref(rule_stats);
  uint64_t used = 0, mapsize = 0;
  core_store_usage(h->store, &used, &mapsize);
  metric_head(f, "twinhost_store_used_bytes", "gauge",
              "Bytes of the state store in use.");
  fprintf(f, "twinhost_store_used_bytes %llu\n", (unsigned long long)used);
  metric_head(f, "twinhost_store_map_bytes", "gauge",
              "Address space reserved for the state store.");
  fprintf(f, "twinhost_store_map_bytes %llu\n", (unsigned long long)mapsize);
  metric_head(f, "twinhost_uptime_seconds", "gauge",
              "Seconds since the API started.");
  fprintf(f, "twinhost_uptime_seconds %lld\n",
          (long long)((core_now_ms() - s->started) / 1000));
  if (fclose(f))
    return http_fail(r, 500, "internal", NULL, "out of memory");
  return http_send_text(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                        text, len);
}

/*
 * http.h — the HTTP API of a running host (libmicrohttpd, its own thread
 * pool): JSON under /v1, per-town tokens and anonymous read, batch ingest
 * acknowledged after the commit, Server-Sent Events, /healthz and /metrics.
 * docs/api.md and docs/openapi.json describe the routes; GET /v1 lists
 * them as the server has them. The files that make it: http_int.h.
 */
#ifndef CORE_HTTP_H
#define CORE_HTTP_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "host.h"
#include "pipeline.h"

typedef struct core_http core_http;

/*
 * Start serving h (documents go through p) as cfg says: listen address and
 * port (0: any free port), threads, body, header and connection limits.
 */
int core_http_start(core_host *h, core_pipeline *p,
                    const core_http_config *cfg, core_http **out,
                    core_err *err);
/* The port actually bound (useful when cfg->port was 0). */
uint16_t core_http_port(const core_http *s);
/*
 * Stop gracefully: stop accepting connections, end event streams, let the
 * requests in flight finish (an ingest waits for its commit), then close
 * everything and free. The pipeline must still run while this waits.
 */
void core_http_stop(core_http *s);

/* The routes: [{"method","path","scope"}] (new reference). */
json_t *core_http_routes(void);

#endif

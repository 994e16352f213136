/*
 * openapi.h — the OpenAPI 3 document GET /v1/openapi.json serves: the
 * host's own routes as docs/openapi.json describes them (embedded at build
 * time; integration/test_api_docs keeps it equal to the route table), plus
 * a path for every op of every loaded plugin, generated from its declared
 * ops: summary, request schema, GET parameters of safe ops, reply types.
 */
#ifndef CORE_OPENAPI_H
#define CORE_OPENAPI_H

#include <jansson.h>

#include "host.h"

/* A new reference, or NULL when out of memory. */
json_t *core_openapi(core_host *h);
/* The host's part alone (docs/openapi.json as built in). */
json_t *core_openapi_base(void);

#endif

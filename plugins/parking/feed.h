/*
 * feed.h — pulling a parking feed (ParkAPI JSON or any other document) over
 * HTTP(S) for the parking plugin: one reused libcurl handle per feed, a
 * total timeout, TLS verified, at most 3 redirects, http and https only, a
 * body cap of 8 MiB, and conditional requests (If-None-Match /
 * If-Modified-Since from the last 200's ETag / Last-Modified).
 *
 * No retries and no backoff inside: one call is one request; the host backs
 * off failing ticks. A feed is not thread-safe: use one feed from one thread
 * at a time (the plugin's tick). The body is returned as received: parsing
 * and plausibility checks are the plugin's job.
 */
#ifndef TWIN_PARKING_FEED_H
#define TWIN_PARKING_FEED_H

#include <stddef.h>

/* The largest body a pull accepts, in bytes (8 MiB). */
#define PARK_FEED_MAX_BODY ((size_t)8 << 20)

typedef struct park_feed park_feed;

/*
 * A feed for url (copied) with a total timeout per pull of timeout_ms
 * (1 .. 600000). NULL on bad arguments: url NULL, empty, longer than 4096
 * bytes, containing control characters or spaces, or not starting with
 * http:// or https:// (case-insensitive; file://, ftp:// and every other
 * scheme are refused); timeout out of range; or libcurl failing to start.
 */
park_feed *park_feed_new(const char *url, long timeout_ms);
/* Frees the feed; NULL is fine. */
void park_feed_free(park_feed *f);

/*
 * One GET of the feed's URL.
 *   1: a new body: *body (malloc'ed, caller frees) holds *len bytes and a
 *      terminating NUL after them (the body itself may contain NUL bytes);
 *      its ETag / Last-Modified are remembered for the next pull.
 *   0: not modified (HTTP 304); *body is NULL, *len 0.
 *  -1: error; *body is NULL, *len 0 and why (whylen bytes, may be NULL or
 *      0) says why, e.g. "GET https://example.org/lots: HTTP 404",
 *      "GET ...: timed out after 10000 ms", "GET ...: body larger than
 *      8 MiB". The URL in messages is shown without user info, query or
 *      fragment (they may hold keys).
 * Bad arguments (f, body or len NULL) give -1.
 */
int park_feed_pull(park_feed *f, char **body, size_t *len, char *why,
                   size_t whylen);

/* The last body pulled was used: from now on send its ETag and
 * Last-Modified, so an unchanged feed answers 304. Until then (a body that
 * was rejected or not stored) the next pull fetches it whole again. */
void park_feed_accept(park_feed *f);

#endif

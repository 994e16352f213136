/*
 * status.c — statuses by name and message, and the printf-style wrappers
 * around the host's error, log and refusal calls. The names and messages
 * come from TWIN_STATUS_LIST itself, so a status added to twin.h is named
 * here without an edit. The wrappers test each host call with TWIN_HAS_API,
 * because a plugin linking this library may be loaded by an older 1.x host
 * whose table ends before the call.
 */
#include <stdarg.h>
#include <stdio.h>

#include "twin/twinaux.h"

/* The host copies messages; 1023 bytes are more than a person reads. */
#define MSG_MAX 1024

const char *twinaux_status_name(int status)
{
  switch (status) {
#define NAME_CASE_(name, value, msg)                                           \
  case value:                                                                  \
    return #name;
    TWIN_STATUS_LIST(NAME_CASE_)
#undef NAME_CASE_
  }
  return "unknown status";
}

const char *twinaux_status_message(int status)
{
  switch (status) {
#define MESSAGE_CASE_(name, value, msg)                                        \
  case value:                                                                  \
    return msg;
    TWIN_STATUS_LIST(MESSAGE_CASE_)
#undef MESSAGE_CASE_
  }
  return "unknown status";
}

/*
 * s holds n bytes that snprintf cut at an arbitrary byte: drop a trailing
 * incomplete UTF-8 sequence, so the host (which checks messages are UTF-8)
 * gets valid text. Looks back at most three continuation bytes, the most a
 * sequence has.
 */
static void cut_at_utf8_boundary(char *s, size_t n)
{
  size_t k = n;
  while (k > 0 && n - k < 3 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
    k--;
  if (k > 0) {
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (k - 1 + need > n)
      n = k - 1;
  }
  s[n] = '\0';
}

/* printf into msg (MSG_MAX bytes), cut at a UTF-8 boundary when too long. */
static void format_message(char *msg, const char *fmt, va_list ap)
{
  if (!fmt) {
    msg[0] = '\0';
    return;
  }
  int n = vsnprintf(msg, MSG_MAX, fmt, ap);
  if (n < 0)
    msg[0] = '\0'; /* an encoding error: say nothing rather than garbage */
  else if ((size_t)n >= MSG_MAX)
    cut_at_utf8_boundary(msg, MSG_MAX - 1);
}

int twinaux_error(const twin_host_api *api, twin_ctx *ctx, int status,
                  const char *fmt, ...)
{
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  format_message(msg, fmt, ap);
  va_end(ap);
  if (api && TWIN_HAS_API(api, set_error))
    api->set_error(ctx, msg);
  return status;
}

int twinaux_fail(const twin_host_api *api, twin_ctx *ctx, int status,
                 const char *code, const char *field, const char *fmt, ...)
{
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  format_message(msg, fmt, ap);
  va_end(ap);
  if (!api)
    return status;
  if (TWIN_HAS_API(api, fail)) {
    /* fail returns TWIN_ERR_INVALID for a malformed code but still sets
     * the message; the caller's status is what matters. */
    api->fail(ctx, code, field, msg);
  } else if (TWIN_HAS_API(api, set_error)) {
    /* A host before 1.2 has only the message: keep code and field in it
     * so that a person still sees them. */
    char full[MSG_MAX];
    int n =
        snprintf(full, sizeof full, "%s%s%s%s%s", code ? code : "",
                 code ? ": " : "", field ? field : "", field ? ": " : "", msg);
    if (n < 0)
      full[0] = '\0';
    else if ((size_t)n >= sizeof full)
      cut_at_utf8_boundary(full, sizeof full - 1);
    api->set_error(ctx, full);
  }
  return status;
}

void twinaux_log(const twin_host_api *api, twin_ctx *ctx, twin_level level,
                 const char *fmt, ...)
{
  if (!api || !TWIN_HAS_API(api, log))
    return;
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  format_message(msg, fmt, ap);
  va_end(ap);
  api->log(ctx, level, msg);
}

int twinaux_refuse(const twin_host_api *api, twin_ctx *ctx, const char *item,
                   const char *field, const char *code, const char *fmt, ...)
{
  /* Before 1.2 a document lands whole or not at all: the caller must fail
   * it, so tell it rather than drop the refusal silently. */
  if (!api || !TWIN_HAS_API(api, refuse_item))
    return TWIN_ERR_UNSUPPORTED;
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  format_message(msg, fmt, ap);
  va_end(ap);
  return api->refuse_item(ctx, item, field, code, msg);
}

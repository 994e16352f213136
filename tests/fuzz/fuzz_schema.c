/*
 * fuzz_schema.c — libFuzzer target: the input is a schema and a config
 * separated by the first NUL byte or newline; checking, applying and
 * describing must never crash or leak, whatever either holds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t cut = 0;
  while (cut < size && data[cut] != 0 && data[cut] != '\n')
    cut++;
  char *schema = malloc(cut + 1);
  if (!schema)
    return 0;
  memcpy(schema, data, cut);
  schema[cut] = 0;
  const char *config = (const char *)data + (cut < size ? cut + 1 : size);
  size_t config_len = cut < size ? size - cut - 1 : 0;

  core_err err;
  int checked = core_schema_check(schema, &err) == TWIN_OK;
  char *out = NULL;
  int rc = core_schema_apply(schema, config, config_len, &out, &err);
  if (rc == TWIN_OK && !checked)
    abort(); /* apply must never use a schema that check refuses */
  if (rc == TWIN_OK) {
    /* What apply produced passes the same schema unchanged. */
    char *again = NULL;
    if (core_schema_apply(schema, out, strlen(out), &again, &err) != TWIN_OK ||
        strcmp(out, again) != 0)
      abort();
    free(again);
  }
  free(out);
  char *text = core_schema_describe(schema);
  if (checked != (text != NULL))
    abort(); /* describe prints exactly the schemas check accepts */
  free(text);
  free(schema);
  return 0;
}

// minimal_cpp.cpp — a plugin written in C++ against twin.h alone: its entry
// point must keep its C name (TWIN_PLUGIN_DEFINE takes care of that). It is
// compiled by tests/integration/test_out_of_tree.c, not by the build.
#include <cstring>
#include <string>

#include "twin/twin.h"

namespace {

struct counter {
  const twin_host_api *api;
  long docs = 0;
};

int open_(const twin_host_api *api, twin_ctx *, const char *, size_t,
          void **instance)
{
  auto *c = new counter;
  c->api = api;
  *instance = c;
  return TWIN_OK;
}

void close_(void *instance)
{
  delete static_cast<counter *>(instance);
}

int ingest_(void *instance, twin_ctx *ctx, const char *doc, size_t len)
{
  auto *c = static_cast<counter *>(instance);
  std::string name(doc, len);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' '))
    name.pop_back();
  twin_attr a = {"seen", c->api->now(ctx), twin_bool(1)};
  c->docs++;
  return c->api->entity_put(ctx, "Item", name.c_str(), &a, 1);
}

twin_plugin make_desc()
{
  twin_plugin d;
  std::memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.abi_major = TWIN_ABI_MAJOR;
  d.abi_minor = TWIN_ABI_MINOR;
  d.name = "cpp";
  d.version = "1.0.0";
  d.use_case = "other";
  d.summary = "a C++ plugin";
  d.open = open_;
  d.close = close_;
  d.ingest = ingest_;
  return d;
}

const twin_plugin desc = make_desc();

} // namespace

TWIN_PLUGIN_DEFINE(desc)

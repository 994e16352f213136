/*
 * test_install.c — `cmake --install` of this build tree as a packager and a
 * plugin author use it: a full install lands under its prefix and nowhere
 * else; the sdk component holds the headers, libtwinaux.a, twinhost.pc and
 * the CMake package and nothing more; from that SDK alone the worked plugin
 * of docs/plugins.md builds with the page's pkg-config line and with the
 * page's CMake project, and plugins/sensors builds out of the tree; the
 * installed host accepts what was built and, moved elsewhere, still finds
 * its own plugins with no plugin_path. Every command runs bounded, and a
 * failing one shows what it printed.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "twin/twin.h"

/* Seconds a step may take: an install or a tiny build takes one or two. */
#define STEP_S 240

/* What the tests share; each install and build is done once, by the first
 * test that needs it. */
typedef struct suite {
  char *dir;           /* the run's temp folder (resolved) */
  char *full;          /* prefix of the full install */
  char *full_manifest; /* its install_manifest.txt */
  char *sdk;           /* prefix of the sdk-only install */
  char *sdk_manifest;  /* its install_manifest_sdk.txt */
  char *libdir;        /* CMAKE_INSTALL_LIBDIR of the build, e.g. "lib" */
  char *pc_so;         /* the guide's plugin built with pkg-config */
  char *cmake_so;      /* ... and with find_package(twinhost) */
} suite;

static suite S;

/* ---- running commands ---------------------------------------------------- */

typedef struct cmd {
  int rc;    /* exit status, 128+signal, or -1 when killed at the deadline */
  char *out; /* stdout and stderr together */
} cmd;

static void cmd_free(cmd *c)
{
  free(c->out);
  c->out = NULL;
}

static char *join_argv(const char *const *argv)
{
  char *s = tu_fmt("%s", argv[0]);
  for (size_t i = 1; argv[i]; i++) {
    char *t = tu_fmt("%s %s", s, argv[i]);
    free(s);
    s = t;
  }
  return s;
}

/* Run argv (searched on PATH) in cwd with env ("NAME=value", NULL-ended,
 * may be NULL) added, for at most STEP_S seconds (then the whole process
 * group is killed). */
static cmd run(const char *cwd, const char *const *env, const char *const *argv)
{
  char *log = tu_fmt("%s/cmd.log", S.dir);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_msg("cannot write %s: %s", log, strerror(errno));
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    tu_child_dies_with_parent();
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (cwd && chdir(cwd))
      _exit(126);
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fd);
  cmd c = {-1, NULL};
  int status = 0;
  long long deadline = tu_mono_ms() + STEP_S * 1000LL;
  pid_t got;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 && tu_mono_ms() < deadline)
    tu_sleep_ms(20);
  if (got == pid) {
    c.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  char *text = tu_read_file(log);
  c.out = c.rc == -1
              ? tu_fmt("%s\n(killed after %d s)", text ? text : "", STEP_S)
              : tu_fmt("%s", text ? text : "");
  free(text);
  free(log);
  return c;
}

/* run, and fail the test with the command and its output unless it exits
 * 0. Returns its output (caller frees). */
static char *must(const char *cwd, const char *const *env,
                  const char *const *argv)
{
  cmd c = run(cwd, env, argv);
  if (c.rc != 0) {
    char *line = join_argv(argv);
    fail_msg("`%s` (in %s) exited %d:\n%s", line, cwd ? cwd : ".", c.rc, c.out);
  }
  return c.out;
}

/* ---- the build tree and the installs ------------------------------------- */

/* A value of the build's CMakeCache.txt ("" when absent; caller frees). */
static char *cache_value(const char *name)
{
  char *path = tu_fmt("%s/CMakeCache.txt", tu_env("TWIN_BUILD_DIR"));
  char *text = tu_read_file(path);
  if (!text)
    fail_msg("cannot read %s", path);
  char *want = tu_fmt("\n%s:", name);
  char *at = strstr(text, want);
  char *value = NULL;
  if (at && (at = strchr(at + 1, '='))) {
    size_t n = strcspn(at + 1, "\n");
    value = strndup(at + 1, n);
  }
  free(want);
  free(text);
  free(path);
  return value ? value : tu_fmt("%s", "");
}

static const char *cmake_bin(void)
{
  const char *c = getenv("TWIN_CMAKE");
  return c && *c ? c : "cmake";
}

/* `cmake --install <build> --prefix prefix [--component component]`;
 * returns the manifest it wrote (caller frees). */
static char *install(const char *prefix, const char *component)
{
  const char *build = tu_env("TWIN_BUILD_DIR");
  const char *argv[] = {cmake_bin(), "--install",
                        build,       "--prefix",
                        prefix,      component ? "--component" : NULL,
                        component,   NULL};
  free(must(NULL, NULL, argv));
  char *path = component
                   ? tu_fmt("%s/install_manifest_%s.txt", build, component)
                   : tu_fmt("%s/install_manifest.txt", build);
  char *manifest = tu_read_file(path);
  if (!manifest)
    fail_msg("cmake --install wrote no %s", path);
  free(path);
  return manifest;
}

static void ensure_full(void)
{
  if (!S.full_manifest) {
    S.full_manifest = install(S.full, NULL);
  }
}

static void ensure_sdk(void)
{
  if (!S.sdk_manifest)
    S.sdk_manifest = install(S.sdk, "sdk");
}

static int starts_with(const char *s, const char *prefix)
{
  return !strncmp(s, prefix, strlen(prefix));
}

static void assert_file(const char *prefix, const char *rel)
{
  char *path = tu_fmt("%s/%s", prefix, rel);
  struct stat sb;
  if (stat(path, &sb) || !S_ISREG(sb.st_mode))
    fail_msg("%s was not installed", path);
  free(path);
}

static void assert_no_file(const char *prefix, const char *rel)
{
  char *path = tu_fmt("%s/%s", prefix, rel);
  struct stat sb;
  if (!stat(path, &sb))
    fail_msg("%s was installed, and should not be", path);
  free(path);
}

/* Every line of manifest lies under prefix/. */
static void assert_manifest_under(const char *manifest, const char *prefix)
{
  char *under = tu_fmt("%s/", prefix);
  for (const char *line = manifest; *line;) {
    size_t n = strcspn(line, "\n");
    if (n && strncmp(line, under, strlen(under)))
      fail_msg("installed outside %s: %.*s", prefix, (int)n, line);
    line += n + (line[n] == '\n');
  }
  free(under);
}

/* The SDK's files under prefix, relative to it. */
static void assert_sdk_files(const char *prefix)
{
  const char *libdir = S.libdir;
  char *rel[] = {
      tu_fmt("include/twin/twin.h"),
      tu_fmt("include/twin/twinaux.h"),
      tu_fmt("%s/libtwinaux.a", libdir),
      tu_fmt("%s/pkgconfig/twinhost.pc", libdir),
      tu_fmt("%s/cmake/twinhost/twinhostConfig.cmake", libdir),
      tu_fmt("%s/cmake/twinhost/twinhostConfigVersion.cmake", libdir),
      tu_fmt("%s/cmake/twinhost/twinhostTargets.cmake", libdir),
  };
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    assert_file(prefix, rel[i]);
    free(rel[i]);
  }
}

static char *pc_env(void)
{
  return tu_fmt("PKG_CONFIG_PATH=%s/%s/pkgconfig", S.sdk, S.libdir);
}

/* A folder for one build, with visitors.c as docs/plugins.md prints it. */
static char *guide_workdir(const char *name)
{
  char *dir = tu_fmt("%s/%s", S.dir, name);
  tu_rmtree(dir);
  if (mkdir(dir, 0755))
    fail_msg("mkdir %s: %s", dir, strerror(errno));
  char *code = tu_doc_block("docs/plugins.md", "c", "TWIN_PLUGIN_DEFINE");
  free(tu_write_file(dir, "visitors.c", code));
  free(code);
  return dir;
}

/* `s` with every `from` replaced by `to` (caller frees). */
static char *replace_all(const char *s, const char *from, const char *to)
{
  char *out = tu_fmt("%s", "");
  for (const char *at; (at = strstr(s, from)); s = at + strlen(from)) {
    char *t = tu_fmt("%s%.*s%s", out, (int)(at - s), s, to);
    free(out);
    out = t;
  }
  char *t = tu_fmt("%s%s", out, s);
  free(out);
  return t;
}

/* The guide's pkg-config block, run as printed with sh in a folder holding
 * visitors.c, PKG_CONFIG_PATH naming the SDK's pkgconfig folder. */
static void build_with_pkg_config(void)
{
  if (S.pc_so)
    return;
  ensure_sdk();
  char *dir = guide_workdir("pc");
  char *script =
      tu_doc_block("docs/plugins.md", "sh", "$(pkg-config --cflags twinhost)");
  char *env0 = pc_env();
  const char *env[] = {env0, NULL};
  const char *argv[] = {"sh", "-e", "-x", "-c", script, NULL};
  char *out = must(dir, env, argv);
  char *so = tu_fmt("%s/visitors.so", dir);
  struct stat sb;
  if (stat(so, &sb))
    fail_msg("the pkg-config block built no %s:\n%s", so, out);
  S.pc_so = so;
  free(out);
  free(env0);
  free(script);
  free(dir);
}

/* The guide's CMakeLists.txt beside visitors.c, then its configure, build
 * and install lines as printed, with the SDK prefix for /opt/twinsdk and a
 * temp prefix for /opt/twinhost. */
static void build_with_find_package(void)
{
  if (S.cmake_so)
    return;
  ensure_sdk();
  char *dir = guide_workdir("cm");
  char *lists = tu_doc_block("docs/plugins.md", "cmake", "twinhost::sdk");
  free(tu_write_file(dir, "CMakeLists.txt", lists));
  char *printed =
      tu_doc_block("docs/plugins.md", "sh", "-DCMAKE_PREFIX_PATH=/opt/twinsdk");
  char *plugin_prefix = tu_fmt("%s/cm-prefix", S.dir);
  char *step = replace_all(printed, "/opt/twinsdk", S.sdk);
  char *script = replace_all(step, "/opt/twinhost", plugin_prefix);
  /* the cmake that configured this build first on PATH */
  char *cmake_dir = tu_fmt("%s", cmake_bin());
  char *slash = strrchr(cmake_dir, '/');
  if (slash)
    *slash = '\0';
  char *path_env =
      slash ? tu_fmt("PATH=%s:%s", cmake_dir,
                     getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin")
            : tu_fmt("PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin");
  const char *env[] = {path_env, NULL};
  const char *argv[] = {"sh", "-e", "-x", "-c", script, NULL};
  char *out = must(dir, env, argv);

  char *so = tu_fmt("%s/build/visitors.so", dir);
  struct stat sb;
  if (stat(so, &sb))
    fail_msg("the CMake project built no %s:\n%s", so, out);
  /* the package found is the SDK's, not one installed elsewhere */
  char *cache_path = tu_fmt("%s/build/CMakeCache.txt", dir);
  char *cache = tu_read_file(cache_path);
  char *want =
      tu_fmt("twinhost_DIR:PATH=%s/%s/cmake/twinhost\n", S.sdk, S.libdir);
  if (!cache || !strstr(cache, want))
    fail_msg("find_package(twinhost) did not use %s/%s/cmake/twinhost:\n%s",
             S.sdk, S.libdir, out);
  /* cmake --install put it where a host in that prefix looks */
  char *installed =
      tu_fmt("%s/lib/twinhost/plugins/visitors.so", plugin_prefix);
  if (stat(installed, &sb))
    fail_msg("cmake --install of the plugin wrote no %s:\n%s", installed, out);
  S.cmake_so = so;
  free(installed);
  free(want);
  free(cache);
  free(cache_path);
  free(out);
  free(path_env);
  free(cmake_dir);
  free(script);
  free(step);
  free(plugin_prefix);
  free(printed);
  free(lists);
  free(dir);
}

/* `<prefix>/bin/twinhost args...` */
static cmd installed_host(const char *prefix, const char *const *args)
{
  char *bin = tu_fmt("%s/bin/twinhost", prefix);
  const char *argv[16] = {bin};
  size_t n = 1;
  for (size_t i = 0; args[i] && n < 15; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  cmd c = run(S.dir, NULL, argv);
  free(bin);
  return c;
}

/* ---- tests --------------------------------------------------------------- */

static void a_full_install_puts_everything_under_its_prefix(void **state)
{
  (void)state;
  ensure_full();
  assert_file(S.full, "bin/twinhost");
  char *bin = tu_fmt("%s/bin/twinhost", S.full);
  assert_int_equal(access(bin, X_OK), 0);
  free(bin);
  const char *plugins[] = {"parking.so", "sensors.so"};
  for (size_t i = 0; i < 2; i++) {
    char *rel = tu_fmt("%s/twinhost/plugins/%s", S.libdir, plugins[i]);
    assert_file(S.full, rel);
    free(rel);
  }
  assert_sdk_files(S.full);
  assert_manifest_under(S.full_manifest, S.full);
  /* the paths the old rules wrote, from the configured prefix */
  char *configured = cache_value("CMAKE_INSTALL_PREFIX");
  const char *old[] = {"lib/twinhost/plugins/parking.so",
                       "lib/twinhost/plugins/sensors.so",
                       "share/pkgconfig/twinhost.pc"};
  for (size_t i = 0; i < 3; i++) {
    char *abs = tu_fmt("%s/%s\n", configured, old[i]);
    if (strstr(S.full_manifest, abs))
      fail_msg("the install wrote %s", abs);
    free(abs);
  }
  free(configured);
}

static void the_sdk_component_installs_no_binary_and_no_plugin(void **state)
{
  (void)state;
  ensure_sdk();
  assert_sdk_files(S.sdk);
  assert_manifest_under(S.sdk_manifest, S.sdk);
  assert_no_file(S.sdk, "bin");
  char *plugins = tu_fmt("%s/twinhost", S.libdir);
  assert_no_file(S.sdk, plugins);
  free(plugins);
  if (strstr(S.sdk_manifest, ".so\n") || strstr(S.sdk_manifest, "/bin/"))
    fail_msg("the sdk component installed a plugin or a binary:\n%s",
             S.sdk_manifest);
}

/* The flags name the SDK's own folders, wherever it was installed. */
static void pkg_config_gives_the_sdks_flags_from_its_prefix(void **state)
{
  (void)state;
  ensure_sdk();
  char *env0 = pc_env();
  const char *env[] = {env0, NULL};
  const char *flags[] = {"pkg-config", "--cflags", "--libs", "twinhost", NULL};
  char *out = must(NULL, env, flags);
  char inc[PATH_MAX], lib[PATH_MAX];
  char *want_inc = tu_fmt("%s/include", S.sdk);
  char *want_lib = tu_fmt("%s/%s", S.sdk, S.libdir);
  int seen_inc = 0, seen_lib = 0;
  char *copy = tu_fmt("%s", out), *save = NULL;
  for (char *t = strtok_r(copy, " \n", &save); t;
       t = strtok_r(NULL, " \n", &save)) {
    if (!strncmp(t, "-I", 2) && realpath(t + 2, inc))
      seen_inc |= !strcmp(inc, want_inc);
    if (!strncmp(t, "-L", 2) && realpath(t + 2, lib))
      seen_lib |= !strcmp(lib, want_lib);
  }
  if (!seen_inc || !seen_lib || !strstr(out, "-ltwinaux") ||
      !strstr(out, "-lm"))
    fail_msg("pkg-config --cflags --libs twinhost gave \"%s\"; want -I%s "
             "-L%s -ltwinaux -lm",
             out, want_inc, want_lib);
  free(copy);
  free(out);

  const char *dir[] = {"pkg-config", "--variable=plugindir", "twinhost", NULL};
  out = must(NULL, env, dir);
  out[strcspn(out, "\n")] = '\0';
  char *tail = tu_fmt("/%s/twinhost/plugins", S.libdir);
  if (!starts_with(out, S.sdk) || strlen(out) < strlen(tail) ||
      strcmp(out + strlen(out) - strlen(tail), tail))
    fail_msg("plugindir is \"%s\", not under %s", out, S.sdk);
  free(tail);
  free(out);

  const char *abi[] = {"pkg-config", "--variable=abi_major", "twinhost", NULL};
  out = must(NULL, env, abi);
  assert_int_equal(atoi(out), TWIN_ABI_MAJOR);
  free(out);
  free(want_inc);
  free(want_lib);
  free(env0);
}

static void the_guides_plugin_builds_with_the_pkg_config_line(void **state)
{
  (void)state;
  build_with_pkg_config();
}

static void the_guides_plugin_builds_with_find_package(void **state)
{
  (void)state;
  build_with_find_package();
}

/* plugins/sensors needs no source tree beside it: find_package finds the
 * SDK. (-DTWIN_SANITIZE follows this build: a sanitized libtwinaux.a
 * cannot link with -Wl,--no-undefined.) */
static void plugins_sensors_builds_out_of_tree_against_the_sdk(void **state)
{
  (void)state;
  ensure_sdk();
  char *src = tu_fmt("%s/plugins/sensors", tu_env("TWIN_SOURCE_DIR"));
  char *build = tu_fmt("%s/sensors-build", S.dir);
  char *prefix_path = tu_fmt("-DCMAKE_PREFIX_PATH=%s", S.sdk);
  char *sanitize = cache_value("TWIN_SANITIZE");
  char *san = tu_fmt("-DTWIN_SANITIZE=%s", *sanitize ? sanitize : "OFF");
  const char *configure[] = {
      cmake_bin(),        "-S", src, "-B", build, prefix_path,
      "-DTWIN_WERROR=ON", san,  NULL};
  char *out = must(NULL, NULL, configure);
  char *want = tu_fmt("sensors: using the twinhost SDK in %s/%s/cmake/twinhost",
                      S.sdk, S.libdir);
  if (!strstr(out, want))
    fail_msg("configure did not say \"%s\":\n%s", want, out);
  free(out);
  const char *make[] = {cmake_bin(), "--build", build, NULL};
  free(must(NULL, NULL, make));
  char *so = tu_fmt("%s/sensors.so", build);
  const char *check[] = {"plugins", "check", so, NULL};
  ensure_full();
  cmd c = installed_host(S.full, check);
  if (c.rc != 0 || !strstr(c.out, "plugin 'sensors'"))
    fail_msg("plugins check %s exited %d:\n%s", so, c.rc, c.out);
  cmd_free(&c);
  free(so);
  free(want);
  free(san);
  free(sanitize);
  free(prefix_path);
  free(build);
  free(src);
}

static void the_installed_host_accepts_what_the_sdk_built(void **state)
{
  (void)state;
  ensure_full();
  build_with_pkg_config();
  build_with_find_package();
  const char *sos[] = {S.pc_so, S.cmake_so};
  for (size_t i = 0; i < 2; i++) {
    const char *check[] = {"plugins", "check", sos[i], NULL};
    cmd c = installed_host(S.full, check);
    char *want = tu_fmt("ok: %s: plugin 'visitors'", sos[i]);
    if (c.rc != 0 || !starts_with(c.out, want))
      fail_msg("%s/bin/twinhost plugins check %s exited %d:\n%s", S.full,
               sos[i], c.rc, c.out);
    free(want);
    cmd_free(&c);
  }
}

/* Installed, then moved: the host finds <its prefix>/lib/twinhost/plugins
 * from where it lies, with no plugin_path, and not the build tree's. */
static void a_moved_install_finds_its_own_plugins(void **state)
{
  (void)state;
  char *staged = tu_fmt("%s/staged", S.dir);
  char *moved = tu_fmt("%s/moved", S.dir);
  free(install(staged, NULL));
  if (rename(staged, moved))
    fail_msg("rename %s %s: %s", staged, moved, strerror(errno));
  char *run_dir = tu_fmt("%s/run", S.dir);
  assert_int_equal(mkdir(run_dir, 0755), 0);
  tu_utc_zoneinfo(run_dir);
  char *config =
      tu_write_file(run_dir, "twinhost.json",
                    "{\"data_dir\": \"data\",\n"
                    " \"towns\": [{\"id\": \"alpha\", \"timezone\": \"UTC\",\n"
                    "              \"plugins\": {}}]}\n");
  const char *list[] = {"--config", config, "plugins", "list", NULL};
  cmd c = installed_host(moved, list);
  json_error_t je;
  json_t *j = c.rc == 0 ? json_loads(c.out, 0, &je) : NULL;
  if (!j)
    fail_msg("%s/bin/twinhost plugins list exited %d:\n%s", moved, c.rc, c.out);
  char *own = tu_fmt("%s/%s/twinhost/plugins", moved, S.libdir);
  json_t *path = json_object_get(j, "search_path");
  const char *first = json_string_value(json_array_get(path, 0));
  if (!first || strcmp(first, own))
    fail_msg("search_path starts with %s, not %s:\n%s", first ? first : "-",
             own, c.out);
  size_t i;
  json_t *v;
  json_array_foreach(path, i, v)
  {
    if (!strcmp(json_string_value(v), tu_env("TWIN_PLUGIN_BUILD_DIR")))
      fail_msg("an installed host searches the build tree:\n%s", c.out);
  }
  const char *names[] = {"parking", "sensors"};
  for (size_t k = 0; k < 2; k++) {
    char *file = tu_fmt("%s/%s.so", own, names[k]);
    int found = 0;
    json_array_foreach(json_object_get(j, "plugins"), i, v)
    {
      found |=
          !strcmp(json_string_value(json_object_get(v, "name")), names[k]) &&
          !strcmp(json_string_value(json_object_get(v, "file")), file);
    }
    if (!found)
      fail_msg("plugins list did not find %s:\n%s", file, c.out);
    free(file);
  }
  assert_int_equal(json_array_size(json_object_get(j, "refused")), 0);
  json_decref(j);
  cmd_free(&c);
  unsetenv("TZDIR");
  free(own);
  free(config);
  free(run_dir);
  free(moved);
  free(staged);
}

/* ---- main ---------------------------------------------------------------- */

static int suite_setup(void **state)
{
  (void)state;
  char *tmp = tu_tempdir();
  char resolved[PATH_MAX];
  /* the host reports paths from /proc/self/exe, which are resolved */
  S.dir = tu_fmt("%s", realpath(tmp, resolved) ? resolved : tmp);
  free(tmp);
  S.full = tu_fmt("%s/full", S.dir);
  S.sdk = tu_fmt("%s/sdk", S.dir);
  S.libdir = cache_value("CMAKE_INSTALL_LIBDIR");
  if (!*S.libdir) {
    free(S.libdir);
    S.libdir = tu_fmt("lib");
  }
  unsetenv("TWINHOST_PLUGIN_PATH");
  unsetenv("PKG_CONFIG_PATH");
  unsetenv("CMAKE_PREFIX_PATH");
  return 0;
}

static int suite_teardown(void **state)
{
  (void)state;
  tu_rmtree(S.dir);
  free(S.dir);
  free(S.full);
  free(S.full_manifest);
  free(S.sdk);
  free(S.sdk_manifest);
  free(S.libdir);
  free(S.pc_so);
  free(S.cmake_so);
  return 0;
}

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1); /* small stores in the temp folders */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_full_install_puts_everything_under_its_prefix),
      cmocka_unit_test(the_sdk_component_installs_no_binary_and_no_plugin),
      cmocka_unit_test(pkg_config_gives_the_sdks_flags_from_its_prefix),
      cmocka_unit_test(the_guides_plugin_builds_with_the_pkg_config_line),
      cmocka_unit_test(the_guides_plugin_builds_with_find_package),
      cmocka_unit_test(plugins_sensors_builds_out_of_tree_against_the_sdk),
      cmocka_unit_test(the_installed_host_accepts_what_the_sdk_built),
      cmocka_unit_test(a_moved_install_finds_its_own_plugins),
  };
  return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}

/*
 * crash.h — the line a crashing plugin leaves behind. Plugins run inside
 * the host's process, so a plugin that dereferences a bad pointer ends the
 * host for every town; before it goes, the host writes which town, plugin
 * and callback were running on the crashing thread, so the admin knows what
 * to disable. Only async-signal-safe calls run in the handler.
 */
#ifndef CORE_CRASH_H
#define CORE_CRASH_H

/* The plugin call running on this thread (nested calls stack). Strings
 * must outlive the call (town ids and plugin names do). */
typedef struct core_call_mark {
  const char *town, *plugin, *callback;
  struct core_call_mark *prev;
} core_call_mark;

void core_call_enter(core_call_mark *m, const char *town, const char *plugin,
                     const char *callback);
void core_call_leave(core_call_mark *m);

/* Install the handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT
 * (once per process) and give the calling thread an alternate signal stack,
 * so a stack overflow in a plugin is reported too. */
void core_crash_install(void);
/* Give the calling thread (writer, fetch) its own alternate signal stack;
 * freed when the thread ends. */
void core_crash_thread(void);

#endif

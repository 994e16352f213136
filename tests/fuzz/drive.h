/*
 * drive.h — what the host-backed fuzz targets share: a work folder for
 * their host, dying with a message, a seeded store, and one input run
 * through a town's plugin every way outside bytes reach it.
 */
#ifndef TWIN_FUZZ_DRIVE_H
#define TWIN_FUZZ_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "view.h"

/*
 * Give data to ci as an ingest document (its writes flushed into a write
 * transaction that is always aborted, so the store never grows), as a
 * query, as a what-if scenario, and to the town's rules as recorded
 * observations for a replay. ov is a scratch overlay, cleared after.
 */
void fuzz_drive(core_host *h, core_overlay *ov, core_instance *ci,
                const uint8_t *data, size_t size);

/* A fresh temp folder for target's host ("twin-fuzz-<target>"), with a
 * small store map; dies when it cannot. fuzz_dir() is its path until
 * fuzz_dir_remove (NULL after). */
void fuzz_dir_make(const char *target);
const char *fuzz_dir(void);
void fuzz_dir_remove(void);
/* Say "fuzz_<target>: what: why", remove the folder and abort. */
void fuzz_die(const char *what, const char *why) __attribute__((noreturn));
/* Ingest docs[i] into ci[i] for i < n and commit them together: a store
 * with data to fuzz against. Dies when one fails. */
void fuzz_seed(core_host *h, core_overlay *ov, core_instance *const *ci,
               const char *const *docs, size_t n);

#endif

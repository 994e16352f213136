/*
 * drive.h — what the host-backed fuzz targets share: one input run through
 * a town's plugin every way outside bytes reach it.
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

#endif

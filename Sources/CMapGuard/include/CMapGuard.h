#ifndef MBMS_CMAPGUARD_H
#define MBMS_CMAPGUARD_H

// A read-only file mapping that survives its file being truncated. Touching a mapped page
// past the file's new end raises SIGBUS (mmap(2)), which would kill the process: a capture
// cut short by another program (log rotation, a copy being replaced) would crash `replay`.
// While a mapping is registered here, a SIGBUS inside it is absorbed: the page is replaced by
// a page of zeros and the region is flagged, so the reader reports an error instead. A SIGBUS
// anywhere else goes to the handler that was installed before, or takes its default action.
// Only PacketIO calls this.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Registers [base, base + len). Returns a slot (>= 0), or -1 when every slot is taken or
/// the handler could not be installed (the mapping is then unguarded, as before).
int mbms_mapguard_register(const void *base, size_t len);
/// Forgets the slot; call before unmapping the region.
void mbms_mapguard_unregister(int slot);
/// Nonzero once a SIGBUS in the slot's region was absorbed (some of its pages now read as zeros).
int mbms_mapguard_faulted(int slot);

#ifdef __cplusplus
}
#endif
#endif

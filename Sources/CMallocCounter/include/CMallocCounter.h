#ifndef MBMS_CMALLOCCOUNTER_H
#define MBMS_CMALLOCCOUNTER_H
#include <stdint.h>

// Heap allocation counter for `mbms-gateway bench` (glibc): the executable defines malloc,
// calloc, realloc, free, posix_memalign, aligned_alloc and memalign, counts each allocating
// call and forwards to glibc's own (__libc_malloc, ...). Being in the executable, these
// definitions interpose every library's calls too (Swift runtime, OpenSSL, libpcap, ...).
// Not in a build with a sanitizer (its own malloc must stay): the counts are then 0 and
// mbms_malloc_counter_active() says so (the bench prints n/a).

/// Allocating calls (malloc, calloc, realloc, the aligned variants) since start, all threads.
uint64_t mbms_malloc_count(void);
/// The same, counted on the calling thread only.
uint64_t mbms_malloc_thread_count(void);
/// 1 when this file's malloc is the one in use (checked by allocating once), else 0.
int mbms_malloc_counter_active(void);
#endif

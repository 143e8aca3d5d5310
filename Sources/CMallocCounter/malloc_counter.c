// See CMallocCounter.h. Linked into the mbms-gateway executable only.
#include "CMallocCounter.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

// Under a sanitizer its own malloc must stay in charge (it tracks every block): an executable
// built with --sanitize=thread or address that forwarded to glibc here crashed at start-up.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define MBMS_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define MBMS_SANITIZED 1
#endif

#if (defined(__GLIBC__) || defined(__linux__)) && !defined(MBMS_SANITIZED)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static _Atomic uint64_t total_count;
static __thread uint64_t thread_count;   // the executable's static TLS: no allocation to reach it

static inline void count(void) {
    atomic_fetch_add_explicit(&total_count, 1, memory_order_relaxed);
    thread_count++;
}

void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t align, size_t n) { count(); return __libc_memalign(align, n); }
void *aligned_alloc(size_t align, size_t n) { count(); return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    count();
    void *p = __libc_memalign(align, n);
    if (!p && n) return ENOMEM;
    *out = p;
    return 0;
}

uint64_t mbms_malloc_count(void) { return atomic_load_explicit(&total_count, memory_order_relaxed); }
uint64_t mbms_malloc_thread_count(void) { return thread_count; }

int mbms_malloc_counter_active(void) {
    uint64_t before = mbms_malloc_count();
    // A call through the PLT of another object would be the real test; volatile keeps the compiler from eliding it.
    void *volatile p = malloc(24);
    free(p);
    return mbms_malloc_count() > before;
}
#else
uint64_t mbms_malloc_count(void) { return 0; }
uint64_t mbms_malloc_thread_count(void) { return 0; }
int mbms_malloc_counter_active(void) { return 0; }
#endif

// See CMapGuard.h. The handler only compares addresses, calls mmap(2) and stores flags: the
// registry is a fixed array of atomics, so nothing in it takes a lock or allocates.
#define _GNU_SOURCE
#include "CMapGuard.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <pthread.h>

#define MBMS_MAPGUARD_SLOTS 32

typedef struct {
    _Atomic uintptr_t base;   // 0: free
    _Atomic size_t len;
    _Atomic int faulted;
} mapguard_slot;

static mapguard_slot slots[MBMS_MAPGUARD_SLOTS];
static struct sigaction previous;
static pthread_once_t installed_once = PTHREAD_ONCE_INIT;
static int installed;
static uintptr_t page_size;   // read at install: sysconf is not on the async-signal-safe list

static void mapguard_handler(int sig, siginfo_t *si, void *context) {
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < MBMS_MAPGUARD_SLOTS; i++) {
        uintptr_t base = atomic_load_explicit(&slots[i].base, memory_order_acquire);
        if (base == 0 || a < base || a - base >= atomic_load_explicit(&slots[i].len, memory_order_relaxed)) continue;
        // The page past the file's end: map zeros over it (MAP_FIXED replaces just this page of
        // the file mapping) and return, so the faulting load runs again and reads zeros.
        uintptr_t page = a & ~(page_size - 1);
        void *m = mmap((void *)page, (size_t)page_size, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (m != MAP_FAILED) {
            atomic_store_explicit(&slots[i].faulted, 1, memory_order_release);
            return;
        }
        break;
    }
    // Not a guarded mapping: what would have happened without us.
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction != NULL) {
        previous.sa_sigaction(sig, si, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != NULL) {
        previous.sa_handler(sig);
    } else {
        // A synchronous fault: with the default action restored, returning re-runs the
        // faulting instruction and the process ends as it would have (core dump).
        signal(sig, SIG_DFL);
    }
}

static void mapguard_install(void) {
    long ps = sysconf(_SC_PAGESIZE);
    page_size = ps > 0 ? (uintptr_t)ps : 4096;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = mapguard_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    installed = sigaction(SIGBUS, &sa, &previous) == 0;
}

int mbms_mapguard_register(const void *base, size_t len) {
    if (base == NULL || len == 0) return -1;
    pthread_once(&installed_once, mapguard_install);
    if (!installed) return -1;
    for (int i = 0; i < MBMS_MAPGUARD_SLOTS; i++) {
        uintptr_t expected = 0;
        // Claim the slot with a value no address equals (1), fill it, then publish the base.
        if (atomic_compare_exchange_strong(&slots[i].base, &expected, (uintptr_t)1)) {
            atomic_store(&slots[i].len, 0);
            atomic_store(&slots[i].faulted, 0);
            atomic_store(&slots[i].len, len);
            atomic_store_explicit(&slots[i].base, (uintptr_t)base, memory_order_release);
            return i;
        }
    }
    return -1;
}

void mbms_mapguard_unregister(int slot) {
    if (slot < 0 || slot >= MBMS_MAPGUARD_SLOTS) return;
    atomic_store(&slots[slot].len, 0);
    atomic_store(&slots[slot].base, 0);
}

int mbms_mapguard_faulted(int slot) {
    if (slot < 0 || slot >= MBMS_MAPGUARD_SLOTS) return 0;
    return atomic_load_explicit(&slots[slot].faulted, memory_order_acquire);
}

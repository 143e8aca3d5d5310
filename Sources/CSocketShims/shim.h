#ifndef MBMS_CSOCKETSHIMS_H
#define MBMS_CSOCKETSHIMS_H
// recvmmsg/sendmmsg without _GNU_SOURCE (Swift's Glibc module is built without it):
// the kernel ABI struct and direct system calls.
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct mbms_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

static inline int mbms_recvmmsg(int fd, struct mbms_mmsghdr *vec, unsigned int n, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, vec, n, flags, (void *)0);
}

static inline int mbms_sendmmsg(int fd, struct mbms_mmsghdr *vec, unsigned int n, int flags) {
    return (int)syscall(SYS_sendmmsg, fd, vec, n, flags);
}

// Futex wait/wake on a 32-bit word (linux/futex.h values; private to the process): how a
// pipeline stage with nothing to do sleeps until the other side publishes (SPSCRing).
#include <stdint.h>
#include <time.h>
#define MBMS_FUTEX_WAIT_PRIVATE 128
#define MBMS_FUTEX_WAKE_PRIVATE 129

/// Sleeps while *word == expected, at most timeout_ns; returns at once otherwise.
static inline void mbms_futex_wait(uint32_t *word, uint32_t expected, long timeout_ns) {
    struct timespec t = { timeout_ns / 1000000000L, timeout_ns % 1000000000L };
    (void)syscall(SYS_futex, word, MBMS_FUTEX_WAIT_PRIVATE, expected, &t, (void *)0, 0);
}

/// Asks for the cache line at p ahead of use (a hint: never faults).
static inline void mbms_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

static inline void mbms_futex_wake(uint32_t *word, int waiters) {
    (void)syscall(SYS_futex, word, MBMS_FUTEX_WAKE_PRIVATE, waiters, (void *)0, (void *)0, 0);
}
// prctl(2) is variadic (not callable from Swift): PR_SET_DUMPABLE 0 — no core dumps, no
// ptrace attach by other processes of the same user, /proc/<pid>/mem etc. owned by root.
#include <sys/prctl.h>
static inline int mbms_set_dumpable(int dumpable) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)dumpable, 0UL, 0UL, 0UL);
}
static inline int mbms_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
}

#endif

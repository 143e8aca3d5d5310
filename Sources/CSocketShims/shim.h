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
#endif

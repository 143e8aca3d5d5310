#ifndef MBMS_CBENCHFLOOR_H
#define MBMS_CBENCHFLOOR_H
#include <stddef.h>
#include <stdint.h>

// `mbms-gateway bench` only (the product links this, never libsrtp2).
//
// 1. The OpenSSL floor (a copy of Benchmarks/CBenchSupport/floor.c): what one SRTP protect
//    costs when written directly against OpenSSL: AES-128-CTR over the payload and
//    HMAC-SHA1 over header || payload || ROC.
// 2. Debian's libsrtp2, loaded at run time (dlopen("libsrtp2.so.1")), so the product neither
//    links it nor needs libsrtp2-dev to build; absent library: bench_libsrtp_open() fails.

typedef struct bench_floor bench_floor;

/// mode 0: HMAC_CTX re-init per packet; 1: EVP_MAC re-init; 2: SHA1 inner/outer states copied per packet.
bench_floor *bench_floor_new(const uint8_t key[16], const uint8_t auth_key[20], int mode);
void bench_floor_free(bench_floor *f);
/// Encrypts buf[header_len..len) in place (RFC 3711 IV from salt, SSRC, SEQ, roc) and writes a 10-byte tag after a 6-byte MKI at buf+len.
int bench_floor_protect(bench_floor *f, uint8_t *buf, size_t len, size_t header_len, const uint8_t salt[14], uint32_t roc);
int bench_floor_aes_only(bench_floor *f, uint8_t *buf, size_t n, const uint8_t iv[16]);
int bench_floor_hmac_only(bench_floor *f, const uint8_t *buf, size_t n, uint8_t out[20]);

/// Loads libsrtp2.so.1 and resolves the functions used; 0 on success, else -1 and a reason in `why` (NUL-terminated).
int bench_libsrtp_open(char *why, size_t why_len);
/// libsrtp2's version string ("" before a successful open).
const char *bench_libsrtp_version(void);
/// One outbound session (AES-CM-128 + HMAC-SHA1-80 for RTP and RTCP) for `ssrc` with one master key
/// (16-octet key || 14-octet salt) carrying `mki`. Returns the session or NULL (rc in *status).
void *bench_libsrtp_create(uint32_t ssrc, const uint8_t key_and_salt[30], const uint8_t *mki, int mki_len, int *status);
/// srtp_protect_mki(session, pkt, len, use_mki, 0); returns the srtp_err_status_t.
int bench_libsrtp_protect(void *session, void *pkt, int *len, int use_mki);
void bench_libsrtp_dealloc(void *session);
#endif

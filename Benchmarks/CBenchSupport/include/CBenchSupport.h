#ifndef MBMS_CBENCHSUPPORT_H
#define MBMS_CBENCHSUPPORT_H
#include <stddef.h>
#include <stdint.h>

// The OpenSSL floor: what one SRTP protect costs when written directly against OpenSSL —
// AES-128-CTR over the payload (IV set per packet on a keyed context) and HMAC-SHA1 over
// header || payload || ROC with a keyed context re-initialised per packet. Benchmark only.

typedef struct bench_floor bench_floor;

/// mode 0: HMAC_CTX with HMAC_Init_ex(ctx, NULL, ...) re-init (what libsrtp's OpenSSL backend does);
/// mode 1: EVP_MAC HMAC with EVP_MAC_init(ctx, NULL, 0, NULL) re-init (OpenSSL >= 3.0.3 way);
/// mode 2: OpenSSL SHA1_* with precomputed inner/outer states copied per packet (the tightest
///         way to drive OpenSSL, and the technique mbms-gateway uses: this isolates our overhead).
bench_floor *bench_floor_new(const uint8_t key[16], const uint8_t auth_key[20], int mode);
void bench_floor_free(bench_floor *f);
/// Computes the RFC 3711 IV from the session salt, the packet's SSRC/SEQ and roc, encrypts buf[header_len..len) in place and writes a 10-byte tag at buf+len (after a 6-byte MKI).
int bench_floor_protect(bench_floor *f, uint8_t *buf, size_t len, size_t header_len, const uint8_t salt[14], uint32_t roc);
/// Single-stream raw speed of the primitives over n bytes (like `openssl speed`): returns 1 on success.
int bench_floor_aes_only(bench_floor *f, uint8_t *buf, size_t n, const uint8_t iv[16]);
int bench_floor_hmac_only(bench_floor *f, const uint8_t *buf, size_t n, uint8_t out[20]);
#endif

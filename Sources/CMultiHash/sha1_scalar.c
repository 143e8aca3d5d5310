// Portable SHA-1 compression (FIPS 180-4 6.1.2) and the HMAC key schedule (RFC 2104 2).
// The fallback when the SHA extensions are absent, and the key setup on every machine
// (keying is rare; one code path keeps inner/outer states identical across implementations).
#include "lane.h"

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

// One step of FIPS 180-4 6.1.2 step 3 with the round's function f and constant kt.
#define MH_STEP(f, kt, wt)                                        \
    do {                                                          \
        uint32_t tmp_ = rol32(a, 5) + (f) + e + (kt) + (wt);      \
        e = d; d = c; c = rol32(b, 30); b = a; a = tmp_;          \
    } while (0)

void mbms_mh_sha1_block_scalar(uint32_t h[5], const uint8_t block[64]) {
    // 16-word circular schedule (FIPS 180-4 6.1.3, the alternate method).
    uint32_t w[16];
    for (int t = 0; t < 16; t++) w[t] = mbms_mh_load_be32(block + 4 * t);
#define MH_W(t) (t < 16 ? w[t] : (w[(t) & 15] = rol32(w[((t) - 3) & 15] ^ w[((t) - 8) & 15] ^ w[((t) - 14) & 15] ^ w[(t) & 15], 1)))
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    // FIPS 180-4 4.1.1 (Ch, Parity, Maj) and 4.2.1 constants, one loop per function.
    _Pragma("GCC unroll 20") for (int t = 0; t < 20; t++) MH_STEP((b & c) | (~b & d), 0x5A827999u, MH_W(t));
    _Pragma("GCC unroll 20") for (int t = 20; t < 40; t++) MH_STEP(b ^ c ^ d, 0x6ED9EBA1u, MH_W(t));
    _Pragma("GCC unroll 20") for (int t = 40; t < 60; t++) MH_STEP((b & c) | (b & d) | (c & d), 0x8F1BBCDCu, MH_W(t));
    _Pragma("GCC unroll 20") for (int t = 60; t < 80; t++) MH_STEP(b ^ c ^ d, 0xCA62C1D6u, MH_W(t));
#undef MH_W
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static const uint32_t sha1_iv[5] = { 0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u }; // FIPS 180-4 5.3.1

void mbms_mh_key_init(mbms_mh_key *k, const uint8_t *key, size_t key_len) {
    uint8_t block[64];
    memset(block, 0, sizeof(block));
    memset(k, 0, sizeof(*k));
    if (key_len > 64) {
        // RFC 2104 2: keys longer than B = 64 bytes are replaced by H(K).
        mbms_mh_lane l;
        mbms_mh_lane_init(&l, k, key, key_len, NULL, 0, block);
        memcpy(l.h, sha1_iv, sizeof(l.h));
        for (size_t j = 0; j < l.inner_blocks; j++) mbms_mh_sha1_block_scalar(l.h, mbms_mh_lane_block(&l, j, 0));
        mbms_mh_lane_finish(&l);   // 20 bytes into block, rest stays zero
        volatile uint8_t *vs = l.scratch;
        for (size_t i = 0; i < sizeof(l.scratch); i++) vs[i] = 0;
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    memcpy(k->inner, sha1_iv, sizeof(sha1_iv));
    mbms_mh_sha1_block_scalar(k->inner, pad);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    memcpy(k->outer, sha1_iv, sizeof(sha1_iv));
    mbms_mh_sha1_block_scalar(k->outer, pad);
    volatile uint8_t *vb = block, *vp = pad;
    for (int i = 0; i < 64; i++) { vb[i] = 0; vp[i] = 0; }
}

void mbms_mh_key_clear(mbms_mh_key *k) {
    volatile uint8_t *p = (volatile uint8_t *)k;
    for (size_t i = 0; i < sizeof(*k); i++) p[i] = 0;
}

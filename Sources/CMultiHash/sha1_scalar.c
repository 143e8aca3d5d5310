// Portable SHA-1 compression (FIPS 180-4 6.1.2) and the HMAC key schedule (RFC 2104 2).
// The fallback when the SHA extensions are absent, and the key setup on every machine
// (keying is rare; one code path keeps inner/outer states identical across implementations).
#include "lane.h"

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void mbms_mh_sha1_block_scalar(uint32_t h[5], const uint8_t block[64]) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) w[t] = mbms_mh_load_be32(block + 4 * t);
    for (int t = 16; t < 80; t++) w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, kt;
        // FIPS 180-4 4.1.1 (Ch, Parity, Maj) and 4.2.1 constants.
        if (t < 20) { f = (b & c) | (~b & d); kt = 0x5A827999u; }
        else if (t < 40) { f = b ^ c ^ d; kt = 0x6ED9EBA1u; }
        else if (t < 60) { f = (b & c) | (b & d) | (c & d); kt = 0x8F1BBCDCu; }
        else { f = b ^ c ^ d; kt = 0xCA62C1D6u; }
        uint32_t tmp = rol32(a, 5) + f + e + kt + w[t];
        e = d; d = c; c = rol32(b, 30); b = a; a = tmp;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    // w held message-derived words (key material during keying).
    volatile uint32_t *vw = w;
    for (int t = 0; t < 80; t++) vw[t] = 0;
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

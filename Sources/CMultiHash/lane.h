#ifndef MBMS_MH_LANE_H
#define MBMS_MH_LANE_H
// Internal: one message ("lane") of a multi-message HMAC-SHA1 call, and how its 64-byte
// blocks are produced. Shared by the scalar and the SHA-NI compression loops so both see
// exactly the same block sequence.

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "CMultiHash.h"

/// At most this many lanes live at once; larger calls are processed in chunks.
#define MBMS_MH_CHUNK 16

typedef struct {
    const uint8_t *a, *b;
    size_t a_len, total;   // total = a_len + b_len
    size_t inner_blocks;   // blocks of the padded inner message a || b (after the ipad block)
    size_t next;           // next block; == inner_blocks: the outer block; > inner_blocks: done
    uint32_t h[5];         // chaining values
    uint8_t *out;          // 20-byte digest destination
    uint8_t scratch[64];   // blocks that straddle a/b, or hold padding, are assembled here
} mbms_mh_lane;

static inline void mbms_mh_store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static inline uint32_t mbms_mh_load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/// Padded length in blocks (FIPS 180-4 5.1.1: message, 0x80, zeros, 64-bit bit length).
static inline size_t mbms_mh_padded_blocks(size_t len) { return (len + 9 + 63) / 64; }

/// Sets up `l` for HMAC inner hashing of a || b from the keyed inner state.
static inline void mbms_mh_lane_init(mbms_mh_lane *l, const mbms_mh_key *k,
                                     const void *a, size_t a_len, const void *b, size_t b_len, uint8_t *out) {
    l->a = (const uint8_t *)a;
    l->b = (const uint8_t *)b;
    l->a_len = a_len;
    l->total = a_len + b_len;
    l->inner_blocks = mbms_mh_padded_blocks(l->total);
    l->next = 0;
    memcpy(l->h, k->inner, sizeof(l->h));
    l->out = out;
}

/// Block `j` of the padded message (prefix_bytes already hashed, e.g. the 64-byte ipad
/// block) a || b: a pointer into a or b when the block lies entirely inside one part,
/// else assembled in the 64 bytes at s (and s returned).
static inline const uint8_t *mbms_mh_lane_block_into(const mbms_mh_lane *l, size_t j, uint64_t prefix_bytes, uint8_t *s) {
    size_t off = 64 * j;
    if (off + 64 <= l->a_len) return l->a + off;
    if (off >= l->a_len && off + 64 <= l->total) return l->b + (off - l->a_len);
    size_t k = 0;
    if (off < l->a_len) {
        k = l->a_len - off;               // < 64 here
        memcpy(s, l->a + off, k);
    }
    size_t p = off + k;                    // next message byte to place
    if (p < l->total) {
        size_t n = l->total - p;
        if (n > 64 - k) n = 64 - k;
        memcpy(s + k, l->b + (p - l->a_len), n);
        k += n;
        p += n;
    }
    if (k < 64) {
        if (p == l->total) s[k++] = 0x80; // the message ends inside this block
        memset(s + k, 0, 64 - k);
    }
    if (j + 1 == l->inner_blocks) {
        uint64_t bits = ((uint64_t)l->total + prefix_bytes) * 8;
        mbms_mh_store_be32(s + 56, (uint32_t)(bits >> 32));
        mbms_mh_store_be32(s + 60, (uint32_t)bits);
    }
    return s;
}

/// mbms_mh_lane_block_into with l->scratch.
static inline const uint8_t *mbms_mh_lane_block(mbms_mh_lane *l, size_t j, uint64_t prefix_bytes) {
    return mbms_mh_lane_block_into(l, j, prefix_bytes, l->scratch);
}

/// After the last inner block: the outer message is K^opad || inner digest (RFC 2104), so
/// the one remaining block is the 20-byte digest, padding and the length 84*8 bits.
static inline const uint8_t *mbms_mh_lane_outer_block(mbms_mh_lane *l, const mbms_mh_key *k) {
    uint8_t *s = l->scratch;
    for (int i = 0; i < 5; i++) mbms_mh_store_be32(s + 4 * i, l->h[i]);
    s[20] = 0x80;
    memset(s + 21, 0, 64 - 21);
    s[62] = (uint8_t)((84 * 8) >> 8);
    s[63] = (uint8_t)(84 * 8);
    memcpy(l->h, k->outer, sizeof(l->h));
    return s;
}

/// Next block of this lane (inner blocks, then the outer block), or NULL when done.
static inline const uint8_t *mbms_mh_lane_next(mbms_mh_lane *l, const mbms_mh_key *k) {
    size_t j = l->next++;
    if (j < l->inner_blocks) return mbms_mh_lane_block(l, j, 64);
    if (j == l->inner_blocks) return mbms_mh_lane_outer_block(l, k);
    return NULL;
}

static inline void mbms_mh_lane_finish(const mbms_mh_lane *l) {
    for (int i = 0; i < 5; i++) mbms_mh_store_be32(l->out + 4 * i, l->h[i]);
}

// Compression functions (one 64-byte block, FIPS 180-4 6.1.2 step 1-4).
void mbms_mh_sha1_block_scalar(uint32_t h[5], const uint8_t block[64]);
#if defined(__x86_64__) || defined(__i386__)
int mbms_mh_shani_supported(void);
/// Runs n lanes (already initialised) to completion with the SHA-NI interleaved kernel.
void mbms_mh_run_shani(mbms_mh_lane *lanes, size_t n, const mbms_mh_key *k);
/// n one-part messages (every b empty) of the same length `len`, straight from the message
/// pointers: returns 0 (and does nothing) when len is outside what the whole-HMAC kernel
/// takes (len < 64, or more than its maximum block count).
int mbms_mh_run_shani_one_part(const mbms_mh_key *k, size_t n, const void *const *msg, size_t len, uint8_t *digests);
#endif

#endif

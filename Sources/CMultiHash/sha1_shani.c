// SHA-1 compression with the Intel SHA extensions over several independent messages at once.
//
// SHA1RNDS4 (four rounds) has a latency of several cycles but a throughput of about one per
// one to two cycles on current cores, and every group of four rounds depends on the previous
// one, so a single message leaves the unit mostly idle. Interleaving the round groups of W
// independent messages ("lanes") fills those bubbles (Intel, "Intel SHA Extensions: New
// Instructions Supporting the Secure Hash Algorithm on Intel Architecture Processors", 2013;
// the one-lane instruction sequence follows that paper's reference code).
//
// Lanes of different lengths: a small pool of MBMS_MH_WAYS slots; each step compresses one
// block of every occupied slot with the kernel of that width; a lane that has finished its
// inner blocks continues with its outer block (RFC 2104), and a finished lane's slot is
// refilled with the next waiting message, so short and long messages mix without idling.
#if defined(__x86_64__) || defined(__i386__)
#include "lane.h"
#include <cpuid.h>
#include <immintrin.h>

/// Interleave factor. Measured on the AMD EPYC (Zen) development box, 1212-byte messages,
/// ns/message against one lane: 2 lanes 1.75x, 4 lanes 2.2x, 6 or 8 lanes no further gain
/// (the SHA unit is then throughput-bound; 4 lanes × 9 live XMM values already spill a
/// little of the 16 registers). One lane runs as fast as OpenSSL's own SHA-NI code.
#ifndef MBMS_MH_WAYS
#define MBMS_MH_WAYS 4
#endif
#if MBMS_MH_WAYS < 1 || MBMS_MH_WAYS > 4
#error "MBMS_MH_WAYS must be 1...4 (the kernels below are written for up to four lanes)"
#endif

#define MH_TARGET __attribute__((target("sha,sse4.1")))

int mbms_mh_shani_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;   // CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]
    return ssse3 && sse41 && sha;
}

// W lanes, one block each. The loops over `l` have a constant trip count after inlining,
// so the compiler unrolls them and the round groups of different lanes interleave.
static inline __attribute__((always_inline)) MH_TARGET
void shani_blocks(const int W, uint32_t *const h[], const uint8_t *const blk[]) {
    // Byte-reverse each 16-byte load: SHA-1 words are big-endian (FIPS 180-4 3.1) and
    // the instructions expect W0 in the highest dword.
    const __m128i mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    __m128i abcd[4], abcd_save[4], e[2][4], e_save[4];
    __m128i msg[4][4];

    for (int l = 0; l < W; l++) {
        abcd[l] = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h[l]), 0x1B);
        e[0][l] = _mm_set_epi32((int)h[l][4], 0, 0, 0);
        abcd_save[l] = abcd[l];
        e_save[l] = e[0][l];
        for (int q = 0; q < 4; q++)
            msg[q][l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk[l] + 16 * q)), mask);
    }

    // 20 groups of four rounds. Group g uses message quad W[4g..4g+3] (in msg[g % 4]) and
    // the E register e[g % 2]; it saves ABCD into e[(g + 1) % 2] for the next group's
    // SHA1NEXTE (which derives E from the A of four rounds earlier). Round function
    // selector g / 5: rounds 0-19 Ch, 20-39 Parity, 40-59 Maj, 60-79 Parity.
#define MH_GROUP(g)                                                                          \
    do {                                                                                     \
        for (int l = 0; l < W; l++) {                                                        \
            if ((g) >= 4) {                                                                  \
                /* FIPS 180-4 6.1.2 step 1: W[t] = ROTL1(W[t-3]^W[t-8]^W[t-14]^W[t-16]) */   \
                msg[(g) % 4][l] = _mm_sha1msg2_epu32(                                        \
                    _mm_xor_si128(_mm_sha1msg1_epu32(msg[(g) % 4][l], msg[((g) + 1) % 4][l]), \
                                  msg[((g) + 2) % 4][l]),                                    \
                    msg[((g) + 3) % 4][l]);                                                  \
            }                                                                                \
            if ((g) == 0) e[0][l] = _mm_add_epi32(e[0][l], msg[0][l]);                       \
            else e[(g) % 2][l] = _mm_sha1nexte_epu32(e[(g) % 2][l], msg[(g) % 4][l]);        \
            e[((g) + 1) % 2][l] = abcd[l];                                                   \
            abcd[l] = _mm_sha1rnds4_epu32(abcd[l], e[(g) % 2][l], (g) / 5);                  \
        }                                                                                    \
    } while (0)
    MH_GROUP(0);  MH_GROUP(1);  MH_GROUP(2);  MH_GROUP(3);  MH_GROUP(4);
    MH_GROUP(5);  MH_GROUP(6);  MH_GROUP(7);  MH_GROUP(8);  MH_GROUP(9);
    MH_GROUP(10); MH_GROUP(11); MH_GROUP(12); MH_GROUP(13); MH_GROUP(14);
    MH_GROUP(15); MH_GROUP(16); MH_GROUP(17); MH_GROUP(18); MH_GROUP(19);
#undef MH_GROUP

    for (int l = 0; l < W; l++) {
        // e[0] holds the state after round 75 (saved by group 19); E after round 79 is
        // ROTL30 of its A, which SHA1NEXTE computes while adding the saved E (FIPS 180-4
        // 6.1.2 step 4, H4 += e).
        __m128i e0 = _mm_sha1nexte_epu32(e[0][l], e_save[l]);
        __m128i s = _mm_shuffle_epi32(_mm_add_epi32(abcd[l], abcd_save[l]), 0x1B);
        _mm_storeu_si128((__m128i *)h[l], s);
        h[l][4] = (uint32_t)_mm_extract_epi32(e0, 3);
    }
}

static MH_TARGET void shani_x1(uint32_t *const h[], const uint8_t *const b[]) { shani_blocks(1, h, b); }
static MH_TARGET void shani_x2(uint32_t *const h[], const uint8_t *const b[]) { shani_blocks(2, h, b); }
static MH_TARGET void shani_x3(uint32_t *const h[], const uint8_t *const b[]) { shani_blocks(3, h, b); }
static MH_TARGET void shani_x4(uint32_t *const h[], const uint8_t *const b[]) { shani_blocks(4, h, b); }

void mbms_mh_run_shani(mbms_mh_lane *lanes, size_t n, const mbms_mh_key *k) {
    mbms_mh_lane *slot[MBMS_MH_WAYS];
    size_t waiting = 0;   // next lane to enter a slot
    int used = 0;
    while (used < MBMS_MH_WAYS && waiting < n) slot[used++] = &lanes[waiting++];
    while (used > 0) {
        uint32_t *h[MBMS_MH_WAYS];
        const uint8_t *b[MBMS_MH_WAYS];
        int w = 0;
        for (int s = 0; s < used; ) {
            const uint8_t *blk = mbms_mh_lane_next(slot[s], k);
            if (blk == NULL) {
                // Lane finished: digest out, slot refilled (or compacted away).
                mbms_mh_lane_finish(slot[s]);
                if (waiting < n) slot[s] = &lanes[waiting++];
                else slot[s] = slot[--used];
                continue;
            }
            h[w] = slot[s]->h;
            b[w] = blk;
            w++;
            s++;
        }
        switch (w) {
        case 0: break;
        case 1: shani_x1(h, b); break;
        case 2: shani_x2(h, b); break;
        case 3: shani_x3(h, b); break;
        default: shani_x4(h, b); break;
        }
    }
}
#endif

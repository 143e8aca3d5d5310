// Multi-message HMAC-SHA1 (RFC 2104): implementation choice and the three ways to run lanes.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "lane.h"
#include <openssl/sha.h>
#include <stdlib.h>

static int mh_impl = -1;   // chosen once; a benign race (every thread computes the same value)

int mbms_mh_available(int impl) {
    switch (impl) {
    case MBMS_MH_SCALAR:
    case MBMS_MH_OPENSSL:
        return 1;
    case MBMS_MH_SHANI:
#if defined(__x86_64__) || defined(__i386__)
        return mbms_mh_shani_supported();
#else
        return 0;
#endif
    default:
        return 0;
    }
}

const char *mbms_mh_implementation_name(int impl) {
    switch (impl) {
    case MBMS_MH_SCALAR: return "scalar";
    case MBMS_MH_OPENSSL: return "openssl";
    case MBMS_MH_SHANI: return "shani";
    default: return "unknown";
    }
}

static int mh_choose(void) {
    // MBMS_MULTIHASH forces an implementation (tests, benchmarks, a suspected CPU bug);
    // an unknown or unavailable value falls back to the CPUID choice.
    const char *env = getenv("MBMS_MULTIHASH");
    if (env != NULL) {
        for (int i = MBMS_MH_SCALAR; i <= MBMS_MH_SHANI; i++)
            if (strcmp(env, mbms_mh_implementation_name(i)) == 0 && mbms_mh_available(i)) return i;
    }
    // Without the SHA extensions OpenSSL's own SHA-1 (assembly: SSSE3/AVX2 schedules) is
    // several times faster than the portable C; the scalar path stays as a reference.
    return mbms_mh_available(MBMS_MH_SHANI) ? MBMS_MH_SHANI : MBMS_MH_OPENSSL;
}

int mbms_mh_implementation(void) {
    int v = __atomic_load_n(&mh_impl, __ATOMIC_RELAXED);
    if (v < 0) {
        v = mh_choose();
        __atomic_store_n(&mh_impl, v, __ATOMIC_RELAXED);
    }
    return v;
}

int mbms_mh_select(int impl) {
    if (impl < 0) {
        __atomic_store_n(&mh_impl, mh_choose(), __ATOMIC_RELAXED);
        return 1;
    }
    if (!mbms_mh_available(impl)) return 0;
    __atomic_store_n(&mh_impl, impl, __ATOMIC_RELAXED);
    return 1;
}

/// OpenSSL: SHA_CTX resumed from the keyed chaining values with 64 bytes already counted.
static void mh_openssl(const mbms_mh_key *k, const void *a, size_t a_len, const void *b, size_t b_len, uint8_t *out) {
    SHA_CTX c;
    memset(&c, 0, sizeof(c));
    c.h0 = k->inner[0]; c.h1 = k->inner[1]; c.h2 = k->inner[2]; c.h3 = k->inner[3]; c.h4 = k->inner[4];
    c.Nl = 64 * 8;
    if (a_len) SHA1_Update(&c, a, a_len);
    if (b_len) SHA1_Update(&c, b, b_len);
    uint8_t inner[20];
    SHA1_Final(inner, &c);
    memset(&c, 0, sizeof(c));
    c.h0 = k->outer[0]; c.h1 = k->outer[1]; c.h2 = k->outer[2]; c.h3 = k->outer[3]; c.h4 = k->outer[4];
    c.Nl = 64 * 8;
    SHA1_Update(&c, inner, sizeof(inner));
    SHA1_Final(out, &c);
}

void mbms_mh_hmac_sha1(const mbms_mh_key *k, size_t n,
                       const void *const *a, const size_t *a_len,
                       const void *const *b, const size_t *b_len,
                       uint8_t *digests) {
    if (n == 0) return;
    int impl = mbms_mh_implementation();
#define MH_B(i) (b_len != NULL && b_len[i] != 0 ? b[i] : NULL)
#define MH_B_LEN(i) (b_len != NULL ? b_len[i] : 0)
    if (impl == MBMS_MH_OPENSSL) {
        for (size_t i = 0; i < n; i++) mh_openssl(k, a[i], a_len[i], MH_B(i), MH_B_LEN(i), digests + 20 * i);
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (impl == MBMS_MH_SHANI) {
        // One-part messages of one length (the SRTP batch with the ROC in place): straight to
        // the whole-HMAC kernel, no lane structs.
        int one_part = 1;
        for (size_t i = 0; i < n && one_part; i++) one_part = a_len[i] == a_len[0] && MH_B_LEN(i) == 0;
        if (one_part && mbms_mh_run_shani_one_part(k, n, a, a_len[0], digests)) return;
    }
#endif
    mbms_mh_lane lanes[MBMS_MH_CHUNK];
    for (size_t base = 0; base < n; base += MBMS_MH_CHUNK) {
        size_t m = n - base < MBMS_MH_CHUNK ? n - base : MBMS_MH_CHUNK;
        for (size_t i = 0; i < m; i++)
            mbms_mh_lane_init(&lanes[i], k, a[base + i], a_len[base + i], MH_B(base + i), MH_B_LEN(base + i),
                              digests + 20 * (base + i));
#if defined(__x86_64__) || defined(__i386__)
        if (impl == MBMS_MH_SHANI) {
            mbms_mh_run_shani(lanes, m, k);
            continue;
        }
#endif
        for (size_t i = 0; i < m; i++) {
            const uint8_t *blk;
            while ((blk = mbms_mh_lane_next(&lanes[i], k)) != NULL) mbms_mh_sha1_block_scalar(lanes[i].h, blk);
            mbms_mh_lane_finish(&lanes[i]);
        }
    }
#undef MH_B
#undef MH_B_LEN
}

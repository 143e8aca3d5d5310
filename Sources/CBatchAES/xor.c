// dst ^= src, the XOR half of counter mode (RFC 3711 4.1.1), vectorised: 32 bytes per step
// with unaligned AVX2 loads/stores where CPUID reports AVX2 (enabled per function through a
// target attribute, so no global -m flags), 8 bytes per step elsewhere.
#include "CBatchAES.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static void xor_portable(uint8_t *dst, const uint8_t *src, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, dst + i, 8);
        memcpy(&b, src + i, 8);
        a ^= b;
        memcpy(dst + i, &a, 8);
    }
    for (; i < len; i++) dst[i] ^= src[i];
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2")))
static void xor_avx2(uint8_t *dst, const uint8_t *src, size_t len) {
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(dst + i));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(dst + i + 32));
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a0, b0));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(a1, b1));
    }
    if (i + 32 <= len) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(dst + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, b));
        i += 32;
    }
    if (i + 16 <= len) {
        __m128i a = _mm_loadu_si128((const __m128i *)(dst + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, b));
        i += 16;
    }
    if (i + 8 <= len) {
        uint64_t a, b;
        memcpy(&a, dst + i, 8);
        memcpy(&b, src + i, 8);
        a ^= b;
        memcpy(dst + i, &a, 8);
        i += 8;
    }
    for (; i < len; i++) dst[i] ^= src[i];
}

static int avx2_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    // OSXSAVE and AVX, then the OS saves YMM state (XCR0 bits 1 and 2).
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 6u) != 6u) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 5)) != 0;
}
#endif

int mbms_bcm_xor_available(int impl) {
    switch (impl) {
    case MBMS_BCM_XOR_PORTABLE: return 1;
#if defined(__x86_64__) || defined(__i386__)
    case MBMS_BCM_XOR_AVX2: return avx2_supported();
#endif
    default: return 0;
    }
}

const char *mbms_bcm_xor_implementation_name(int impl) {
    switch (impl) {
    case MBMS_BCM_XOR_PORTABLE: return "portable";
    case MBMS_BCM_XOR_AVX2: return "avx2";
    default: return "unknown";
    }
}

static int xor_impl = -1;   // chosen once; a benign race (every thread computes the same value)

static int xor_choose(void) {
    const char *env = getenv("MBMS_BATCHAES_XOR");
    if (env != NULL) {
        for (int i = MBMS_BCM_XOR_PORTABLE; i <= MBMS_BCM_XOR_AVX2; i++)
            if (strcmp(env, mbms_bcm_xor_implementation_name(i)) == 0 && mbms_bcm_xor_available(i)) return i;
    }
    return mbms_bcm_xor_available(MBMS_BCM_XOR_AVX2) ? MBMS_BCM_XOR_AVX2 : MBMS_BCM_XOR_PORTABLE;
}

int mbms_bcm_xor_implementation(void) {
    int v = __atomic_load_n(&xor_impl, __ATOMIC_RELAXED);
    if (v < 0) {
        v = xor_choose();
        __atomic_store_n(&xor_impl, v, __ATOMIC_RELAXED);
    }
    return v;
}

int mbms_bcm_xor_select(int impl) {
    if (impl < 0) {
        __atomic_store_n(&xor_impl, xor_choose(), __ATOMIC_RELAXED);
        return 1;
    }
    if (!mbms_bcm_xor_available(impl)) return 0;
    __atomic_store_n(&xor_impl, impl, __ATOMIC_RELAXED);
    return 1;
}

void mbms_bcm_xor_bytes(uint8_t *dst, const uint8_t *src, size_t len) {
#if defined(__x86_64__) || defined(__i386__)
    if (mbms_bcm_xor_implementation() == MBMS_BCM_XOR_AVX2) { xor_avx2(dst, src, len); return; }
#endif
    xor_portable(dst, src, len);
}

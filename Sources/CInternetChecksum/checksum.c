// RFC 1071 Internet checksum over long regions. The sum is taken over native little-endian
// words and byte-swapped once at the end (RFC 1071 2(B): the one's-complement sum does not
// depend on byte order); 65536 = 1 mod 65535, so wider words fold to the same 16-bit sum.
#include "CInternetChecksum.h"
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

static uint32_t fold(uint64_t s) {
    s = (s & 0xFFFFFFFFu) + (s >> 32);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    return (uint32_t)s;
}

/// Native-order sum (not folded): 32-bit words, then a 16-bit word, then the odd octet (the
/// low octet of a little-endian word: its big-endian high octet, zero-padded).
static uint64_t sum_words(const uint8_t *p, size_t n) {
    uint64_t a = 0, b = 0;
    while (n >= 8) {
        uint32_t w0, w1;
        memcpy(&w0, p, 4);
        memcpy(&w1, p + 4, 4);
        a += w0;
        b += w1;
        p += 8;
        n -= 8;
    }
    if (n >= 4) { uint32_t w; memcpy(&w, p, 4); a += w; p += 4; n -= 4; }
    if (n >= 2) { uint16_t w; memcpy(&w, p, 2); b += w; p += 2; n -= 2; }
    if (n) a += *p;
    return a + b;
}

static uint32_t finish(uint64_t s) {
    uint32_t f = fold(s);
    return ((f & 0xFFu) << 8) | (f >> 8);   // to big-endian word order
}

uint32_t mbms_csum16_portable(const void *p, size_t n) { return finish(sum_words(p, n)); }

// 16-bit words zero-extended into 32-bit lanes of four accumulators: one word per lane per
// 64 octets, so a lane stays below 2^30 within a 1 MiB slice; longer regions go slice by slice.
// With `copy`, every octet summed is also stored at `d`: one pass for replay's copy-and-checksum.
// Always inlined into the two callers below with `copy` a constant, so neither loop tests it.
__attribute__((target("avx2"), always_inline))
static inline uint64_t sum_avx2_into(uint8_t *d, const uint8_t *p, size_t n, const int copy) {
    uint64_t total = 0;
    const __m256i zero = _mm256_setzero_si256();
    while (n >= 64) {
        size_t slice = n < (1u << 20) ? n : (1u << 20);
        size_t end = slice & ~(size_t)63;
        __m256i a = zero, b = zero, c = zero, e = zero;
        for (size_t i = 0; i < end; i += 64) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(p + i));
            __m256i y = _mm256_loadu_si256((const __m256i *)(p + i + 32));
            if (copy) {
                _mm256_storeu_si256((__m256i *)(d + i), x);
                _mm256_storeu_si256((__m256i *)(d + i + 32), y);
            }
            a = _mm256_add_epi32(a, _mm256_unpacklo_epi16(x, zero));
            b = _mm256_add_epi32(b, _mm256_unpackhi_epi16(x, zero));
            c = _mm256_add_epi32(c, _mm256_unpacklo_epi16(y, zero));
            e = _mm256_add_epi32(e, _mm256_unpackhi_epi16(y, zero));
        }
        // Widen to 64-bit lanes before adding the four together.
        __m256i s = _mm256_add_epi64(_mm256_add_epi64(_mm256_unpacklo_epi32(a, zero), _mm256_unpackhi_epi32(a, zero)),
                                     _mm256_add_epi64(_mm256_unpacklo_epi32(b, zero), _mm256_unpackhi_epi32(b, zero)));
        s = _mm256_add_epi64(s, _mm256_add_epi64(_mm256_unpacklo_epi32(c, zero), _mm256_unpackhi_epi32(c, zero)));
        s = _mm256_add_epi64(s, _mm256_add_epi64(_mm256_unpacklo_epi32(e, zero), _mm256_unpackhi_epi32(e, zero)));
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, s);
        total += lanes[0] + lanes[1] + lanes[2] + lanes[3];
        p += end;
        if (copy) d += end;
        n -= end;
    }
    if (copy && n) memcpy(d, p, n);
    return total + sum_words(p, n);
}

__attribute__((target("avx2")))
static uint64_t sum_avx2(const uint8_t *p, size_t n) { return sum_avx2_into(NULL, p, n, 0); }

__attribute__((target("avx2")))
static uint64_t sum_copy_avx2(uint8_t *d, const uint8_t *p, size_t n) { return sum_avx2_into(d, p, n, 1); }

static int use_avx2 = -1;

static int avx2_chosen(void) {
    int avx2 = __atomic_load_n(&use_avx2, __ATOMIC_RELAXED);
    if (avx2 < 0) {
        const char *e = getenv("MBMS_CSUM_PORTABLE");
        avx2 = (e == NULL || e[0] == '0') && __builtin_cpu_supports("avx2");
        __atomic_store_n(&use_avx2, avx2, __ATOMIC_RELAXED);
    }
    return avx2;
}

uint32_t mbms_csum16(const void *p, size_t n) {
    return finish(avx2_chosen() ? sum_avx2(p, n) : sum_words(p, n));
}

uint32_t mbms_csum16_copy(void *d, const void *p, size_t n) {
    if (avx2_chosen()) return finish(sum_copy_avx2(d, p, n));
    if (n) memcpy(d, p, n);
    return finish(sum_words(p, n));
}

uint32_t mbms_csum16_copy_portable(void *d, const void *p, size_t n) {
    if (n) memcpy(d, p, n);
    return finish(sum_words(p, n));
}

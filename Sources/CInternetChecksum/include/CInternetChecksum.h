#ifndef MBMS_CINTERNETCHECKSUM_H
#define MBMS_CINTERNETCHECKSUM_H
#include <stddef.h>
#include <stdint.h>

/// RFC 1071 one's-complement sum of n octets at p (big-endian 16-bit words, an odd last octet
/// padded with zero), folded to 16 bits, not complemented: 0...0xFFFF. AVX2 where CPUID has
/// it (chosen once), else 32-bit words into a 64-bit accumulator. `InternetChecksum.add`
/// calls it for long regions (a whole UDP datagram in replay's write stage).
uint32_t mbms_csum16(const void *p, size_t n);

/// The same without the AVX2 path (tests compare the two; MBMS_CSUM_PORTABLE=1 forces it).
uint32_t mbms_csum16_portable(const void *p, size_t n);

/// mbms_csum16(p, n), copying the n octets to d on the way (one pass over them; the regions
/// must not overlap): replay lays its output out and checksums it at once.
uint32_t mbms_csum16_copy(void *d, const void *p, size_t n);

/// The same without the AVX2 path.
uint32_t mbms_csum16_copy_portable(void *d, const void *p, size_t n);
#endif

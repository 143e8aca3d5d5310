#!/usr/bin/env python3
"""Generates Sources/CMultiHash/sha1_shani_asm.h: SHA-1 compression (FIPS 180-4 6.1.2) of
W = 1...4 independent messages, nblk consecutive 64-byte blocks each, with the Intel SHA
extensions and a hand-made register allocation (GNU inline assembly, AT&T syntax).

    python3 Tools/gen_shani_asm.py > Sources/CMultiHash/sha1_shani_asm.h

Why hand allocation: four interleaved lanes are what keeps SHA1RNDS4 busy (latency about
6 cycles, one issue every 2 cycles on the AMD Zen 3 box, so a lane's next round group may
start 8 cycles after its previous one: only 2 cycles of slack). A lane has 7 live values
(ABCD, two E registers, the 4-quad message window) = 28 for 4 lanes in 16 XMM registers;
compilers spill whichever they like, including ABCD/E on the round chain, and every extra
cycle there is lost. Here each lane owns 4 registers: ABCD, plus three that rotate through
the roles E (this group's), M (the newest message quad, W[4g-4..4g-1], the input of the
schedule recurrence) and a free one; the three older quads live in a 64-byte ring on the
stack (they are needed 2-4 groups later, far off any chain). Chaining values stay in
registers across the nblk blocks of a call.

Per round group g (FIPS 180-4 6.1.2 steps 1-3, four rounds t = 4g...4g+3):
    Z  = W[4g..]    g < 4: the block's words, byte-reversed (big-endian, FIPS 180-4 3.1)
                    g >= 4: SHA1MSG2(SHA1MSG1(W[g-4], W[g-3]) ^ W[g-2], W[g-1]), i.e.
                    W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16])
    ring[g-1] = M   (kept while groups up to 19 still read it)
    X  = SHA1NEXTE(X, Z)  E of round 4g: ROTL30(A of four rounds back) + W (g = 0: E + W)
    Y  = ABCD             saved for the next group's SHA1NEXTE
    ABCD = SHA1RNDS4(ABCD, X, g / 5)   f and K of FIPS 180-4 4.1.1 / 4.2.1
    roles (X, Y, Z) -> (Y, Z, X)
After group 19: H4 += E (SHA1NEXTE of the saved ABCD into the saved E), ABCD += saved ABCD
(FIPS 180-4 6.1.2 step 4).
"""

def kernel(W):
    A = [f"%%xmm{l}" for l in range(W)]
    R = [[f"%%xmm{4 + 3 * l + i}" for i in range(3)] for l in range(W)]
    # st layout (bytes): ABCD[4] @0, E (H4 in the top dword) [4] @64, ABCD at block start [4] @128,
    # message ring [lane][4 quads] @192.
    def ring(l, g): return f"{192 + 64 * l + 16 * (g % 4)}(%[st])"
    out = []
    e = out.append
    for l in range(W):
        e(f"movdqa {16 * l}(%[st]), {A[l]}")
    e("1:")
    for l in range(W):
        e(f"movdqa {A[l]}, {128 + 16 * l}(%[st])")
    roles = [[R[l][0], R[l][1], R[l][2]] for l in range(W)]   # X = E, Y = newest quad, Z = free
    for g in range(20):
        for l in range(W):
            X, Y, Z = roles[l]
            if g < 4:
                e(f"movdqu {16 * g}(%[p{l}]), {Z}")
                e(f"pshufb (%[mask]), {Z}")
            else:
                e(f"movdqa {ring(l, g - 4)}, {Z}")
                e(f"sha1msg1 {ring(l, g - 3)}, {Z}")
                e(f"pxor {ring(l, g - 2)}, {Z}")
                e(f"sha1msg2 {Y}, {Z}")
            if 1 <= g <= 18:   # quad g-1 is read again by groups g+1...g+3 (<= 19)
                e(f"movdqa {Y}, {ring(l, g - 1)}")
            if g == 0:
                e(f"movdqa {64 + 16 * l}(%[st]), {X}")
                e(f"paddd {Z}, {X}")
            else:
                e(f"sha1nexte {Z}, {X}")
            e(f"movdqa {A[l]}, {Y}")
            e(f"sha1rnds4 ${g // 5}, {X}, {A[l]}")
            roles[l] = [Y, Z, X]
    for l in range(W):
        X = roles[l][0]    # ABCD saved by group 19 (the state after round 75)
        e(f"sha1nexte {64 + 16 * l}(%[st]), {X}")
        e(f"movdqa {X}, {64 + 16 * l}(%[st])")
        e(f"paddd {128 + 16 * l}(%[st]), {A[l]}")
    for l in range(W):
        e(f"add $64, %[p{l}]")
    e("dec %[n]")
    e("jnz 1b")
    for l in range(W):
        e(f"movdqa {A[l]}, {16 * l}(%[st])")
    body = "\n".join('        "' + s + '\\n\\t"' for s in out)
    ptrs = ", ".join(f'[p{l}] "+r" (p{l})' for l in range(W))
    regs = ", ".join(f'"xmm{i}"' for i in range(4 + 3 * W) if i < W or i >= 4)
    decl = " ".join(f"const uint8_t *p{l} = blk[{l}];" for l in range(W))
    return f'''
/// {W} lane(s), nblk >= 1 consecutive blocks each (lane l: blk[l], blk[l] + 64, ...).
static __attribute__((noinline)) MH_TARGET
void mh_shani_asm_x{W}(uint32_t *const h[], const uint8_t *const blk[], size_t nblk) {{
    __attribute__((aligned(16))) uint8_t st[192 + 64 * {W}];
    for (int l = 0; l < {W}; l++) {{
        _mm_store_si128((__m128i *)(st + 16 * l), _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h[l]), 0x1B));
        _mm_store_si128((__m128i *)(st + 64 + 16 * l), _mm_set_epi32((int)h[l][4], 0, 0, 0));
    }}
    {decl}
    size_t n = nblk;
    __asm__ volatile(
{body}
        : {ptrs}, [n] "+r" (n)
        : [st] "r" (st), [mask] "r" (mh_asm_bswap_mask)
        : "memory", "cc", {regs});
    for (int l = 0; l < {W}; l++) {{
        _mm_storeu_si128((__m128i *)h[l], _mm_shuffle_epi32(_mm_load_si128((const __m128i *)(st + 16 * l)), 0x1B));
        h[l][4] = (uint32_t)_mm_extract_epi32(_mm_load_si128((const __m128i *)(st + 64 + 16 * l)), 3);
    }}
}}
'''

print("// Generated by Tools/gen_shani_asm.py -- do not edit; see that script for the design.")
print("// Included by sha1_shani.c (x86-64 only: it needs xmm8-15 and seven general registers).")
print("static const __attribute__((aligned(16))) uint8_t mh_asm_bswap_mask[16] = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};")
for w in range(1, 5):
    print(kernel(w))

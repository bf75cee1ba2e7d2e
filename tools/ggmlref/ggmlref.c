// ggmlref writes golden quantization data for formats/gguf from ggml's own
// reference code: for each tensor type, float32 inputs, the blocks that
// ggml's quantize_row_*_ref makes of them and what dequantize_row_* makes of
// those blocks, plus random blocks (random bytes, finite fp16 scales) and
// their dequantized values. It is compiled by gen.sh together with ggml's
// ggml-quants.c from llama.cpp's source; nothing of ggml is committed.
//
// Output, one file per type, little-endian:
//
//   "GGMLREF1" | u32 type | u32 block elements | u32 block bytes
//   u32 nq | f32 x[nq*bs] | u8 q[nq*bb] | f32 dq[nq*bs]
//   u32 nr | u8 r[nr*bb]  | f32 dr[nr*bs]
//
// For F32, F16 and BF16 "quantizing" is ggml's own conversion
// (GGML_FP32_TO_FP16, GGML_FP32_TO_BF16) and the random blocks are random
// bit patterns, NaNs and infinities included.

#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml-impl.h"
#include "ggml-quants.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ggml-quants.c needs these from ggml.c; the reference functions used here
// never call them.
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d\n", file, line);
    abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void)type; (void)ne; abort(); }
const char *ggml_type_name(enum ggml_type type) { (void)type; return "?"; }
size_t ggml_type_size(enum ggml_type type) { (void)type; abort(); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) {
    // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double rng_unif(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0; }

static double rng_norm(void) {
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// fill_block writes n inputs of one of several shapes (cls).
static void fill_block(float *x, int n, int cls) {
    switch (cls % 11) {
    case 0: for (int i = 0; i < n; i++) x[i] = (float)rng_norm(); break;
    case 1: for (int i = 0; i < n; i++) x[i] = (float)(0.02 * rng_norm()); break;
    case 2: // outliers
        for (int i = 0; i < n; i++) x[i] = (float)(0.05 * rng_norm());
        for (int k = 0; k < 3; k++) x[rng_u64() % n] = (float)(2.0 * rng_norm());
        break;
    case 3: for (int i = 0; i < n; i++) x[i] = 0.0f; break;
    case 4: for (int i = 0; i < n; i++) x[i] = 0.375f; break;
    case 5: for (int i = 0; i < n; i++) x[i] = (float)rng_unif(); break;
    case 6: for (int i = 0; i < n; i++) x[i] = (float)(1e-6 * rng_norm()); break;
    case 7: for (int i = 0; i < n; i++) x[i] = (float)(1000.0 * rng_norm()); break;
    case 8: for (int i = 0; i < n; i++) x[i] = (i % 2) ? 0.0f : (float)rng_norm(); break;
    case 9: for (int i = 0; i < n; i++) x[i] = (float)(-rng_unif() - 0.5); break;
    case 10: // small integers: exact scales
        for (int i = 0; i < n; i++) x[i] = (float)((int)(rng_u64() % 17) - 8);
        break;
    }
}

typedef void (*quant_fn)(const float *x, void *y, int64_t k);
typedef void (*dequant_fn)(const void *x, float *y, int64_t k);

static void q_f32(const float *x, void *y, int64_t k) { memcpy(y, x, 4 * k); }
static void d_f32(const void *x, float *y, int64_t k) { memcpy(y, x, 4 * k); }
static void q_f16(const float *x, void *y, int64_t k) {
    ggml_fp16_t *h = y;
    for (int64_t i = 0; i < k; i++) h[i] = GGML_FP32_TO_FP16(x[i]);
}
static void d_f16(const void *x, float *y, int64_t k) {
    const ggml_fp16_t *h = x;
    for (int64_t i = 0; i < k; i++) y[i] = GGML_FP16_TO_FP32(h[i]);
}
static void q_bf16(const float *x, void *y, int64_t k) {
    ggml_bf16_t *h = y;
    for (int64_t i = 0; i < k; i++) h[i] = GGML_FP32_TO_BF16(x[i]);
}
static void d_bf16(const void *x, float *y, int64_t k) {
    const ggml_bf16_t *h = x;
    for (int64_t i = 0; i < k; i++) y[i] = GGML_BF16_TO_FP32(h[i]);
}

struct qtype {
    const char *name;
    int id, bs, bb;
    quant_fn q;
    dequant_fn dq;
    int half_at[2]; // byte offsets of fp16 scale fields in a block, -1 if none
    int nq, nr;
};

#define Q(f) ((quant_fn)(f))
#define D(f) ((dequant_fn)(f))

static const struct qtype types[] = {
    {"F32", 0, 1, 4, q_f32, d_f32, {-1, -1}, 352, 256},
    {"F16", 1, 1, 2, q_f16, d_f16, {-1, -1}, 352, 2048},
    {"BF16", 30, 1, 2, q_bf16, d_bf16, {-1, -1}, 352, 2048},
    {"Q4_0", 2, 32, 18, Q(quantize_row_q4_0_ref), D(dequantize_row_q4_0), {0, -1}, 22, 16},
    {"Q4_1", 3, 32, 20, Q(quantize_row_q4_1_ref), D(dequantize_row_q4_1), {0, 2}, 22, 16},
    {"Q5_0", 6, 32, 22, Q(quantize_row_q5_0_ref), D(dequantize_row_q5_0), {0, -1}, 22, 16},
    {"Q5_1", 7, 32, 24, Q(quantize_row_q5_1_ref), D(dequantize_row_q5_1), {0, 2}, 22, 16},
    {"Q8_0", 8, 32, 34, Q(quantize_row_q8_0_ref), D(dequantize_row_q8_0), {0, -1}, 22, 16},
    {"Q2_K", 10, 256, 84, Q(quantize_row_q2_K_ref), D(dequantize_row_q2_K), {80, 82}, 22, 8},
    {"Q3_K", 11, 256, 110, Q(quantize_row_q3_K_ref), D(dequantize_row_q3_K), {108, -1}, 22, 8},
    {"Q4_K", 12, 256, 144, Q(quantize_row_q4_K_ref), D(dequantize_row_q4_K), {0, 2}, 22, 8},
    {"Q5_K", 13, 256, 176, Q(quantize_row_q5_K_ref), D(dequantize_row_q5_K), {0, 2}, 22, 8},
    {"Q6_K", 14, 256, 210, Q(quantize_row_q6_K_ref), D(dequantize_row_q6_K), {208, -1}, 22, 8},
    {"IQ4_NL", 20, 32, 18, Q(quantize_row_iq4_nl_ref), D(dequantize_row_iq4_nl), {0, -1}, 22, 16},
    {"IQ4_XS", 23, 256, 136, Q(quantize_row_iq4_xs_ref), D(dequantize_row_iq4_xs), {0, -1}, 22, 8},
};

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }

// random_finite_half returns a random fp16 bit pattern that is finite.
static uint16_t random_finite_half(void) {
    for (;;) {
        uint16_t h = (uint16_t)rng_u64();
        if (((h >> 10) & 0x1f) != 0x1f) return h;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ggmlref OUTDIR\n");
        return 2;
    }
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        const struct qtype *ty = &types[t];
        rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(ty->id + 1) * 0x100000001B3ull;
        int nq = ty->nq, nr = ty->nr, bs = ty->bs, bb = ty->bb;
        float *x = malloc(sizeof(float) * nq * bs);
        uint8_t *q = calloc(nq, bb);
        float *dq = malloc(sizeof(float) * nq * bs);
        uint8_t *r = malloc((size_t)nr * bb);
        float *dr = malloc(sizeof(float) * nr * bs);
        // Inputs come in runs of 32 elements of one shape (a whole block
        // for 32-element types; 8 runs per K-type block) so that each type
        // sees every shape; the first block is never all zeros.
        int run = 32;
        for (int i = 0; i < nq * bs / run; i++) {
            int cls = i;
            if (bs > run && i / (bs / run) < 11) cls = i / (bs / run);
            fill_block(x + i * run, run, cls);
        }
        if (bs == 1) { // conversion edge cases in the last run
            static const uint32_t special[] = {
                0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001,
                0x7f800001, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, 0x387fc000,
                0x33800000, 0x33000000, 0x33000001, 0x337fffff, 0x38800000, 0x3f801000,
                0x3f803000, 0x3f808000, 0x3f818000, 0x3f7fffff, 0x00000001, 0x807fffff,
                0x7f7fffff, 0xc2f6e979, 0x3dcccccd, 0x3f800001, 0x3f817fff, 0x38000000,
                0x37ffffff, 0xb8001000,
            };
            memcpy(x + nq * bs - 32, special, sizeof(special));
        }
        ty->q(x, q, (int64_t)nq * bs);
        ty->dq(q, dq, (int64_t)nq * bs);
        for (size_t i = 0; i < (size_t)nr * bb; i++) r[i] = (uint8_t)rng_u64();
        for (int b = 0; b < nr; b++) {
            for (int k = 0; k < 2; k++) {
                if (ty->half_at[k] >= 0) {
                    uint16_t h = random_finite_half();
                    memcpy(r + (size_t)b * bb + ty->half_at[k], &h, 2);
                }
            }
        }
        ty->dq(r, dr, (int64_t)nr * bs);

        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.bin", argv[1], ty->name);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        fwrite("GGMLREF1", 1, 8, f);
        put_u32(f, ty->id);
        put_u32(f, bs);
        put_u32(f, bb);
        put_u32(f, nq);
        fwrite(x, sizeof(float), (size_t)nq * bs, f);
        fwrite(q, 1, (size_t)nq * bb, f);
        fwrite(dq, sizeof(float), (size_t)nq * bs, f);
        put_u32(f, nr);
        fwrite(r, 1, (size_t)nr * bb, f);
        fwrite(dr, sizeof(float), (size_t)nr * bs, f);
        if (fclose(f) != 0) {
            perror(path);
            return 1;
        }
        free(x); free(q); free(dq); free(r); free(dr);
    }
    return 0;
}

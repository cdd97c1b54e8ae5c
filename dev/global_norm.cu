/*
 * dev/global_norm.cu — harness for global_norm_squared(_acc), clip_factor and nonfinite_flag
 * (common/adamw.cuh): the sum of squares against a double CPU sum at several lengths (1 element up to
 * the GLA-340M parameter count), accumulation over two ranges, bit-identical reruns, the clip factor's
 * three regimes, and the non-finite flag. Timed on 374,475,776 floats (one pass over the gradients).
 *
 *   ./dev/global_norm [--check] [-N 374475776] [--reps 50]
 *   v1: production global_norm_squared from common/adamw.cuh
 */
#include "../common/adamw.cuh"
#include "harness.h"

static uint64_t g_seed = 31337;

static float host_norm2_to_dev_and_back(float* d_out, const float* d_g, size_t n, float* scratch, int acc) {
    global_norm_squared_acc(d_out, d_g, n, scratch, acc, 0);
    float r;
    CUDA_CHECK(cudaMemcpy(&r, d_out, sizeof(float), cudaMemcpyDeviceToHost));
    return r;
}

static int check_len(size_t n) {
    float* h = (float*)malloc_check(sizeof(float) * n);
    fill_uniform(h, n, -1e-3f, 1e-3f, g_seed++);
    float* g = upload_f32(h, n);
    float* out = (float*)dmalloc(sizeof(float));
    float* scratch = (float*)dmalloc(sizeof(float) * global_norm_scratch_floats());
    poison(out, sizeof(float));
    poison(scratch, sizeof(float) * global_norm_scratch_floats());
    float got = host_norm2_to_dev_and_back(out, g, n, scratch, 0);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)h[i] * h[i];
    char what[128];
    snprintf(what, sizeof what, "norm^2 n=%zu", n);
    int fails = check_report(what, &ref, &got, 1, 1e-5);
    float again = host_norm2_to_dev_and_back(out, g, n, scratch, 0);
    int same = !memcmp(&got, &again, sizeof(float));
    printf("%s norm^2 deterministic n=%zu (bit-identical rerun)\n", same ? "PASS" : "FAIL", n);
    fails += !same;
    /* two ranges: [0, n/3) then [n/3, n) accumulated */
    if (n >= 3) {
        size_t k = n / 3;
        host_norm2_to_dev_and_back(out, g, k, scratch, 0);
        float two = host_norm2_to_dev_and_back(out, g + k, n - k, scratch, 1);
        snprintf(what, sizeof what, "norm^2 accumulated over 2 ranges n=%zu", n);
        fails += check_report(what, &ref, &two, 1, 1e-5);
    }
    free(h);
    CUDA_CHECK(cudaFree(g)); CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(scratch));
    return fails;
}

static int check_clip(void) {
    int fails = 0;
    float* d = (float*)dmalloc(2 * sizeof(float));
    int* flag = (int*)dmalloc(sizeof(int));
    struct { float norm2, max_norm, want; int nonfinite; } cases[] = {
        {16.0f, 1.0f, 1.0f / (4.0f + 1e-6f), 0}, /* clipped */
        {0.25f, 1.0f, 1.0f, 0},                  /* below max: no clipping */
        {16.0f, 0.0f, 1.0f, 0},                  /* clipping off */
        {INFINITY, 1.0f, NAN, 1},                /* non-finite: NaN scale => adamw skips */
        {NAN, 1.0f, NAN, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float h[2] = {cases[i].norm2, -1.0f};
        CUDA_CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
        clip_factor(d + 1, d, cases[i].max_norm, 0);
        nonfinite_flag(flag, d, 0);
        int hf = -1;
        CUDA_CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(&hf, flag, sizeof(int), cudaMemcpyDeviceToHost));
        int ok = (isnan(cases[i].want) ? isnan(h[1]) : fabsf(h[1] - cases[i].want) <= 1e-6f * cases[i].want) &&
                 hf == cases[i].nonfinite;
        printf("%s clip_factor norm2=%g max_norm=%g -> scale %g, nonfinite flag %d\n", ok ? "PASS" : "FAIL",
               cases[i].norm2, cases[i].max_norm, h[1], hf);
        fails += !ok;
    }
    CUDA_CHECK(cudaFree(d)); CUDA_CHECK(cudaFree(flag));
    return fails;
}

typedef struct { float *out, *g, *scratch; size_t n; } Ctx;
static void run_norm(void* c_) {
    Ctx* c = (Ctx*)c_;
    global_norm_squared(c->out, c->g, c->n, c->scratch, 0);
}
__global__ void fill_dev_kernel(float* x, size_t n, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = (float)(hash_u32((uint32_t)i, seed) >> 8) * (1.0f / 16777216.0f) - 0.5f;
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("global_norm");
    if (a.check) {
        int fails = 0;
        fails += check_len(1);
        fails += check_len(1000);
        fails += check_len(1000003);
        fails += check_len(374475776);
        fails += check_clip();
        printf("%s global_norm: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    Ctx c;
    c.n = (size_t)harness_get(&a, 'N', 374475776L);
    c.g = (float*)dmalloc(sizeof(float) * c.n);
    c.out = (float*)dmalloc(sizeof(float));
    c.scratch = (float*)dmalloc(sizeof(float) * global_norm_scratch_floats());
    fill_dev_kernel<<<1024, 256>>>(c.g, c.n, 5);
    CUDA_KERNEL_CHECK();
    float ms = time_kernel(run_norm, &c, a.reps);
    char what[96];
    snprintf(what, sizeof what, "v1 global_norm_squared n=%zu", c.n);
    time_report(what, ms, 4.0 * c.n, 0);
    return 0;
}

/*
 * sampler.h — picks the next token from a row of float logits [Vc]: softmax with temperature,
 * optional top-k, and inverse-CDF sampling with a caller-supplied uniform number `coin` in [0,1), so
 * the choice is a pure function of (logits, temperature, top_k, coin): same rng state, same tokens.
 * temperature <= 0 or top_k == 1 is greedy (argmax, lowest index on ties). NaN logits are never
 * chosen. Top-k ties at the threshold are broken by lower index, so exactly k tokens are eligible.
 * Plain C.
 */
#ifndef COMMON_SAMPLER_H
#define COMMON_SAMPLER_H

#include <math.h>
#include <stdlib.h>

static inline int sample_argmax(const float* logits, int n) {
    int best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > bv) { bv = logits[i]; best = i; }   /* NaN compares false: skipped */
    return best;
}

/* probs[i] = softmax(logits / temperature)[i] (temperature > 0); NaN logits get 0 */
static inline void sampler_softmax(float* probs, const float* logits, int n, float temperature) {
    float mx = logits[sample_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += isnan(logits[i]) ? 0.0 : exp((double)(logits[i] - mx) / temperature);
    for (int i = 0; i < n; i++)
        probs[i] = isnan(logits[i]) ? 0.0f : (float)(exp((double)(logits[i] - mx) / temperature) / sum);
}

/* the k-th largest value (k in 1..n) of a[0..n), reordering a; NaNs must have been replaced */
static inline float sampler_kth_largest_(float* a, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;   /* index in descending order */
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) { float t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

/* Samples an index of logits[0..n). scratch: n floats for top-k (NULL: allocated here when needed). */
static inline int sample_logits(const float* logits, int n, float temperature, int top_k, float coin,
                                float* scratch) {
    if (n <= 0) return 0;
    if (temperature <= 0.0f || top_k == 1) return sample_argmax(logits, n);
    float mx = logits[sample_argmax(logits, n)];
    float thr = -INFINITY;
    int ties_allowed = n;   /* how many logits equal to thr may still be taken */
    if (top_k > 0 && top_k < n) {
        float* a = scratch ? scratch : (float*)malloc(sizeof(float) * (size_t)n);
        if (!a) return sample_argmax(logits, n);
        for (int i = 0; i < n; i++) a[i] = isnan(logits[i]) ? -INFINITY : logits[i];
        thr = sampler_kth_largest_(a, n, top_k);
        if (!scratch) free(a);
        int greater = 0;
        for (int i = 0; i < n; i++) greater += logits[i] > thr;
        ties_allowed = top_k - greater;
    }
    /* pass 1: total weight of the eligible set; pass 2: walk the CDF to coin * total */
    double total = 0.0;
    int ties = ties_allowed;
    for (int i = 0; i < n; i++) {
        if (!(logits[i] >= thr) || (logits[i] == thr && ties-- <= 0)) continue;
        total += exp((double)(logits[i] - mx) / temperature);
    }
    double target = (double)coin * total, cum = 0.0;
    int last = sample_argmax(logits, n);
    ties = ties_allowed;
    for (int i = 0; i < n; i++) {
        if (!(logits[i] >= thr) || (logits[i] == thr && ties-- <= 0)) continue;
        cum += exp((double)(logits[i] - mx) / temperature);
        last = i;
        if (cum > target) return i;
    }
    return last;   /* coin ~ 1 with rounding: the last eligible token */
}

#endif /* COMMON_SAMPLER_H */

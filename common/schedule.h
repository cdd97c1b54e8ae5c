/*
 * schedule.h — the learning-rate schedule: linear warm-up, then cosine / WSD / constant / linear decay.
 * Plain C. Conventions, chosen so the tests can state them exactly:
 *   - step counts from 0; warm-up gives step s < warmup the rate peak*(s+1)/warmup (never 0, so the
 *     first optimizer step already moves the weights);
 *   - the decay ends ON the last step: lr_at(total_steps-1) == peak*min_frac (and any later step);
 *   - WSD (warm-up, stable, decay): peak until the last decay_frac*total_steps steps, then linear to
 *     peak*min_frac over those steps.
 * The order of LrSchedule matches LR_SCHEDULE_CHOICES, which args.h uses for --schedule.
 */
#ifndef COMMON_SCHEDULE_H
#define COMMON_SCHEDULE_H

#include <math.h>

typedef enum { LR_COSINE = 0, LR_WSD = 1, LR_CONSTANT = 2, LR_LINEAR = 3 } LrSchedule;
#define LR_SCHEDULE_CHOICES "cosine|wsd|constant|linear"

/* fraction of the way from `begin` to `end` (the last step), clamped to [0,1] */
static inline double lr_progress_(long step, long begin, long end) {
    if (end <= begin) return step >= begin ? 1.0 : 0.0;
    double p = (double)(step - begin) / (double)(end - begin);
    return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
}

static inline float lr_at(long step, long total_steps, long warmup, float peak, float min_frac, int kind,
                          float decay_frac) {
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    double lo = (double)peak * min_frac, hi = peak;
    long last = total_steps - 1;
    double p;
    switch (kind) {
    case LR_CONSTANT: return peak;
    case LR_LINEAR:
        p = lr_progress_(step, warmup, last);
        return (float)(hi + (lo - hi) * p);
    case LR_WSD: {
        long ndecay = (long)llround((double)decay_frac * (double)total_steps);
        long decay_begin = total_steps - ndecay;
        if (decay_begin < warmup) decay_begin = warmup;
        if (ndecay <= 0 || step < decay_begin) return peak;
        p = lr_progress_(step, decay_begin, last);
        return (float)(hi + (lo - hi) * p);
    }
    case LR_COSINE:
    default:
        p = lr_progress_(step, warmup, last);
        return (float)(lo + (hi - lo) * 0.5 * (1.0 + cos(3.14159265358979323846 * p)));
    }
}

#endif /* COMMON_SCHEDULE_H */

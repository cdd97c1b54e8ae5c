// test/test_mamba_ref.c -- checks the double-precision Mamba-1 references (test/ref_mamba_op.h, test/ref_mamba.h)
// against central finite differences, and the chunked scan against the plain one. CPU only, no GPU.
// Build: make test/test_mamba_ref (gcc -std=c11 -O2 -Wall -D_DEFAULT_SOURCE -Icommon -Itest test/test_mamba_ref.c -lm)
// Prints `PASS name` / `FAIL name: ...` per check; exits non-zero if any check fails.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "rng.h"
#include "ref_mamba_op.h"
#include "ref_mamba.h"
#include "check.h"

static double* rand_normal(Rng* r, size_t n, double scale, double shift) {
    double* p = ref_mop_alloc(n);
    for (size_t i = 0; i < n; i++) p[i] = shift + scale * rng_normal(r);
    return p;
}

static double max_abs_diff(const double* a, const double* b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}
static double max_abs(const double* a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

// ---------------------------------------------------------------------------------------------------------------
// op level: scalar loss = sum(out .* R) with a fixed random R, so d loss / d out = R.

typedef struct {
    int B, T, Di, N, W;
    double *x, *cw, *cb;                                        // conv inputs
    double *u, *dt_raw, *z, *Bm, *Cm, *A_log, *Dskip, *dt_bias; // scan inputs
    double *R;                                                  // weights of the scalar loss, [B][T][Di]
} OpCase;

static double conv_loss(OpCase* c) {
    size_t n = (size_t)c->B * c->T * c->Di;
    double* u = ref_mop_alloc(n);
    ref_conv1d_silu_forward(u, c->x, c->cw, c->cb, c->B, c->T, c->Di, c->W);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += u[i] * c->R[i];
    free(u);
    return s;
}
static double scan_loss(OpCase* c) {
    size_t n = (size_t)c->B * c->T * c->Di;
    double* y = ref_mop_alloc(n);
    ref_selective_scan_forward(y, NULL, c->u, c->dt_raw, c->z, c->Bm, c->Cm, c->A_log, c->Dskip, c->dt_bias,
                               c->B, c->T, c->Di, c->N);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += y[i] * c->R[i];
    free(y);
    return s;
}

// central differences on every entry of p[0..n) against the analytic gradient g; metric max|num-ana| / max|ana|
static void fd_tensor(const char* name, double (*loss)(OpCase*), OpCase* c, double* p, const double* g, size_t n,
                      double h, double tol) {
    double maxd = 0.0, maxg = 0.0;
    for (size_t i = 0; i < n; i++) {
        double p0 = p[i];
        p[i] = p0 + h; double lp = loss(c);
        p[i] = p0 - h; double lm = loss(c);
        p[i] = p0;
        double num = (lp - lm) / (2.0 * h);
        maxd = fmax(maxd, fabs(num - g[i]));
        maxg = fmax(maxg, fabs(g[i]));
    }
    double rel = maxd / fmax(maxg, 1e-300);
    int ok = rel < tol && maxg > 0.0;
    check_line(ok, ok ? "%s (max|num-ana|/max|ana| %.1e)" : "%s: max|num-ana|/max|ana| = %.3e (max|ana| %.3e)", name, rel,
               maxg);
}

static OpCase make_op_case(uint64_t seed, int B, int T, int Di, int N, int W) {
    Rng r = rng_seed(seed);
    OpCase c;
    c.B = B; c.T = T; c.Di = Di; c.N = N; c.W = W;
    size_t M = (size_t)B * T;
    c.x = rand_normal(&r, M * Di, 1.0, 0.0);
    c.cw = rand_normal(&r, (size_t)Di * W, 0.5, 0.0);
    c.cb = rand_normal(&r, (size_t)Di, 0.5, 0.0);
    c.u = rand_normal(&r, M * Di, 1.0, 0.0);
    c.dt_raw = rand_normal(&r, M * Di, 0.7, 0.0);
    c.z = rand_normal(&r, M * Di, 1.0, 0.0);
    c.Bm = rand_normal(&r, M * N, 1.0, 0.0);
    c.Cm = rand_normal(&r, M * N, 1.0, 0.0);
    c.A_log = ref_mop_alloc((size_t)Di * N);
    for (int d = 0; d < Di; d++)
        for (int n = 0; n < N; n++) c.A_log[(size_t)d * N + n] = log((double)(n + 1)) + 0.3 * rng_normal(&r);
    c.Dskip = rand_normal(&r, (size_t)Di, 0.5, 1.0);
    c.dt_bias = ref_mop_alloc((size_t)Di);
    for (int d = 0; d < Di; d++) c.dt_bias[d] = rng_uniform_in(&r, -3.0, 0.5);
    c.dt_raw[3 * Di + 1] = 25.0;                 // one step takes softplus's identity branch (v > 20)
    c.R = rand_normal(&r, M * Di, 1.0, 0.0);
    return c;
}

static void free_op_case(OpCase* c) {
    free(c->x); free(c->cw); free(c->cb); free(c->u); free(c->dt_raw); free(c->z); free(c->Bm); free(c->Cm);
    free(c->A_log); free(c->Dskip); free(c->dt_bias); free(c->R);
}

static void test_conv_op(void) {
    OpCase c = make_op_case(11, 2, 37, 5, 3, 4);
    size_t n = (size_t)c.B * c.T * c.Di;
    double* dx = ref_mop_alloc(n);
    double* dw = ref_mop_alloc((size_t)c.Di * c.W);
    double* db = ref_mop_alloc((size_t)c.Di);
    ref_conv1d_silu_backward(dx, dw, db, c.R, c.x, c.cw, c.cb, c.B, c.T, c.Di, c.W);
    fd_tensor("conv1d_silu dx", conv_loss, &c, c.x, dx, n, 1e-5, 1e-7);
    fd_tensor("conv1d_silu dw", conv_loss, &c, c.cw, dw, (size_t)c.Di * c.W, 1e-5, 1e-7);
    fd_tensor("conv1d_silu db", conv_loss, &c, c.cb, db, (size_t)c.Di, 1e-5, 1e-7);
    // dw, db accumulate; dx is overwritten
    double* dw2 = ref_mop_alloc((size_t)c.Di * c.W);
    double* db2 = ref_mop_alloc((size_t)c.Di);
    for (size_t i = 0; i < n; i++) dx[i] = 1e30;
    memcpy(dw2, dw, (size_t)c.Di * c.W * sizeof(double));
    memcpy(db2, db, (size_t)c.Di * sizeof(double));
    ref_conv1d_silu_backward(dx, dw2, db2, c.R, c.x, c.cw, c.cb, c.B, c.T, c.Di, c.W);
    double e = 0.0;
    for (int i = 0; i < c.Di * c.W; i++) e = fmax(e, fabs(dw2[i] - 2.0 * dw[i]));
    for (int i = 0; i < c.Di; i++) e = fmax(e, fabs(db2[i] - 2.0 * db[i]));
    check(e < 1e-12 && max_abs(dx, n) < 1e29, "conv1d_silu dw/db accumulate, dx written", "err %.3e %.3e", e, 0.0);
    free(dx); free(dw); free(db); free(dw2); free(db2);
    free_op_case(&c);
}

// stiff: channel 0 gets delta ~ 300, so exp(delta A) is ~1e-131 or underflows to 0 -- a reconstruction of h_{t-1}
// by division would produce inf/nan there; the reverse recurrence of mamba.md 2.2 must stay exact.
static void test_scan_op(uint64_t seed, int stiff) {
    OpCase c = make_op_case(seed, 2, 37, 5, 3, 4);
    if (stiff) c.dt_bias[0] = 300.0;
    int B = c.B, T = c.T, Di = c.Di, N = c.N;
    size_t n = (size_t)B * T * Di, nb = (size_t)B * T * N;
    double *du = ref_mop_alloc(n), *ddt = ref_mop_alloc(n), *dz = ref_mop_alloc(n);
    double *dB = ref_mop_alloc(nb), *dC = ref_mop_alloc(nb);
    double *dAl = ref_mop_alloc((size_t)Di * N), *dD = ref_mop_alloc((size_t)Di), *dbias = ref_mop_alloc((size_t)Di);
    ref_selective_scan_backward(du, ddt, dz, dB, dC, dAl, dD, dbias, c.R, c.u, c.dt_raw, c.z, c.Bm, c.Cm,
                                c.A_log, c.Dskip, c.dt_bias, B, T, Di, N);
    const char* what[8] = {"du", "ddt_raw", "dz", "dB", "dC", "dA_log", "dDskip", "ddt_bias"};
    double* inputs[8] = {c.u, c.dt_raw, c.z, c.Bm, c.Cm, c.A_log, c.Dskip, c.dt_bias};
    const double* grads[8] = {du, ddt, dz, dB, dC, dAl, dD, dbias};
    size_t sizes[8] = {n, n, n, nb, nb, (size_t)Di * N, (size_t)Di, (size_t)Di};
    for (int k = 0; k < 8; k++) {
        char name[96];
        snprintf(name, sizeof name, "selective_scan%s %s", stiff ? " (stiff: exp(delta A) underflows)" : "", what[k]);
        fd_tensor(name, scan_loss, &c, inputs[k], grads[k], sizes[k], 1e-5, 1e-7);
    }
    {   // du..dC written (poisoned first), dA_log / dDskip / ddt_bias accumulate (a second call doubles them)
        double *w[5] = {ref_mop_alloc(n), ref_mop_alloc(n), ref_mop_alloc(n), ref_mop_alloc(nb), ref_mop_alloc(nb)};
        double *a2 = ref_mop_alloc((size_t)Di * N), *d2 = ref_mop_alloc((size_t)Di), *b2 = ref_mop_alloc((size_t)Di);
        for (int k = 0; k < 5; k++) for (size_t i = 0; i < (k < 3 ? n : nb); i++) w[k][i] = 1e30;
        memcpy(a2, dAl, (size_t)Di * N * sizeof(double));
        memcpy(d2, dD, (size_t)Di * sizeof(double));
        memcpy(b2, dbias, (size_t)Di * sizeof(double));
        ref_selective_scan_backward(w[0], w[1], w[2], w[3], w[4], a2, d2, b2, c.R, c.u, c.dt_raw, c.z, c.Bm, c.Cm,
                                    c.A_log, c.Dskip, c.dt_bias, B, T, Di, N);
        double e = 0.0;
        for (int k = 0; k < 5; k++) e = fmax(e, max_abs_diff(w[k], grads[k], k < 3 ? n : nb));
        for (int i = 0; i < Di * N; i++) e = fmax(e, fabs(a2[i] - 2.0 * dAl[i]));
        for (int i = 0; i < Di; i++) e = fmax(e, fabs(d2[i] - 2.0 * dD[i]) + fabs(b2[i] - 2.0 * dbias[i]));
        check(e < 1e-12, stiff ? "selective_scan (stiff) written/accumulated outputs" :
              "selective_scan written/accumulated outputs", "err %.3e %.3e", e, 0.0);
        for (int k = 0; k < 5; k++) free(w[k]);
        free(a2); free(d2); free(b2);
    }
    // y_pre output and the gate
    double *y = ref_mop_alloc(n), *yp = ref_mop_alloc(n);
    ref_selective_scan_forward(y, yp, c.u, c.dt_raw, c.z, c.Bm, c.Cm, c.A_log, c.Dskip, c.dt_bias, B, T, Di, N);
    double eg = 0.0;
    for (size_t i = 0; i < n; i++) eg = fmax(eg, fabs(y[i] - yp[i] * ref_mop_silu(c.z[i])));
    check(eg < 1e-14, stiff ? "selective_scan (stiff) y = y_pre * silu(z)" : "selective_scan y = y_pre * silu(z)",
          "err %.3e %.3e", eg, 0.0);

    // chunked (boundary states only, recompute + dh carry) vs plain, several chunk lengths incl. T % chunk != 0
    const int chunks[4] = {1, 5, 16, 64};
    for (int ci = 0; ci < 4; ci++) {
        int ch = chunks[ci], nch = ref_scan_num_chunks(T, ch);
        double *y2 = ref_mop_alloc(n), *yp2 = ref_mop_alloc(n);
        double* hc = ref_mop_alloc((size_t)B * Di * nch * N);
        ref_selective_scan_forward_chunked(y2, yp2, hc, c.u, c.dt_raw, c.z, c.Bm, c.Cm, c.A_log, c.Dskip, c.dt_bias,
                                           B, T, Di, N, ch);
        double *du2 = ref_mop_alloc(n), *ddt2 = ref_mop_alloc(n), *dz2 = ref_mop_alloc(n);
        double *dB2 = ref_mop_alloc(nb), *dC2 = ref_mop_alloc(nb);
        double *dAl2 = ref_mop_alloc((size_t)Di * N), *dD2 = ref_mop_alloc((size_t)Di), *dbias2 = ref_mop_alloc((size_t)Di);
        ref_selective_scan_backward_chunked(du2, ddt2, dz2, dB2, dC2, dAl2, dD2, dbias2, c.R, hc, c.u, c.dt_raw, c.z,
                                            c.Bm, c.Cm, c.A_log, c.Dskip, c.dt_bias, B, T, Di, N, ch);
        double e = 0.0;
        e = fmax(e, max_abs_diff(y, y2, n)); e = fmax(e, max_abs_diff(yp, yp2, n));
        e = fmax(e, max_abs_diff(du, du2, n)); e = fmax(e, max_abs_diff(ddt, ddt2, n));
        e = fmax(e, max_abs_diff(dz, dz2, n)); e = fmax(e, max_abs_diff(dB, dB2, nb));
        e = fmax(e, max_abs_diff(dC, dC2, nb)); e = fmax(e, max_abs_diff(dAl, dAl2, (size_t)Di * N));
        e = fmax(e, max_abs_diff(dD, dD2, (size_t)Di)); e = fmax(e, max_abs_diff(dbias, dbias2, (size_t)Di));
        // the last boundary state is the final state; check it against a direct recurrence for (b=1, d=Di-1)
        double hfin_err = 0.0;
        {
            int b = 1, d = Di - 1;
            for (int nn = 0; nn < N; nn++) {
                double h = 0.0;
                for (int t = 0; t < T; t++) {
                    size_t m = (size_t)b * T + t, i = m * Di + d;
                    double delta = ref_mop_softplus(c.dt_raw[i] + c.dt_bias[d]);
                    h = exp(-delta * exp(c.A_log[(size_t)d * N + nn])) * h + delta * c.Bm[m * N + nn] * c.u[i];
                }
                hfin_err = fmax(hfin_err, fabs(h - hc[(((size_t)b * Di + d) * nch + nch - 1) * N + nn]));
            }
        }
        char name[64];
        snprintf(name, sizeof name, "selective_scan%s chunked(%d) == plain", stiff ? " (stiff)" : "", ch);
        check(e < 1e-13 && hfin_err < 1e-13, name, "max abs diff %.3e, final-state err %.3e", e, hfin_err);
        free(y2); free(yp2); free(hc); free(du2); free(ddt2); free(dz2); free(dB2); free(dC2);
        free(dAl2); free(dD2); free(dbias2);
    }
    free(y); free(yp);
    free(du); free(ddt); free(dz); free(dB); free(dC); free(dAl); free(dD); free(dbias);
    free_op_case(&c);
}


// ---------------------------------------------------------------------------------------------------------------
// whole model

typedef struct {
    RefMambaConfig cfg;
    int B, T;
    int *ids, *targets;
    double* params;
} ModelCase;

static double model_loss(ModelCase* mc) {
    return ref_mamba_forward_backward(&mc->cfg, mc->params, NULL, mc->ids, mc->targets, mc->B, mc->T, NULL);
}

// Central differences with one Richardson step ((4 D(h/2) - D(h)) / 3, error O(h^4)) so that h can be large
// enough (1e-3) for round-off in the loss (~1e-16 / h) to stay far below the tiny A_log / w_dt gradients at init.
static double fd_grad(ModelCase* mc, size_t i, double h) {
    double p0 = mc->params[i], d[2];
    for (int s = 0; s < 2; s++) {
        double hs = s ? h / 2 : h;
        mc->params[i] = p0 + hs; double lp = model_loss(mc);
        mc->params[i] = p0 - hs; double lm = model_loss(mc);
        d[s] = (lp - lm) / (2 * hs);
    }
    mc->params[i] = p0;
    return (4.0 * d[1] - d[0]) / 3.0;
}

// Every tensor: all entries when it has <= 16, else 6 random ones. Step h = 1e-3 * min(1, rms of the tensor):
// the tied embedding at init (rms 0.02, rows normalised right away) needs a step relative to its own scale.
// Pass: max|num-ana| <= tol * max|grad| + 1e-14 / h; the absolute floor is the round-off of a difference of two
// O(1) double losses over 2h (a few 1e-16 / h); it only matters for A_log / w_dt / dt_bias at Mamba init,
// whose gradients are ~1e-6 there (mamba.md 1.4), and which the perturbed cases check at full relative accuracy.
static void fd_model(ModelCase* mc, const char* label, Rng* r, double tol) {
    size_t np = ref_mamba_num_params(&mc->cfg);
    double* g = ref_mop_alloc(np);
    ref_mamba_forward_backward(&mc->cfg, mc->params, g, mc->ids, mc->targets, mc->B, mc->T, NULL);
    int nt = ref_mamba_num_tensors(&mc->cfg);
    RefMambaTensor* tl = (RefMambaTensor*)malloc((size_t)nt * sizeof(RefMambaTensor));
    ref_mamba_tensors(&mc->cfg, tl);
    double worst = 0.0;
    const char* worst_name = "";
    int ok = 1;
    for (int k = 0; k < nt; k++) {
        const double* t = mc->params + tl[k].offset;
        double ss = 0.0;
        for (size_t i = 0; i < tl[k].numel; i++) ss += t[i] * t[i];
        double rms = sqrt(ss / (double)tl[k].numel);
        double h = 1e-3 * (rms > 0.0 && rms < 1.0 ? rms : 1.0);
        int all = tl[k].numel <= 16;
        int ns = all ? (int)tl[k].numel : 6;
        double maxd = 0.0, maxg = 0.0;
        for (int s = 0; s < ns; s++) {
            size_t i = tl[k].offset + (all ? (size_t)s : (size_t)rng_below(r, (uint32_t)tl[k].numel));
            double num = fd_grad(mc, i, h);
            maxd = fmax(maxd, fabs(num - g[i]));
            maxg = fmax(maxg, fmax(fabs(num), fabs(g[i])));
        }
        double rel = maxd / fmax(maxg, 1e-300);
        if (!(maxd <= tol * maxg + 1e-14 / h) || maxg == 0.0) {
            char name[160];
            snprintf(name, sizeof name, "fd %s %s", label, tl[k].name);
            check(0, name, "max|num-ana|/max|grad| = %.3e (max|grad| %.3e)", rel, maxg);
            ok = 0;
        }
        if (rel > worst) { worst = rel; worst_name = tl[k].name; }
    }
    if (ok) check_line(1, "fd %s (%d tensors, worst max|num-ana|/max|grad| %.2e at %s)", label, nt, worst, worst_name);
    free(tl); free(g);
}

static RefMambaConfig tiny_config(int tied) {
    RefMambaConfig c;
    c.Vc = 29; c.D = 8; c.L = 2; c.Di = 16; c.N = 4; c.R = 2; c.W = 4; c.tied = tied; c.eps = 1e-5;
    return c;
}

static ModelCase make_model_case(int tied, uint64_t seed) {
    ModelCase mc;
    mc.cfg = tiny_config(tied);
    mc.B = 2; mc.T = 37;
    int M = mc.B * mc.T;
    Rng r = rng_seed(seed ^ 0xabcdefull);
    mc.ids = (int*)malloc((size_t)M * sizeof(int));
    mc.targets = (int*)malloc((size_t)M * sizeof(int));
    for (int m = 0; m < M; m++) {
        mc.ids[m] = (int)rng_below(&r, (uint32_t)mc.cfg.Vc);
        mc.targets[m] = (m % 7 == 3) ? -1 : (int)rng_below(&r, (uint32_t)mc.cfg.Vc);  // some ignored positions
    }
    mc.params = ref_mop_alloc(ref_mamba_num_params(&mc.cfg));
    ref_mamba_init_params(&mc.cfg, mc.params, seed);
    return mc;
}
static void free_model_case(ModelCase* mc) { free(mc->ids); free(mc->targets); free(mc->params); }

// move every parameter away from init so that all gradients are O(1e-3 .. 1e-1), and delta away from ~0.01
static void perturb(ModelCase* mc, Rng* r) {
    size_t np = ref_mamba_num_params(&mc->cfg);
    for (size_t i = 0; i < np; i++) mc->params[i] += 0.3 * rng_normal(r);
    for (int l = 0; l < mc->cfg.L; l++)
        for (int d = 0; d < mc->cfg.Di; d++) mc->params[ref_mamba_layer_offset(&mc->cfg, l, REF_MAMBA_DT_BIAS) + d] += 2.0;
}

static void test_model_fd(void) {
    for (int tied = 1; tied >= 0; tied--) {
        ModelCase mc = make_model_case(tied, 1234 + tied);
        Rng r = rng_seed(99 + tied);
        char label[64];
        snprintf(label, sizeof label, "%s init", tied ? "tied" : "untied");
        fd_model(&mc, label, &r, 1e-7);
        perturb(&mc, &r);
        snprintf(label, sizeof label, "%s perturbed", tied ? "tied" : "untied");
        fd_model(&mc, label, &r, 1e-7);
        free_model_case(&mc);
    }
}

static void test_model_misc(void) {
    ModelCase mc = make_model_case(1, 77);
    RefMambaConfig* c = &mc.cfg;
    int M = mc.B * mc.T;
    size_t np = ref_mamba_num_params(c);
    // forward-only == forward of forward+backward (loss and logits bitwise); repeated calls bitwise identical
    double *lg1 = ref_mop_alloc((size_t)M * c->Vc), *lg2 = ref_mop_alloc((size_t)M * c->Vc);
    double *g1 = ref_mop_alloc(np), *g2 = ref_mop_alloc(np);
    for (size_t i = 0; i < np; i++) g1[i] = 1e30;   // grads must be written, not accumulated
    double l1 = ref_mamba_forward_backward(c, mc.params, g1, mc.ids, mc.targets, mc.B, mc.T, lg1);
    double l2 = ref_mamba_forward_backward(c, mc.params, NULL, mc.ids, mc.targets, mc.B, mc.T, lg2);
    ref_mamba_forward_backward(c, mc.params, g2, mc.ids, mc.targets, mc.B, mc.T, NULL);
    int same = l1 == l2 && memcmp(lg1, lg2, (size_t)M * c->Vc * sizeof(double)) == 0 &&
               memcmp(g1, g2, np * sizeof(double)) == 0;
    check(same, "model forward-only == forward+backward, deterministic, grads written", "%g %g", l1, l2);
    // at init the tied logits are tiny, so the loss is ~ ln(Vc)
    check(fabs(l1 - log((double)c->Vc)) < 0.05, "model init loss ~ ln(Vc)", "loss %.6f vs ln(Vc) %.6f", l1, log((double)c->Vc));
    // the loss only sees valid targets: mean over the recomputed per-row CE of targets != -1
    double sum = 0.0; int nv = 0;
    for (int m = 0; m < M; m++) {
        if (mc.targets[m] < 0) continue;
        const double* l = lg1 + (size_t)m * c->Vc;
        double mx = l[0], se = 0.0;
        for (int v = 1; v < c->Vc; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < c->Vc; v++) se += exp(l[v] - mx);
        sum += log(se) + mx - l[mc.targets[m]]; nv++;
    }
    check(fabs(sum / nv - l1) < 1e-13 && nv < M, "model loss = mean over targets != -1", "%.15f vs %.15f", sum / nv, l1);
    // all targets ignored: loss 0 and zero gradients
    int* none = (int*)malloc((size_t)M * sizeof(int));
    for (int m = 0; m < M; m++) none[m] = -1;
    double l0 = ref_mamba_forward_backward(c, mc.params, g2, mc.ids, none, mc.B, mc.T, NULL);
    check(l0 == 0.0 && max_abs(g2, np) == 0.0, "model all targets ignored -> loss 0, grads 0", "%g %g", l0, max_abs(g2, np));
    free(none); free(lg1); free(lg2); free(g1); free(g2);
    free_model_case(&mc);
}

// layout: contiguous table, and the published parameter counts (mamba.md 1.1) for tied models
static void test_layout(void) {
    int ok = 1;
    for (int tied = 0; tied < 2; tied++) {
        RefMambaConfig c = tiny_config(tied);
        int nt = ref_mamba_num_tensors(&c);
        RefMambaTensor* tl = (RefMambaTensor*)malloc((size_t)nt * sizeof(RefMambaTensor));
        ok &= ref_mamba_tensors(&c, tl) == nt;
        size_t o = 0;
        for (int k = 0; k < nt; k++) { ok &= tl[k].offset == o; o += tl[k].numel; }
        ok &= o == ref_mamba_num_params(&c);
        ok &= strcmp(tl[0].name, "embed") == 0 && strcmp(tl[1].name, "layers.0.norm") == 0;
        ok &= strcmp(tl[nt - 1].name, tied ? "final_norm" : "lm_head") == 0;
        ok &= tl[1 + REF_MAMBA_A_LOG].offset == ref_mamba_layer_offset(&c, 0, REF_MAMBA_A_LOG);
        free(tl);
    }
    check(ok, "layout table contiguous and ordered", "%g %g", 0.0, 0.0);
    struct { const char* name; int D, L, R; size_t total; } pub[3] = {
        {"mamba-130m", 768, 24, 48, 129135360ull}, {"mamba-370m", 1024, 48, 64, 371516416ull},
        {"mamba-790m", 1536, 48, 96, 793204224ull}};
    for (int i = 0; i < 3; i++) {
        RefMambaConfig c;
        c.Vc = 50280; c.D = pub[i].D; c.L = pub[i].L; c.Di = 2 * pub[i].D; c.N = 16; c.R = pub[i].R; c.W = 4;
        c.tied = 1; c.eps = 1e-5;
        char name[64];
        snprintf(name, sizeof name, "num_params %s", pub[i].name);
        check(ref_mamba_num_params(&c) == pub[i].total, name, "%.0f vs %.0f", (double)ref_mamba_num_params(&c),
              (double)pub[i].total);
    }
}

// init (mamba.md 1.4): exact constants and the bounds / scales of the random tensors
static void test_init(void) {
    RefMambaConfig c = tiny_config(0);
    c.Vc = 512;   // enough embedding samples for a std estimate
    size_t np = ref_mamba_num_params(&c);
    double *p = ref_mop_alloc(np), *p2 = ref_mop_alloc(np);
    ref_mamba_init_params(&c, p, 5);
    ref_mamba_init_params(&c, p2, 5);
    check(memcmp(p, p2, np * sizeof(double)) == 0, "init deterministic per seed", "%g %g", 0.0, 0.0);
    int nt = ref_mamba_num_tensors(&c);
    RefMambaTensor* tl = (RefMambaTensor*)malloc((size_t)nt * sizeof(RefMambaTensor));
    ref_mamba_tensors(&c, tl);
    int ok = 1;
    char why[200] = "";
    for (int k = 0; k < nt; k++) {
        const double* t = p + tl[k].offset;
        size_t n = tl[k].numel;
        double mx = max_abs(t, n), bound = -1.0;
        switch (tl[k].kind) {
            case REF_MAMBA_NORM: case REF_MAMBA_DSKIP:
                for (size_t i = 0; i < n; i++) ok &= t[i] == 1.0;
                break;
            case REF_MAMBA_A_LOG:
                for (size_t i = 0; i < n; i++) ok &= t[i] == log((double)(i % c.N + 1));
                break;
            case REF_MAMBA_DT_BIAS:
                for (size_t i = 0; i < n; i++) {
                    double dt = ref_mop_softplus(t[i]);
                    ok &= dt >= 1e-3 * (1 - 1e-12) && dt <= 1e-1 * (1 + 1e-12);
                }
                break;
            case REF_MAMBA_W_IN: bound = 1.0 / sqrt((double)c.D); break;
            case REF_MAMBA_CONV_W: case REF_MAMBA_CONV_B: bound = 0.5; break;
            case REF_MAMBA_W_X: bound = 1.0 / sqrt((double)c.Di); break;
            case REF_MAMBA_W_DT: bound = 1.0 / sqrt((double)c.R); break;
            case REF_MAMBA_W_OUT: bound = 1.0 / sqrt((double)c.Di) / sqrt((double)c.L); break;
            default: break;
        }
        if (strcmp(tl[k].name, "lm_head") == 0) bound = 1.0 / sqrt((double)c.D);
        if (strcmp(tl[k].name, "final_norm") == 0)
            for (size_t i = 0; i < n; i++) ok &= t[i] == 1.0;
        // U(-b, b): all within b, max close to b (>= 0.75 b for n >= 16 samples, fails with prob < 0.25^16)
        if (bound > 0 && !(mx <= bound && mx >= 0.75 * bound)) {
            ok = 0;
            snprintf(why, sizeof why, "%s max|w| %.4f bound %.4f", tl[k].name, mx, bound);
        }
        if (strcmp(tl[k].name, "embed") == 0) {
            double s2 = 0.0;
            for (size_t i = 0; i < n; i++) s2 += t[i] * t[i];
            double sd = sqrt(s2 / n);
            if (fabs(sd - 0.02) > 0.001) { ok = 0; snprintf(why, sizeof why, "embed std %.5f", sd); }
        }
        int want_decay = tl[k].kind == REF_MAMBA_W_IN || tl[k].kind == REF_MAMBA_CONV_W || tl[k].kind == REF_MAMBA_W_X ||
                         tl[k].kind == REF_MAMBA_W_DT || tl[k].kind == REF_MAMBA_W_OUT || strcmp(tl[k].name, "lm_head") == 0;
        ok &= tl[k].decay == want_decay;
    }
    check(ok, "init constants, bounds, weight-decay flags", "%s", why);
    free(tl); free(p); free(p2);
}

// ---------------------------------------------------------------------------------------------------------------

int main(void) {
    test_conv_op();
    test_scan_op(12, 0);
    test_scan_op(13, 1);
    test_layout();
    test_init();
    test_model_misc();
    test_model_fd();
    return check_summary(NULL);
}

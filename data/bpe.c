/*
 * bpe.c — owns the data tool: `bpe train | encode | decode | info` (byte-level BPE tokenizer
 * training, text -> train/val token shards, shards -> text, header dumps). encode, decode and info
 * take our tokenizer file or a Hugging Face tokenizer.json (told apart by content). All formats and
 * algorithms live in common/tokenizer.h, common/tokenizer_json.h and common/shard.h; this file is
 * argument parsing, file reading, document splitting and reporting. Errors: one clear line, exit 1.
 * Build: gcc -O2 -std=c11 data/bpe.c -o data/bpe -lm -lpthread
 */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "../common/errors.h"
#include "../common/shard.h"
#include "../common/tokenizer.h"
#include "../common/tokenizer_any.h"

static double now_s(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- arguments ------------------------------------------------------------------------------ */
typedef struct {
    const char* cmd;
    int argc, i;
    char** argv;
} Args;

/* Value of the flag at argv[i] (advances past it). */
static const char* arg_value(Args* a) {
    const char* flag = a->argv[a->i];
    if (a->i + 1 >= a->argc) die("bpe %s: %s needs a value (see bpe %s --help)", a->cmd, flag, a->cmd);
    return a->argv[++a->i];
}
static long long arg_int(Args* a, long long lo, long long hi) {
    const char* flag = a->argv[a->i];
    const char* v = arg_value(a);
    char* end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("bpe %s: %s expects an integer in %lld..%lld, got '%s'", a->cmd, flag, lo, hi, v);
    return x;
}
static double arg_double(Args* a, double lo, double hi) {
    const char* flag = a->argv[a->i];
    const char* v = arg_value(a);
    char* end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die("bpe %s: %s expects a number in [%g, %g], got '%s'", a->cmd, flag, lo, hi, v);
    return x;
}
static void arg_unknown(Args* a) {
    die("bpe %s: unknown option '%s' (see bpe %s --help)", a->cmd, a->argv[a->i], a->cmd);
}

/* ---- input text ----------------------------------------------------------------------------- */
static unsigned char* read_all(const char* path, size_t* n) {
    struct stat st;
    if (stat(path, &st) != 0) die("cannot open input '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) die("input '%s' is not a regular file", path);
    FILE* f = fopen_check(path, "rb");
    *n = (size_t)st.st_size;
    unsigned char* buf = (unsigned char*)malloc_check(*n + 1);
    if (*n) fread_check(buf, 1, *n, f);
    fclose(f);
    return buf;
}

/* Splits text at every occurrence of sep (removed) into documents; empty documents are skipped.
   Without sep the whole text is one document. Returns the count; *starts / *lens malloc'ed. */
static size_t split_docs(const unsigned char* t, size_t n, const char* sep, const unsigned char*** starts, size_t** lens) {
    size_t cap = 16, k = 0, slen = sep ? strlen(sep) : 0;
    *starts = (const unsigned char**)malloc_check(cap * sizeof(**starts));
    *lens = (size_t*)malloc_check(cap * sizeof(**lens));
    size_t begin = 0;
    for (size_t i = 0; i <= n;) {
        int cut = i == n;
        if (!cut && slen && i + slen <= n && t[i] == (unsigned char)sep[0] && memcmp(t + i, sep, slen) == 0) cut = 1;
        if (!cut) { i++; continue; }
        if (i > begin) {
            if (k == cap) {
                cap *= 2;
                *starts = (const unsigned char**)realloc(*starts, cap * sizeof(**starts));
                *lens = (size_t*)realloc(*lens, cap * sizeof(**lens));
                if (!*starts || !*lens) die("out of memory splitting documents");
            }
            (*starts)[k] = t + begin;
            (*lens)[k] = i - begin;
            k++;
        }
        i += i == n ? 1 : slen;
        begin = i;
    }
    return k;
}

/* ---- the tokenizer of encode / decode / info: ours, or a Hugging Face tokenizer.json ------------ */
/* Loads path (see anytok_load); a bad file is the tool's one-line error. */
static void datatok_load(AnyTokenizer* d, const char* path, int force_json, const char* eot_token) {
    char err[1024];
    if (anytok_load(d, path, force_json, eot_token, err, sizeof err) != 0) die("%s", err);
}
/* Prints a token's bytes in brackets, non-printable ones as \xNN. */
static void print_token(const unsigned char* p, size_t len) {
    printf(" [");
    for (size_t k = 0; k < len; k++) printf(p[k] >= 32 && p[k] < 127 ? "%c" : "\\x%02x", p[k]);
    printf("]");
}

/* ---- train ---------------------------------------------------------------------------------- */
static int cmd_train(Args* a) {
    const char *out = NULL, *sep = NULL;
    int vocab = 4096, quiet = 0;
    const char* files[4096];
    int nfiles = 0;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char* s = a->argv[a->i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("usage: bpe train -o TOKENIZER [--vocab N] [--doc-sep STR] [--quiet] TEXT...\n"
                   "  Trains a byte-level BPE tokenizer on the text files.\n"
                   "  --vocab N      total ids: 256 bytes + merges + 1 EOT (%d..%d, default 4096);\n"
                   "                 a text with too few distinct pairs gives a smaller vocabulary\n"
                   "  --doc-sep STR  remove STR from the text (document separator, e.g. '<|endoftext|>')\n"
                   "  -o FILE        output tokenizer file\n", TOK_MIN_VOCAB, TOK_MAX_VOCAB);
            return 0;
        }
        if (!strcmp(s, "-o")) out = arg_value(a);
        else if (!strcmp(s, "--vocab")) vocab = (int)arg_int(a, TOK_MIN_VOCAB, TOK_MAX_VOCAB);
        else if (!strcmp(s, "--doc-sep")) sep = arg_value(a);
        else if (!strcmp(s, "--quiet")) quiet = 1;
        else if (s[0] == '-' && s[1]) arg_unknown(a);
        else if (nfiles == 4096) die("bpe train: at most 4096 input files");
        else files[nfiles++] = s;
    }
    if (!out) die("bpe train: missing -o TOKENIZER (see bpe train --help)");
    if (!nfiles) die("bpe train: no input text files (see bpe train --help)");
    if (sep && !*sep) die("bpe train: --doc-sep must not be empty");
    unsigned char** bufs = (unsigned char**)malloc_check((size_t)nfiles * sizeof(*bufs));
    const unsigned char** texts = NULL;
    size_t* lens = NULL;
    size_t ntexts = 0, total = 0;
    for (int f = 0; f < nfiles; f++) {
        size_t n;
        bufs[f] = read_all(files[f], &n);
        const unsigned char** st;
        size_t* ln;
        size_t k = split_docs(bufs[f], n, sep, &st, &ln);
        texts = (const unsigned char**)realloc(texts, (ntexts + k + 1) * sizeof(*texts));
        lens = (size_t*)realloc(lens, (ntexts + k + 1) * sizeof(*lens));
        if (!texts || !lens) die("out of memory");
        memcpy(texts + ntexts, st, k * sizeof(*texts));
        memcpy(lens + ntexts, ln, k * sizeof(*lens));
        ntexts += k;
        total += n;
        free(st);
        free(ln);
    }
    if (ntexts > (size_t)INT32_MAX) die("bpe train: too many documents");
    Tokenizer tok;
    char err[1024];
    double t0 = now_s();
    if (tokenizer_train(&tok, texts, lens, (int)ntexts, vocab, !quiet, err, sizeof err) != 0) die("%s", err);
    double dt = now_s() - t0;
    if (tokenizer_save(&tok, out, err, sizeof err) != 0) die("%s", err);
    printf("trained %d merges (vocab %d, EOT id %d) on %.2f MB in %.2f s (%.1f MB/s, 1 thread) -> %s (fingerprint %08x)\n",
           tok.n_merges, tok.vocab_size, tok.eot, total / 1e6, dt, total / 1e6 / (dt > 0 ? dt : 1e-9), out, tok.fingerprint);
    if (tok.vocab_size < vocab)
        printf("note: the text ran out of pairs, so the vocabulary is %d, not %d\n", tok.vocab_size, vocab);
    tokenizer_free(&tok);
    for (int f = 0; f < nfiles; f++) free(bufs[f]);
    free(bufs);
    free(texts);
    free(lens);
    return 0;
}

/* ---- encode --------------------------------------------------------------------------------- */
/* Writes toks[0..n) as NAME_000000.bin, NAME_000001.bin ... of at most per tokens each. */
static int write_split(const char* dir, const char* name, const int32_t* toks, uint64_t n, uint64_t per, const AnyTokenizer* tok) {
    char path[4096], err[1024];
    int k = 0;
    for (uint64_t i = 0; i < n; i += per, k++) {
        uint64_t m = n - i < per ? n - i : per;
        snprintf(path, sizeof path, "%s/%s_%06d.bin", dir, name, k);
        if (shard_write(path, toks + i, m, tok->vocab_size, tok->fingerprint, err, sizeof err) != 0) die("%s", err);
        printf("  wrote %s: %llu tokens (%s)\n", path, (unsigned long long)m, tok->vocab_size > 65536 ? "uint32" : "uint16");
    }
    return k;
}

/* Removes shards of an earlier run (DIR/train_*.bin, DIR/val_*.bin), which the loader's glob
   would otherwise pick up. Only files that are token shards are removed. */
static void remove_old_shards(const char* dir) {
    const char* names[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        char pat[4096];
        snprintf(pat, sizeof pat, "%s/%s_*.bin", dir, names[k]);
        glob_t g;
        memset(&g, 0, sizeof g);
        if (glob(pat, 0, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++) {
                FILE* f = fopen(g.gl_pathv[i], "rb");
                int32_t magic = 0;
                int is_shard = f && fread(&magic, 4, 1, f) == 1 && magic == SHARD_MAGIC;
                if (f) fclose(f);
                if (is_shard && remove(g.gl_pathv[i]) == 0) printf("  removed old %s\n", g.gl_pathv[i]);
            }
        globfree(&g);
    }
}

/* Progress on large inputs (only inputs that take more than a second show it): one line on stderr,
 * rewritten in place, with the rate and the time left for this file. */
static void progress_line(const char* path, int f, int nfiles, size_t done, size_t n, double dt) {
    double rate = done / 1e6 / (dt > 0 ? dt : 1e-9), left = rate > 0 ? (n - done) / 1e6 / rate : 0;
    fprintf(stderr, "\rencoding %s (file %d/%d): %.0f / %.0f MB, %.1f MB/s, %.0f s left   ", path, f + 1, nfiles, done / 1e6,
            n / 1e6, rate, left);
    fflush(stderr);
}

static int cmd_encode(Args* a) {
    const char *tokpath = NULL, *outdir = NULL, *sep = NULL, *eot_token = NULL;
    int force_json = 0;
    double val_fraction = 0.1;
    long long val_tokens = -1, val_files = -1, shard_tokens = 100000000;
    const char* files[4096];
    int nfiles = 0;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char* s = a->argv[a->i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("usage: bpe encode -t TOKENIZER -o DIR [--val-fraction F | --val-tokens N] [--doc-sep STR]\n"
                   "                  [--shard-tokens N] TEXT...\n"
                   "  Encodes the text files into DIR/val_NNNNNN.bin (the first tokens) and DIR/train_NNNNNN.bin\n"
                   "  (the rest). Every document is preceded by the EOT id (vocab-1 of our tokenizer files). A\n"
                   "  document is one file, or each piece between --doc-sep strings (the separator is dropped).\n"
                   "  -t FILE           our tokenizer file, or a Hugging Face tokenizer.json (byte-level BPE: GPT-2,\n"
                   "                    GPT-NeoX), which encodes with its own ids; its EOT is <|endoftext|>\n"
                   "  --tokenizer-json FILE  the same as -t, but FILE must be a tokenizer.json\n"
                   "  --eot-token STR   with a tokenizer.json: the token put before each document (default\n"
                   "                    <|endoftext|>; added tokens in the text are matched as HF does)\n"
                   "  --val-fraction F  fraction of all tokens for validation (default 0.1; 0 = no val shard)\n"
                   "  --val-tokens N    exactly N tokens for validation instead\n"
                   "  --val-files N     the first N input files are the validation split instead\n"
                   "  --shard-tokens N  at most N tokens per shard file (default 100000000)\n"
                   "  Earlier train_*.bin / val_*.bin shards in DIR are removed first.\n");
            return 0;
        }
        if (!strcmp(s, "-t")) tokpath = arg_value(a);
        else if (!strcmp(s, "--tokenizer-json")) { tokpath = arg_value(a); force_json = 1; }
        else if (!strcmp(s, "--eot-token")) eot_token = arg_value(a);
        else if (!strcmp(s, "-o")) outdir = arg_value(a);
        else if (!strcmp(s, "--doc-sep")) sep = arg_value(a);
        else if (!strcmp(s, "--val-fraction")) val_fraction = arg_double(a, 0.0, 0.99);
        else if (!strcmp(s, "--val-tokens")) val_tokens = arg_int(a, 0, (long long)1 << 50);
        else if (!strcmp(s, "--val-files")) val_files = arg_int(a, 0, 4095);
        else if (!strcmp(s, "--shard-tokens")) shard_tokens = arg_int(a, 2, (long long)1 << 40);
        else if (s[0] == '-' && s[1]) arg_unknown(a);
        else if (nfiles == 4096) die("bpe encode: at most 4096 input files");
        else files[nfiles++] = s;
    }
    if (!tokpath) die("bpe encode: missing -t TOKENIZER or --tokenizer-json FILE (see bpe encode --help)");
    if (!outdir) die("bpe encode: missing -o DIR (see bpe encode --help)");
    if (!nfiles) die("bpe encode: no input text files (see bpe encode --help)");
    if (sep && !*sep) die("bpe encode: --doc-sep must not be empty");
    if (val_files >= nfiles) die("bpe encode: --val-files %lld leaves no file for training", val_files);
    if (val_files >= 0 && val_tokens >= 0) die("bpe encode: give --val-tokens or --val-files, not both");
    struct stat st;
    if (stat(outdir, &st) != 0 || !S_ISDIR(st.st_mode)) die("bpe encode: output directory '%s' does not exist", outdir);
    AnyTokenizer tok;
    datatok_load(&tok, tokpath, force_json, eot_token);
    if (tok.eot < 0)
        die("bpe encode: tokenizer '%s' has no end-of-text token \"%s\" (in added_tokens or model.vocab) to put before "
            "each document; name one with --eot-token", tokpath, eot_token ? eot_token : HFTOK_DEFAULT_EOT);

    int32_t* toks = NULL;
    size_t ntok = 0, cap = 0, total_bytes = 0, ndocs = 0;
    double t_enc = 0;
    for (int f = 0; f < nfiles; f++) {
        size_t n;
        unsigned char* text = read_all(files[f], &n);
        const unsigned char** starts;
        size_t* lens;
        size_t k = split_docs(text, n, sep, &starts, &lens), need = ntok;
        for (size_t d = 0; d < k; d++) need += 1 + anytok_max_ids(&tok, lens[d]); /* EOT + the most ids a document has */
        if (need > cap) {
            cap = need * 5 / 4 + 1024;
            toks = (int32_t*)realloc(toks, cap * sizeof(int32_t));
            if (!toks) die("out of memory: %zu tokens", cap);
        }
        double t0 = now_s(), shown = t0;
        size_t done = 0;
        for (size_t d = 0; d < k; d++) {
            toks[ntok++] = tok.eot;
            long long m = anytok_encode(&tok, starts[d], lens[d], toks + ntok);
            if (m < 0) die("out of memory encoding '%s'", files[f]);
            ntok += (size_t)m;
            done += lens[d];
            if (now_s() - shown >= 1.0) progress_line(files[f], f, nfiles, done, n, now_s() - t0), shown = now_s();
        }
        if (shown > t0) fprintf(stderr, "\n");   /* end the progress line of a large input */
        t_enc += now_s() - t0;
        total_bytes += n;
        ndocs += k;
        free(starts);
        free(lens);
        free(text);
        if (f + 1 == val_files) val_tokens = (long long)ntok;
    }
    if (ntok == 0) die("bpe encode: the input files contain no text");
    uint64_t nval = val_tokens >= 0 ? (uint64_t)val_tokens : (uint64_t)(val_fraction * (double)ntok);
    if (val_files == 0) nval = 0;
    if (nval >= ntok) die("bpe encode: %llu validation tokens requested but the text has only %zu tokens", (unsigned long long)nval, ntok);
    printf("encoded %.2f MB (%zu documents) into %zu tokens (%.2f bytes/token) in %.2f s (%.1f MB/s, 1 thread)\n",
           total_bytes / 1e6, ndocs, ntok, (double)total_bytes / (double)ntok, t_enc, total_bytes / 1e6 / (t_enc > 0 ? t_enc : 1e-9));
    remove_old_shards(outdir);
    if (nval) write_split(outdir, "val", toks, nval, (uint64_t)shard_tokens, &tok);
    write_split(outdir, "train", toks + nval, ntok - nval, (uint64_t)shard_tokens, &tok);
    free(toks);
    anytok_free(&tok);
    return 0;
}

/* ---- decode --------------------------------------------------------------------------------- */
static int cmd_decode(Args* a) {
    const char *tokpath = NULL, *eot_text = "<|endoftext|>", *eot_token = NULL;
    int force_json = 0;
    long long max_tokens = -1;
    const char* files[4096];
    int nfiles = 0;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char* s = a->argv[a->i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("usage: bpe decode -t TOKENIZER [--eot-text STR] [--max-tokens N] SHARD...\n"
                   "  Writes the text of the shards (in the order given) to stdout.\n"
                   "  -t FILE          our tokenizer file or a Hugging Face tokenizer.json (--tokenizer-json FILE:\n"
                   "                   must be one; --eot-token STR: its EOT, default <|endoftext|>)\n"
                   "  --eot-text STR   what EOT prints as (default '<|endoftext|>'; '' gives the exact input bytes)\n"
                   "  --max-tokens N   stop after N tokens per shard\n");
            return 0;
        }
        if (!strcmp(s, "-t")) tokpath = arg_value(a);
        else if (!strcmp(s, "--tokenizer-json")) { tokpath = arg_value(a); force_json = 1; }
        else if (!strcmp(s, "--eot-token")) eot_token = arg_value(a);
        else if (!strcmp(s, "--eot-text")) eot_text = arg_value(a);
        else if (!strcmp(s, "--max-tokens")) max_tokens = arg_int(a, 0, (long long)1 << 50);
        else if (s[0] == '-' && s[1]) arg_unknown(a);
        else if (nfiles == 4096) die("bpe decode: at most 4096 shards");
        else files[nfiles++] = s;
    }
    if (!tokpath) die("bpe decode: missing -t TOKENIZER or --tokenizer-json FILE (see bpe decode --help)");
    if (!nfiles) die("bpe decode: no shard files (see bpe decode --help)");
    AnyTokenizer tok;
    char err[1024];
    datatok_load(&tok, tokpath, force_json, eot_token);
    /* 512 ids at a time, each at most the longest token (or the EOT text) */
    size_t longest = anytok_max_token_bytes(&tok), cap = 512 * (longest > strlen(eot_text) ? longest : strlen(eot_text));
    char* buf = (char*)malloc_check(cap + 1);
    for (int f = 0; f < nfiles; f++) {
        int32_t* ids;
        ShardInfo in;
        if (shard_read(files[f], tok.vocab_size, &ids, &in, err, sizeof err) != 0) die("%s", err);
        if (in.tok_hash && in.tok_hash != tok.fingerprint)
            fprintf(stderr, "warning: '%s' was made by another tokenizer (fingerprint %08x, '%s' is %08x)\n",
                    files[f], in.tok_hash, tokpath, tok.fingerprint);
        size_t n = max_tokens >= 0 && (uint64_t)max_tokens < in.ntok ? (size_t)max_tokens : (size_t)in.ntok;
        for (size_t i = 0; i < n; i += 512) {
            size_t m = n - i < 512 ? n - i : 512;
            long long len = anytok_decode(&tok, ids + i, m, buf, cap, eot_text);
            if (len < 0 || (size_t)len > cap)
                die("cannot decode tokens %zu..%zu of '%s': an id that no token of '%s' has", i, i + m, files[f], tokpath);
            fwrite(buf, 1, (size_t)len, stdout);
        }
        free(ids);
    }
    free(buf);
    anytok_free(&tok);
    return 0;
}

/* ---- info ----------------------------------------------------------------------------------- */
/* A token shard's header; with a tokenizer, also its id range and document count. */
static void info_shard(const char* path, const int32_t* h, uint64_t bytes, const AnyTokenizer* tok) {
    char err[1024];
    ShardInfo in;
    if (shard_check_header(path, h, bytes, &in, err, sizeof err) != 0) die("%s", err);
    printf("%s: token shard v%d (uint%d), %llu tokens, vocab %d, tokenizer fingerprint %08x, %llu bytes\n", path,
           in.version, in.tok_bytes * 8, (unsigned long long)in.ntok, in.vocab, in.tok_hash, (unsigned long long)bytes);
    if (!tok) return;
    int32_t* ids;
    if (shard_read(path, tok->vocab_size, &ids, NULL, err, sizeof err) != 0) die("%s", err);
    size_t neot = 0;
    for (uint64_t i = 0; i < in.ntok; i++) neot += ids[i] == tok->eot;
    printf("  all ids < %d; %zu EOT (documents)%s\n", tok->vocab_size, neot,
           in.tok_hash && in.tok_hash != tok->fingerprint ? "; WARNING: made by another tokenizer" : "");
    free(ids);
}

/* A tokenizer file of ours or a tokenizer.json: sizes, EOT, options, first merges, longest token. */
static void info_tokenizer(const char* path) {
    AnyTokenizer d;
    datatok_load(&d, path, 0, NULL);
    const HfTokenizer* hf = &d.hf;
    if (d.json) {
        printf("%s: Hugging Face tokenizer.json, byte-level BPE: vocab %d (%d model tokens, %d added), %d merges, ", path,
               d.vocab_size, hf->n_model, hf->n_added, hf->n_merges);
        if (d.eot >= 0) printf("EOT %s id %d, fingerprint %08x\n", HFTOK_DEFAULT_EOT, d.eot, d.fingerprint);
        else printf("no %s (encode needs --eot-token), fingerprint %08x\n", HFTOK_DEFAULT_EOT, d.fingerprint);
        printf("  pre-tokenizer ByteLevel (add_prefix_space %s, GPT-2 regex %s), normalizer %s, ignore_merges %s\n",
               hf->add_prefix_space ? "yes" : "no", hf->use_regex ? "yes" : "no", hf->nfc ? "NFC (not applied)" : "none",
               hf->ignore_merges ? "yes" : "no");
    } else {
        printf("%s: tokenizer v%d, vocab %d (256 bytes + %d merges + EOT), EOT id %d, fingerprint %08x\n", path, TOK_VERSION,
               d.vocab_size, d.tok.n_merges, d.eot, d.fingerprint);
    }
    int nmerges = d.json ? hf->n_merges : d.tok.n_merges, longest = 0;
    size_t len, best = 0;
    printf("  first merges:");
    for (int r = 0; r < nmerges && r < 12; r++) {
        const unsigned char* p = anytok_token_bytes(&d, d.json ? hf->merges[3 * r + 2] : 256 + r, &len);
        print_token(p, len);
    }
    for (int i = 0; i < d.vocab_size; i++)
        if (anytok_token_bytes(&d, i, &len) && len > best) { best = len; longest = i; }
    printf("\n  longest token: id %d, %zu bytes\n", longest, best);
    anytok_free(&d);
}

static int cmd_info(Args* a) {
    const char* tokpath = NULL;
    const char* files[4096];
    int nfiles = 0, force_json = 0;
    for (a->i = 2; a->i < a->argc; a->i++) {
        const char* s = a->argv[a->i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("usage: bpe info [-t TOKENIZER | --tokenizer-json FILE] FILE...\n"
                   "  Prints the header of token shards, tokenizer files and Hugging Face tokenizer.json files.\n"
                   "  With -t (either kind of tokenizer), also checks that every token of the shards is < the\n"
                   "  tokenizer's vocabulary.\n");
            return 0;
        }
        if (!strcmp(s, "-t")) tokpath = arg_value(a);
        else if (!strcmp(s, "--tokenizer-json")) { tokpath = arg_value(a); force_json = 1; }
        else if (s[0] == '-' && s[1]) arg_unknown(a);
        else if (nfiles == 4096) die("bpe info: at most 4096 files");
        else files[nfiles++] = s;
    }
    if (!nfiles) die("bpe info: no files (see bpe info --help)");
    char err[1024];
    AnyTokenizer tok;
    if (tokpath) datatok_load(&tok, tokpath, force_json, NULL);
    for (int f = 0; f < nfiles; f++) {
        int32_t h[DATA_HEADER_INTS];
        uint64_t bytes;
        if (hftok_is_json_file(files[f])) { info_tokenizer(files[f]); continue; }
        FILE* fp = datafile_open(files[f], "data file", h, &bytes, err, sizeof err);
        if (!fp) die("%s", err);
        fclose(fp);
        if (h[0] == SHARD_MAGIC) info_shard(files[f], h, bytes, tokpath ? &tok : NULL);
        else if (h[0] == TOK_MAGIC) info_tokenizer(files[f]);
        else
            die("'%s' is neither a token shard (magic %d), a tokenizer file (magic %d) nor a tokenizer.json: magic %d",
                files[f], SHARD_MAGIC, TOK_MAGIC, h[0]);
    }
    if (tokpath) anytok_free(&tok);
    return 0;
}

int main(int argc, char** argv) {
    const char* usage =
        "usage: bpe <command> [options]   (bpe <command> --help for details)\n"
        "  train   text files -> tokenizer file (byte-level BPE)\n"
        "  encode  tokenizer + text files -> DIR/train_*.bin, DIR/val_*.bin token shards\n"
        "  decode  tokenizer + shards -> text on stdout\n"
        "  info    print the header of shards / tokenizer files\n"
        "  (encode, decode, info also take a Hugging Face tokenizer.json: GPT-2 / GPT-NeoX byte-level BPE)\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s", usage);
        return argc < 2;
    }
    Args a;
    a.cmd = argv[1];
    a.argc = argc;
    a.argv = argv;
    a.i = 2;
    if (!strcmp(argv[1], "train")) return cmd_train(&a);
    if (!strcmp(argv[1], "encode")) return cmd_encode(&a);
    if (!strcmp(argv[1], "decode")) return cmd_decode(&a);
    if (!strcmp(argv[1], "info")) return cmd_info(&a);
    die("bpe: unknown command '%s' (expected train, encode, decode or info)", argv[1]);
    return 1;
}

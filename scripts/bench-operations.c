
/*
 * Micro-benchmark of the operation matcher (src/ts_ops.c): the cost of one
 * ts_ops_match() with the WB catalogue (conf.d/wb-operations.conf, 286
 * operations) and with synthetic catalogues of 300 and 30,000 operations,
 * for a mix of matching, -sandbox twin and non-matching requests.
 *
 *     cc -O2 -Isrc -o build/ops_bench src/ts_ops.c scripts/bench-operations.c
 *     build/ops_bench conf.d/wb-operations.conf [LOOKUPS]
 *
 * Used by scripts/bench-operations.  Needs only libc.
 */


#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_core.h"


#ifndef BENCH_HOT
#define BENCH_HOT       16      /* the few requests of the "hot" run */
#endif

#ifndef BENCH_REQUESTS
#define BENCH_REQUESTS  4096    /* distinct requests, cycled through; 2^n */
#endif
#define BENCH_FIELD     512


typedef struct {
    char    method[16];
    char    host[BENCH_FIELD];
    char    path[BENCH_FIELD];
} bench_rule_t;

typedef struct {
    ts_str_t       method;
    ts_str_t       host;
    ts_str_t       path;
    int            expect;      /* 1: a rule matches (linear reference) */
} bench_req_t;

typedef struct {
    bench_rule_t  *rules;
    size_t         n;
    size_t         alloc;
} bench_list_t;


static const char  *methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };


static void
die(const char *what)
{
    fprintf(stderr, "ops_bench: %s\n", what);
    exit(1);
}


static void
list_push(bench_list_t *l, const char *method, const char *host,
    const char *path)
{
    bench_rule_t  *r;

    if (l->n == l->alloc) {
        l->alloc = l->alloc ? 2 * l->alloc : 512;
        l->rules = realloc(l->rules, l->alloc * sizeof(bench_rule_t));
        if (l->rules == NULL) {
            die("out of memory");
        }
    }

    r = &l->rules[l->n++];
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->host, sizeof(r->host), "%s", host);
    snprintf(r->path, sizeof(r->path), "%s", path);
}


static ts_str_t
str(const char *s)
{
    ts_str_t  v;

    v.len = strlen(s);
    v.data = (unsigned char *) s;

    return v;
}


/* the rules of a token_scope_operations block: METHOD HOST PATH ... ; */

static void
parse_catalogue(const char *file, bench_list_t *l)
{
    FILE  *f;
    char   line[2048], method[16], host[BENCH_FIELD], path[BENCH_FIELD];
    char  *p;

    f = fopen(file, "r");
    if (f == NULL) {
        perror(file);
        exit(1);
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        p = line;

        while (isspace((unsigned char) *p)) {
            p++;
        }

        if (*p < 'A' || *p > 'Z' || strchr(p, ';') == NULL) {
            continue;   /* comments, the block's braces, blank lines */
        }

        if (sscanf(p, "%15s %511s %511s", method, host, path) != 3) {
            continue;
        }

        if (path[0] == '"') {
            memmove(path, path + 1, strlen(path));
            p = strchr(path, '"');
            if (p != NULL) {
                *p = '\0';
            }
        }

        list_push(l, method, host, path);
    }

    fclose(f);
}


/*
 * HOSTS x PATHS operations: /api/vV/groupG/itemI, with a "{id}" segment
 * in every third one, and a method taken in turn
 */

static void
synthetic(bench_list_t *l, unsigned hosts, unsigned paths)
{
    unsigned  h, i;
    char      host[BENCH_FIELD], path[BENCH_FIELD];

    for (h = 0; h < hosts; h++) {
        snprintf(host, sizeof(host), "h%03u-api.example.com", h);

        for (i = 0; i < paths; i++) {
            if (i % 3 == 0) {
                snprintf(path, sizeof(path), "/api/v%u/group%u/{id}/item%u",
                         i / 100 + 1, i / 10 % 10, i % 10);
            } else {
                snprintf(path, sizeof(path), "/api/v%u/group%u/item%u",
                         i / 100 + 1, i / 10 % 10, i % 10);
            }

            list_push(l, methods[i % 5], host, path);
        }
    }
}


static ts_ops_t *
build(const bench_list_t *l)
{
    size_t     i;
    ts_op_t    op;
    ts_str_t   method, host, path;
    ts_ops_t  *ops;
    char       err[256];

    ops = ts_ops_create();
    if (ops == NULL) {
        die("out of memory");
    }

    memset(&op, 0, sizeof(op));
    op.required = 1;

    for (i = 0; i < l->n; i++) {
        method = str(l->rules[i].method);
        host = str(l->rules[i].host);
        path = str(l->rules[i].path);

        if (ts_ops_add(ops, &method, &host, &path, &op, err, sizeof(err))
            != 0)
        {
            fprintf(stderr, "ops_bench: %s %s %s: %s\n", l->rules[i].method,
                    l->rules[i].host, l->rules[i].path, err);
            exit(1);
        }
    }

    return ops;
}


/* a copy of s with every "{param}" replaced by "12345" */

static char *
concrete(const char *s)
{
    char        *out, *o;
    const char  *end;

    out = malloc(strlen(s) * 5 + 1);
    if (out == NULL) {
        die("out of memory");
    }

    for (o = out; *s; ) {
        if (*s == '{' && (end = strchr(s, '}')) != NULL) {
            o += sprintf(o, "12345");
            s = end + 1;
            continue;
        }

        *o++ = *s++;
    }

    *o = '\0';

    return out;
}


static char *
sandbox_twin(const char *host)
{
    char        *out;
    const char  *dot;
    size_t       len;

    dot = strchr(host, '.');
    len = dot ? (size_t) (dot - host) : strlen(host);

    out = malloc(strlen(host) + sizeof("-sandbox"));
    if (out == NULL) {
        die("out of memory");
    }

    sprintf(out, "%.*s-sandbox%s", (int) len, host, host + len);

    return out;
}


/* the next path segment at *p, empty segments skipped */

static int
next_segment(const unsigned char **p, const unsigned char *end,
    const unsigned char **seg, size_t *len)
{
    while (*p < end && **p == '/') {
        (*p)++;
    }

    if (*p == end) {
        return 0;
    }

    *seg = *p;

    while (*p < end && **p != '/') {
        (*p)++;
    }

    *len = *p - *seg;

    return 1;
}


/*
 * the reference: does any rule match, scanning them all, segment by
 * segment, the host as sent or without "-sandbox" at the end of its first
 * label; the matcher must agree with it on every benchmark request
 */

static int
reference(const bench_list_t *l, const bench_req_t *q)
{
    int                   a, b;
    char                  twin[BENCH_FIELD];
    size_t                i, alen, blen, len;
    const char           *dot;
    const unsigned char  *ap, *aend, *bp, *bend, *as, *bs;
    const bench_rule_t   *r;

    twin[0] = '\0';
    dot = memchr(q->host.data, '.', q->host.len);
    len = dot ? (size_t) (dot - (const char *) q->host.data) : q->host.len;

    if (len > 8 && q->host.len < sizeof(twin)
        && memcmp(q->host.data + len - 8, "-sandbox", 8) == 0)
    {
        sprintf(twin, "%.*s%.*s", (int) (len - 8), q->host.data,
                (int) (q->host.len - len), q->host.data + len);
    }

    for (i = 0; i < l->n; i++) {
        r = &l->rules[i];

        if (strlen(r->method) != q->method.len
            || memcmp(r->method, q->method.data, q->method.len) != 0)
        {
            continue;
        }

        if (!(strlen(r->host) == q->host.len
              && memcmp(r->host, q->host.data, q->host.len) == 0)
            && strcmp(r->host, twin) != 0)
        {
            continue;
        }

        ap = (const unsigned char *) r->path;
        aend = ap + strlen(r->path);
        bp = q->path.data;
        bend = bp + q->path.len;

        for ( ;; ) {
            a = next_segment(&ap, aend, &as, &alen);
            b = next_segment(&bp, bend, &bs, &blen);

            if (!a || !b) {
                break;
            }

            if (!(as[0] == '{' && as[alen - 1] == '}')
                && !(alen == blen && memcmp(as, bs, alen) == 0))
            {
                break;
            }
        }

        if (!a && !b) {
            return 1;
        }
    }

    return 0;
}


/*
 * BENCH_REQUESTS requests spread over the catalogue: 60% an operation's
 * concrete path, 15% the same on the -sandbox twin host, 10% an unknown
 * last segment (which a template may still match), 10% another method, 5%
 * an unknown host
 */

static bench_req_t *
requests(const bench_list_t *l)
{
    size_t        i, k, len;
    unsigned      kind;
    char         *p;
    bench_req_t  *reqs;
    bench_rule_t *r;

    reqs = calloc(BENCH_REQUESTS, sizeof(bench_req_t));
    if (reqs == NULL) {
        die("out of memory");
    }

    srand(12345);

    for (i = 0; i < BENCH_REQUESTS; i++) {
        k = ((size_t) rand() * (RAND_MAX + 1u) + rand()) % l->n;
        r = &l->rules[k];
        kind = rand() % 100;

        reqs[i].method = str(r->method);
        reqs[i].host = str(r->host);
        reqs[i].path = str(concrete(r->path));

        if (kind < 60) {
            continue;
        }

        if (kind < 75) {
            reqs[i].host = str(sandbox_twin(r->host));
            continue;
        }

        if (kind < 85) {
            p = concrete(r->path);
            len = strrchr(p, '/') - p;
            p = realloc(p, strlen(p) + sizeof("/nosuch"));
            if (p == NULL) {
                die("out of memory");
            }
            strcpy(p + len + 1, "nosuch");
            reqs[i].path = str(p);

        } else if (kind < 95) {
            reqs[i].method = str("OPTIONS");

        } else {
            reqs[i].host = str("unknown-api.example.com");
        }
    }

    for (i = 0; i < BENCH_REQUESTS; i++) {
        reqs[i].expect = reference(l, &reqs[i]);
    }

    return reqs;
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


typedef struct {
    size_t   ops;
    double   build_ms;
    double   matching;     /* share of the lookups that matched */
    double   spread;       /* ns/lookup, BENCH_REQUESTS distinct requests */
    double   hot;          /* ns/lookup, BENCH_HOT distinct requests */
    double   scan;         /* ns/lookup of the linear reference scan */
} bench_result_t;


/* ns per lookup cycling through the first mask + 1 requests, best of 3 */

static double
timed(const ts_ops_t *ops, const bench_req_t *reqs, long mask, long lookups,
    double *matching)
{
    int                 run;
    long                i, matched;
    double              t0, t, best;
    const bench_req_t  *q;

    best = 0;
    matched = 0;

    for (run = 0; run < 3; run++) {
        matched = 0;
        t0 = now();

        for (i = 0; i < lookups; i++) {
            q = &reqs[i & mask];
            matched += (ts_ops_match(ops, &q->method, &q->host, &q->path)
                        != NULL);
        }

        t = now() - t0;

        if (run == 0 || t < best) {
            best = t;
        }
    }

    if (matching) {
        *matching = (double) matched / lookups;
    }

    return best * 1e9 / lookups;
}


static bench_result_t
bench(const char *label, const bench_list_t *l, long lookups)
{
    long              i, wrong, scans, found;
    double            t0;
    ts_ops_t         *ops;
    bench_req_t      *reqs, *q;
    bench_result_t    res;

    res.ops = l->n;

    t0 = now();
    ops = build(l);
    res.build_ms = (now() - t0) * 1e3;

    reqs = requests(l);

    /* the matcher must agree with the linear scan on every request */

    wrong = 0;

    for (i = 0; i < BENCH_REQUESTS; i++) {
        q = &reqs[i];
        wrong += (ts_ops_match(ops, &q->method, &q->host, &q->path) != NULL)
                 != q->expect;
    }

    if (wrong) {
        fprintf(stderr, "ops_bench: %s: the matcher and a linear scan "
                "disagree on %ld of %d requests\n",
                label, wrong, BENCH_REQUESTS);
        exit(1);
    }

    res.spread = timed(ops, reqs, BENCH_REQUESTS - 1, lookups, &res.matching);
    res.hot = timed(ops, reqs, BENCH_HOT - 1, lookups, NULL);

    /* what scanning every rule per request would cost, for comparison */

    scans = lookups / 200 > 1000 ? lookups / 200 : 1000;
    found = 0;
    t0 = now();

    for (i = 0; i < scans; i++) {
        found += reference(l, &reqs[i & (BENCH_REQUESTS - 1)]);
    }

    res.scan = (now() - t0) * 1e9 / scans;

    if (found < 0) {
        printf("%ld\n", found);     /* keeps the loop */
    }

    printf("%-20s %6zu  %8.2f  %9.1f  %9.1f  %11.0f  %5.0f%%\n",
           label, res.ops, res.build_ms, res.spread, res.hot, res.scan,
           100 * res.matching);

    ts_ops_free(ops);

    return res;
}


int
main(int argc, char **argv)
{
    long            lookups;
    bench_list_t    wbl, small, large;
    bench_result_t  wb, s300, s30k;

    if (argc < 2) {
        fprintf(stderr, "usage: ops_bench wb-operations.conf [LOOKUPS]\n");
        return 2;
    }

    lookups = argc > 2 ? atol(argv[2]) : 2000000;
    if (lookups <= 0) {
        die("LOOKUPS must be a positive number");
    }

    memset(&wbl, 0, sizeof(wbl));
    memset(&small, 0, sizeof(small));
    memset(&large, 0, sizeof(large));

    parse_catalogue(argv[1], &wbl);
    if (wbl.n == 0) {
        die("no operation found in the catalogue file");
    }

    synthetic(&small, 1, 300);
    synthetic(&large, 100, 300);

    printf("%ld lookups per run, best of 3; \"spread\": cycling through %d "
           "distinct requests,\n\"hot\": through %d (cache-resident); "
           "\"scan\": every rule compared per request\n\n",
           lookups, BENCH_REQUESTS, BENCH_HOT);
    printf("%-20s %6s  %8s  %9s  %9s  %11s  %6s\n", "catalogue", "ops",
           "build ms", "spread ns", "hot ns", "scan ns", "match");

    wb = bench("WB", &wbl, lookups);
    s300 = bench("synthetic 1x300", &small, lookups);
    s30k = bench("synthetic 100x300", &large, lookups);

    printf("\nratio 30,000 / WB %zu:   spread %.2f  hot %.2f  scan %.0f\n",
           wb.ops, s30k.spread / wb.spread, s30k.hot / wb.hot,
           s30k.scan / wb.scan);
    printf("ratio 30,000 / 300:      spread %.2f  hot %.2f  scan %.0f\n",
           s30k.spread / s300.spread, s30k.hot / s300.hot,
           s30k.scan / s300.scan);

    return 0;
}


/*
 * The operation catalogue: the input is text in the shape of a
 * "token_scope_operations" block, one operation a line
 *
 *     METHOD HOST PATH CATEGORIES read|write [types=...];
 *
 * (so lines of conf.d/wb-operations.conf are seeds as they are), plus
 *
 *     category NAME BIT           token_scope_category
 *     scope NAME                  token_scope_scope, a named scope
 *     ? METHOD HOST PATH          a request: canonical check and lookup
 *
 * Lines of any other shape are skipped.  Beyond memory safety it checks
 * that every operation added is found again by its own path, that a
 * match never names an operation of another method, and that a list of
 * categories and scope names parses into declared bits only.
 */


#include <stdlib.h>
#include <string.h>

#include "ts_fuzz.h"


#define TS_FUZZ_FIELDS  8
#define TS_FUZZ_ADDED   256


typedef struct {
    ts_str_t                method;
    ts_str_t                host;
    ts_str_t                path;
} ts_fuzz_req_t;


static void ts_fuzz_query(const ts_ops_t *ops, ts_fuzz_req_t *req,
    int must);
static void ts_fuzz_lower(ts_str_t *s);
static int ts_fuzz_types(const ts_str_t *value, unsigned *types);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t            i, n, nadded;
    uint64_t          declared;
    unsigned          bit;
    ts_op_t           op;
    ts_str_t          f[TS_FUZZ_FIELDS], bad;
    ts_ops_t         *ops;
    unsigned char    *text, *p, *end, *eol;
    ts_fuzz_req_t     req, *added;
    ts_categories_t   cats;
    char              err[TS_ERROR_MAX], *endptr;

    text = malloc(size + 1);
    added = malloc(TS_FUZZ_ADDED * sizeof(ts_fuzz_req_t));
    ops = ts_ops_create();

    if (text == NULL || added == NULL || ops == NULL) {
        goto done;
    }

    memcpy(text, data, size);
    text[size] = '\0';

    ts_categories_init(&cats);
    nadded = 0;

    for (p = text, end = text + size; p < end; p = eol + 1) {

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
        }

        /* fields split at spaces and tabs, a trailing ";" dropped */
        n = 0;

        while (p < eol && n < TS_FUZZ_FIELDS) {
            while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) {
                p++;
            }

            if (p == eol) {
                break;
            }

            f[n].data = p;

            while (p < eol && *p != ' ' && *p != '\t' && *p != '\r') {
                p++;
            }

            f[n].len = p - f[n].data;
            n++;
        }

        if (n == 0 || f[0].data[0] == '#') {
            continue;
        }

        if (f[n - 1].data[f[n - 1].len - 1] == ';') {
            if (--f[n - 1].len == 0) {
                n--;
            }
        }

        if (n == 3 && f[0].len == 8 && memcmp(f[0].data, "category", 8) == 0) {
            bit = (unsigned) strtoul((char *) f[2].data, &endptr, 10);

            (void) ts_categories_add(&cats, (char *) f[1].data, f[1].len,
                                     bit, err, sizeof(err));
            continue;
        }

        if (n == 2 && f[0].len == 5 && memcmp(f[0].data, "scope", 5) == 0) {
            if (ts_categories_add_name(&cats, (char *) f[1].data, f[1].len,
                                       err, sizeof(err))
                != 0)
            {
                ts_fuzz_assert(strlen(err) < sizeof(err));
            }

            ts_fuzz_assert(cats.nnames <= TS_NAMES_MAX);
            continue;
        }

        if (n == 4 && f[0].len == 1 && f[0].data[0] == '?') {
            ts_fuzz_lower(&f[2]);

            req.method = f[1];
            req.host = f[2];
            req.path = f[3];

            ts_fuzz_query(ops, &req, 0);
            continue;
        }

        if (n < 5 || n > 6) {
            continue;
        }

        memset(&op, 0, sizeof(ts_op_t));

        if (ts_categories_parse(&cats, f[3].data, f[3].len, &op.required,
                                &bad)
            != 0)
        {
            ts_fuzz_assert(bad.data >= f[3].data
                           && bad.data + bad.len <= f[3].data + f[3].len);
            continue;
        }

        declared = (cats.nnames == TS_NAMES_MAX)
                   ? ~(uint64_t) 0 : ((uint64_t) 1 << cats.nnames) - 1;

        ts_fuzz_assert((op.required.names & ~declared) == 0);
        ts_fuzz_assert((op.required.categories & TS_READONLY_MASK) == 0);
        ts_fuzz_assert(op.required.nany <= TS_ANY_MAX);

        for (i = 0; i < op.required.nany; i++) {
            ts_fuzz_assert((op.required.any[i].names & ~declared) == 0);
            ts_fuzz_assert(op.required.any[i].categories
                           || op.required.any[i].names);
        }

        ts_fuzz_assert(ts_required_format(&cats, &op.required, ',', err,
                                          sizeof(err))
                       < sizeof(err));

        op.write = (f[4].len == 5 && memcmp(f[4].data, "write", 5) == 0);

        if (n == 6 && ts_fuzz_types(&f[5], &op.types) != 0) {
            continue;
        }

        ts_fuzz_lower(&f[1]);

        if (ts_ops_add(ops, &f[0], &f[1], &f[2], &op, err, sizeof(err)) != 0)
        {
            ts_fuzz_assert(strlen(err) < sizeof(err));
            continue;
        }

        if (nadded < TS_FUZZ_ADDED) {
            added[nadded].method = f[0];
            added[nadded].host = f[1];
            added[nadded].path = f[2];
            nadded++;
        }
    }

    ts_fuzz_assert(ts_ops_count(ops) >= nadded);

    for (i = 0; i < nadded; i++) {
        ts_fuzz_query(ops, &added[i], 1);
    }

done:

    ts_ops_free(ops);
    free(added);
    free(text);

    return 0;
}


static void
ts_fuzz_query(const ts_ops_t *ops, ts_fuzz_req_t *req, int must)
{
    unsigned char  *buf;
    const ts_op_t  *op;

    (void) ts_path_is_canonical(req->path.data, req->path.len);

    op = ts_ops_match(ops, &req->method, &req->host, &req->path);

    if (must) {
        ts_fuzz_assert(op != NULL);
    }

    /* what matches exactly matches without case too */
    buf = malloc(req->method.len + req->path.len + 1);

    if (buf != NULL) {
        ts_fuzz_assert(op == NULL
                       || ts_ops_match_nocase(ops, &req->method, &req->host,
                                              &req->path, buf)
                          != NULL);
        free(buf);
    }

    if (op != NULL && memchr(req->method.data, '\0', req->method.len) == NULL)
    {
        /* the name is "METHOD host/path": the method is the request's */
        ts_fuzz_assert(op->name_len > req->method.len);
        ts_fuzz_assert(memcmp(op->name, req->method.data, req->method.len)
                       == 0);
        ts_fuzz_assert(op->name[req->method.len] == ' ');
        ts_fuzz_assert(op->name[op->name_len] == '\0');
    }
}


/* hosts are lower-cased by nginx, in the configuration and in requests */

static void
ts_fuzz_lower(ts_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] >= 'A' && s->data[i] <= 'Z') {
            s->data[i] |= 0x20;
        }
    }
}


/* "types=base,service" as the glue parses it */

static int
ts_fuzz_types(const ts_str_t *value, unsigned *types)
{
    int             type;
    unsigned char  *p, *last, *start;

    if (value->len < 6 || memcmp(value->data, "types=", 6) != 0) {
        return -1;
    }

    last = value->data + value->len;

    for (p = value->data + 6; p < last; p++) {
        start = p;
        p = memchr(p, ',', last - p);
        if (p == NULL) {
            p = last;
        }

        type = ts_type_by_name((const char *) start, p - start);
        if (type < 0) {
            return -1;
        }

        *types |= TS_TYPE_BIT(type);
    }

    return 0;
}

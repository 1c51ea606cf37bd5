
/*
 * The operation catalogue: (host, method, path template) -> what the
 * operation needs.  A trie keyed by host, method and path segments, with
 * sorted literal children and one "{param}" child per node: a lookup costs
 * a binary search per segment whatever the number of operations, and a
 * literal segment wins over a template.
 *
 * A second trie holds the same operations with methods and paths in lower
 * case: a request that misses the first but hits it differs from an
 * operation only in case, which a case-insensitive backend (ASP.NET, IIS)
 * would run as that operation, so the glue refuses it.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_core.h"


#define TS_OPS_DEPTH_MAX  64


typedef struct ts_ops_node_s  ts_ops_node_t;

struct ts_ops_node_s {
    char                   *label;
    size_t                  len;
    ts_ops_node_t         **children;    /* literal, sorted by label */
    size_t                  nchildren;
    size_t                  nalloc;
    ts_ops_node_t          *param;       /* "{name}" */
    ts_op_t                *op;
};

struct ts_ops_s {
    ts_ops_node_t           root;
    ts_ops_node_t           folded;      /* lower case; ops of root's */
    size_t                  count;
};


static ts_ops_node_t *ts_ops_child(ts_ops_node_t *node, const char *label,
    size_t len, int create);
static int ts_ops_cmp(const char *a, size_t alen, const char *b,
    size_t blen);
static ts_ops_node_t *ts_ops_insert(ts_ops_node_t *root,
    const ts_str_t *method, const ts_str_t *host, const ts_str_t *path,
    char *err, size_t errlen);
static const ts_op_t *ts_ops_find(const ts_ops_node_t *root,
    const ts_str_t *method, const ts_str_t *host, const ts_str_t *path);
static ts_ops_node_t *ts_ops_host(const ts_ops_node_t *root,
    const ts_str_t *host);
static const ts_op_t *ts_ops_walk(const ts_ops_node_t *node,
    const unsigned char *p, const unsigned char *end, unsigned depth);
static void ts_ops_lower(unsigned char *dst, const ts_str_t *src,
    ts_str_t *out);
static void ts_ops_node_free(ts_ops_node_t *node, int ops);


ts_ops_t *
ts_ops_create(void)
{
    return calloc(1, sizeof(ts_ops_t));
}


size_t
ts_ops_count(const ts_ops_t *ops)
{
    return ops->count;
}


int
ts_ops_add(ts_ops_t *ops, const ts_str_t *method, const ts_str_t *host,
    const ts_str_t *path, const ts_op_t *op, char *err, size_t errlen)
{
    ts_op_t        *copy;
    ts_str_t        lmethod, lpath;
    unsigned char  *buf;
    ts_ops_node_t  *node, *folded;

    if (path->len == 0 || path->data[0] != '/') {
        snprintf(err, errlen, "path must start with \"/\"");
        return -1;
    }

    node = ts_ops_insert(&ops->root, method, host, path, err, errlen);
    if (node == NULL) {
        return -1;
    }

    if (node->op != NULL) {
        snprintf(err, errlen, "duplicate operation, the same as \"%s\"",
                 node->op->name);
        return -1;
    }

    buf = malloc(method->len + path->len);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    ts_ops_lower(buf, method, &lmethod);
    ts_ops_lower(buf + method->len, path, &lpath);

    folded = ts_ops_insert(&ops->folded, &lmethod, host, &lpath, err, errlen);

    free(buf);

    if (folded == NULL) {
        return -1;
    }

    copy = malloc(sizeof(ts_op_t) + method->len + host->len + path->len + 3);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    *copy = *op;

    /* "METHOD host/path", the value of $token_scope_operation */
    copy->name = (char *) (copy + 1);
    copy->name_len = snprintf(copy->name, method->len + host->len + path->len
                              + 3, "%.*s %.*s%.*s",
                              (int) method->len, method->data,
                              (int) host->len, host->data,
                              (int) path->len, path->data);

    node->op = copy;
    ops->count++;

    /* operations that differ only in case share one folded entry */
    if (folded->op == NULL) {
        folded->op = copy;
    }

    return 0;
}


/* the node of (host, method, path) under root, created as needed */

static ts_ops_node_t *
ts_ops_insert(ts_ops_node_t *root, const ts_str_t *method,
    const ts_str_t *host, const ts_str_t *path, char *err, size_t errlen)
{
    size_t          depth;
    const char     *p, *end, *seg;
    ts_ops_node_t  *node;

    node = ts_ops_child(root, (const char *) host->data, host->len, 1);
    node = node ? ts_ops_child(node, (const char *) method->data,
                               method->len, 1)
                : NULL;

    p = (const char *) path->data;
    end = p + path->len;
    depth = 0;

    while (node != NULL) {

        while (p < end && *p == '/') {
            p++;
        }

        if (p == end) {
            return node;
        }

        seg = p;

        while (p < end && *p != '/') {
            p++;
        }

        if (++depth > TS_OPS_DEPTH_MAX) {
            snprintf(err, errlen, "path has more than %d segments",
                     TS_OPS_DEPTH_MAX);
            return NULL;
        }

        if (*seg == '{' && p[-1] == '}' && p - seg > 2
            && memchr(seg + 1, '{', p - seg - 1) == NULL
            && memchr(seg, '}', p - seg - 1) == NULL)
        {
            if (node->param == NULL) {
                node->param = calloc(1, sizeof(ts_ops_node_t));
            }

            node = node->param;
            continue;
        }

        if (memchr(seg, '{', p - seg) || memchr(seg, '}', p - seg)) {
            snprintf(err, errlen, "a template must be a whole path segment: "
                     "\"%.*s\"", (int) (p - seg), seg);
            return NULL;
        }

        node = ts_ops_child(node, seg, p - seg, 1);
    }

    snprintf(err, errlen, "out of memory");

    return NULL;
}


/* a "{param}" template is left as it is: only its position matters */

static void
ts_ops_lower(unsigned char *dst, const ts_str_t *src, ts_str_t *out)
{
    size_t  i;

    for (i = 0; i < src->len; i++) {
        dst[i] = (src->data[i] >= 'A' && src->data[i] <= 'Z')
                 ? src->data[i] | 0x20 : src->data[i];
    }

    out->data = dst;
    out->len = src->len;
}


static int
ts_ops_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int  rc;

    /* an empty host may come without data: memcmp() needs a pointer */
    rc = (alen && blen) ? memcmp(a, b, alen < blen ? alen : blen) : 0;

    if (rc != 0) {
        return rc;
    }

    return (alen > blen) - (alen < blen);
}


static ts_ops_node_t *
ts_ops_child(ts_ops_node_t *node, const char *label, size_t len, int create)
{
    int              rc;
    size_t           lo, hi, mid, n;
    ts_ops_node_t   *child, **children;

    lo = 0;
    hi = node->nchildren;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        child = node->children[mid];

        rc = ts_ops_cmp(label, len, child->label, child->len);

        if (rc == 0) {
            return child;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    if (!create) {
        return NULL;
    }

    if (node->nchildren == node->nalloc) {
        n = node->nalloc ? 2 * node->nalloc : 4;

        children = realloc(node->children, n * sizeof(ts_ops_node_t *));
        if (children == NULL) {
            return NULL;
        }

        node->children = children;
        node->nalloc = n;
    }

    child = calloc(1, sizeof(ts_ops_node_t) + len);
    if (child == NULL) {
        return NULL;
    }

    child->label = (char *) (child + 1);
    child->len = len;
    memcpy(child->label, label, len);

    memmove(&node->children[lo + 1], &node->children[lo],
            (node->nchildren - lo) * sizeof(ts_ops_node_t *));

    node->children[lo] = child;
    node->nchildren++;

    return child;
}


const ts_op_t *
ts_ops_match(const ts_ops_t *ops, const ts_str_t *method,
    const ts_str_t *host, const ts_str_t *path)
{
    return ts_ops_find(&ops->root, method, host, path);
}


/*
 * The operation that (method, path) names when case is ignored; buf holds
 * method->len + path->len bytes for the lower-cased copies
 */

const ts_op_t *
ts_ops_match_nocase(const ts_ops_t *ops, const ts_str_t *method,
    const ts_str_t *host, const ts_str_t *path, unsigned char *buf)
{
    ts_str_t  lmethod, lpath;

    ts_ops_lower(buf, method, &lmethod);
    ts_ops_lower(buf + method->len, path, &lpath);

    return ts_ops_find(&ops->folded, &lmethod, host, &lpath);
}


/*
 * host is matched as given and, failing that, without a "-sandbox"
 * suffix on its first label, so one catalogue serves both twins; then an
 * operation of host "*" (any host, as for an API served under one name)
 */

static const ts_op_t *
ts_ops_find(const ts_ops_node_t *root, const ts_str_t *method,
    const ts_str_t *host, const ts_str_t *path)
{
    ts_ops_node_t  *node;

    node = ts_ops_host(root, host);

    if (node == NULL) {
        node = ts_ops_child((ts_ops_node_t *) root, "*", 1, 0);
        if (node == NULL) {
            return NULL;
        }
    }

    node = ts_ops_child(node, (const char *) method->data, method->len, 0);
    if (node == NULL) {
        return NULL;
    }

    return ts_ops_walk(node, path->data, path->data + path->len, 0);
}


static ts_ops_node_t *
ts_ops_host(const ts_ops_node_t *root, const ts_str_t *host)
{
    size_t                len;
    const unsigned char  *dot;
    ts_ops_node_t        *node;
    char                  twin[256];

    static const char     sandbox[] = "-sandbox";

    node = ts_ops_child((ts_ops_node_t *) root,
                        (const char *) host->data, host->len, 0);

    if (node != NULL) {
        return node;
    }

    dot = host->len ? memchr(host->data, '.', host->len) : NULL;
    len = dot ? (size_t) (dot - host->data) : host->len;

    if (len < sizeof(sandbox) - 1
        || host->len >= sizeof(twin)
        || memcmp(host->data + len - (sizeof(sandbox) - 1), sandbox,
                  sizeof(sandbox) - 1)
           != 0)
    {
        return NULL;
    }

    len -= sizeof(sandbox) - 1;
    memcpy(twin, host->data, len);
    memcpy(twin + len, host->data + len + sizeof(sandbox) - 1,
           host->len - len - (sizeof(sandbox) - 1));

    return ts_ops_child((ts_ops_node_t *) root, twin,
                        host->len - (sizeof(sandbox) - 1), 0);
}


static const ts_op_t *
ts_ops_walk(const ts_ops_node_t *node, const unsigned char *p,
    const unsigned char *end, unsigned depth)
{
    const ts_op_t        *op;
    const unsigned char  *seg;
    ts_ops_node_t        *child;

    while (p < end && *p == '/') {
        p++;
    }

    if (p == end) {
        return node->op;
    }

    if (depth == TS_OPS_DEPTH_MAX) {
        return NULL;
    }

    seg = p;

    while (p < end && *p != '/') {
        p++;
    }

    child = ts_ops_child((ts_ops_node_t *) node, (const char *) seg, p - seg,
                         0);

    if (child != NULL) {
        op = ts_ops_walk(child, p, end, depth + 1);
        if (op != NULL) {
            return op;
        }
    }

    if (node->param != NULL) {
        return ts_ops_walk(node->param, p, end, depth + 1);
    }

    return NULL;
}


/*
 * Whether a raw request path names one resource only: no segment of dots
 * ("." or ".."), no empty segment, no encoded "/", "." or "\\".  The
 * catalogue matches nginx's normalized path while an upstream may get the
 * raw one, so a path that normalizes differently must not be matched at
 * all.  Servlet containers (Tomcat, Jetty, Spring) drop a ";parameter"
 * from each segment before they resolve dots: "..;" and ".;x" are ".." and
 * "." to them, and ";x" an empty segment, so a segment is judged by what
 * comes before its first ";" (or its encoded "%3B").
 */

int
ts_path_is_canonical(const unsigned char *p, size_t len)
{
    size_t  i, seg, dots, name;

    if (len == 0 || p[0] != '/') {
        return 0;
    }

    seg = 0;
    dots = 0;
    name = (size_t) -1;     /* the length before ";", none seen yet */

    for (i = 1; i <= len; i++) {

        if (i == len || p[i] == '/') {
            if (name == (size_t) -1) {
                name = seg;
            }

            /* an empty segment is fine only as a trailing slash */
            if ((seg == 0 && i != len) || (seg > 0 && name == dots)) {
                return 0;
            }

            seg = 0;
            dots = 0;
            name = (size_t) -1;
            continue;
        }

        if (p[i] == '\\') {
            return 0;
        }

        if (p[i] == '%' && i + 2 < len) {
            if ((p[i + 1] == '2' && (p[i + 2] == 'e' || p[i + 2] == 'E'
                                     || p[i + 2] == 'f' || p[i + 2] == 'F'))
                || (p[i + 1] == '5' && (p[i + 2] == 'c' || p[i + 2] == 'C')))
            {
                return 0;
            }

            if (p[i + 1] == '3' && (p[i + 2] == 'b' || p[i + 2] == 'B')
                && name == (size_t) -1)
            {
                name = seg;
            }
        }

        if (p[i] == ';' && name == (size_t) -1) {
            name = seg;
        }

        if (p[i] == '.' && name == (size_t) -1) {
            dots++;
        }

        seg++;
    }

    return 1;
}


void
ts_ops_free(ts_ops_t *ops)
{
    if (ops == NULL) {
        return;
    }

    ts_ops_node_free(&ops->root, 1);
    ts_ops_node_free(&ops->folded, 0);
    free(ops);
}


/* ops: the operations are this trie's own, not shared with another */

static void
ts_ops_node_free(ts_ops_node_t *node, int ops)
{
    size_t  i;

    for (i = 0; i < node->nchildren; i++) {
        ts_ops_node_free(node->children[i], ops);
        free(node->children[i]);
    }

    if (node->param != NULL) {
        ts_ops_node_free(node->param, ops);
        free(node->param);
    }

    free(node->children);

    if (ops) {
        free(node->op);
    }
}

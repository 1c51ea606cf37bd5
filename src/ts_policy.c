
/*
 * Categories (WB's bit table, extensible) and the policy decision for a
 * verified token: environment, token type, categories, access mode.
 */


#include <stdio.h>
#include <string.h>

#include "ts_core.h"


typedef struct {
    const char             *name;
    unsigned                bit;
    unsigned                alias;
} ts_category_default_t;


#define TS_COMMON  64


static const char *ts_categories_bit_name(const ts_categories_t *cats,
    unsigned bit, unsigned named);
static int ts_categories_reserved(const char *name, size_t len);
static size_t ts_list_next(const unsigned char *list, size_t len,
    size_t *pos, size_t *start);


static const ts_category_default_t  ts_category_defaults[] = {
    { "content",              1,  0 },
    { "contentanalytics",     2,  0 },
    { "analytics",            2,  1 },
    { "discountsandprices",   3,  0 },
    { "prices",               3,  1 },
    { "marketplace",          4,  0 },
    { "statistics",           5,  0 },
    { "advert",               6,  0 },
    { "promotion",            6,  1 },
    { "questionsandfeedback", 7,  0 },
    { "feedbacks",            7,  1 },
    { "recommendations",      8,  0 },
    { "buyerchat",            9,  0 },
    { "chat",                 9,  1 },
    { "supplies",             10, 0 },
    { "returns",              11, 0 },
    { "documents",            12, 0 },
    { "finance",              13, 0 },
    { "usermanagement",       16, 0 },
    { "users",                16, 1 },
    { "common",               TS_COMMON, 0 },
    { "commonapi",            TS_COMMON, 1 },
    { "all",                  TS_COMMON, 1 },
    { NULL, 0, 0 }
};


void
ts_categories_init(ts_categories_t *cats)
{
    ts_category_t                *c;
    const ts_category_default_t  *d;

    memset(cats, 0, sizeof(ts_categories_t));

    for (d = ts_category_defaults; d->name; d++) {
        c = &cats->items[cats->n++];

        strcpy(c->name, d->name);
        c->alias = d->alias;
        c->common = (d->bit == TS_COMMON);
        c->bit = c->common ? 0 : d->bit;
    }
}


int
ts_categories_add(ts_categories_t *cats, const char *name, size_t len,
    unsigned bit, char *err, size_t errlen)
{
    size_t          i;
    ts_category_t  *c;

    if (len == 0 || len >= TS_CATEGORY_NAME_MAX) {
        snprintf(err, errlen, "a category name is 1 to %d characters",
                 TS_CATEGORY_NAME_MAX - 1);
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '_' || name[i] == '-'))
        {
            snprintf(err, errlen, "a category name has only lower-case "
                     "letters, digits, \"_\" and \"-\"");
            return -1;
        }
    }

    if (ts_categories_reserved(name, len)) {
        snprintf(err, errlen, "\"%.*s\" is a keyword, not a name",
                 (int) len, name);
        return -1;
    }

    if (bit > TS_CATEGORY_BIT_MAX || bit == TS_READONLY_BIT) {
        snprintf(err, errlen, "a category bit is 0 to %d except %d, the "
                 "read-only flag", TS_CATEGORY_BIT_MAX, TS_READONLY_BIT);
        return -1;
    }

    c = (ts_category_t *) ts_categories_find(cats, name, len);

    if (c != NULL && (c->common || c->named)) {
        snprintf(err, errlen, "\"%.*s\" cannot be redefined", (int) len,
                 name);
        return -1;
    }

    if (c == NULL) {
        if (cats->n == TS_CATEGORIES_MAX) {
            snprintf(err, errlen, "too many categories");
            return -1;
        }

        c = &cats->items[cats->n++];
        memcpy(c->name, name, len);
        c->name[len] = '\0';
    }

    c->bit = bit;
    c->alias = 0;

    return 0;
}


/* a named scope ("read_catalog") gets the next bit of the names mask */

/* "off" (token_scope off) and "deny" (a catalogue's refusal) are words */

static int
ts_categories_reserved(const char *name, size_t len)
{
    return (len == 3 && memcmp(name, "off", 3) == 0)
           || (len == 4 && memcmp(name, "deny", 4) == 0);
}


/*
 * A digest of what every name means (its bit, and whether it is an alias,
 * "common" or a named scope): facts cached under one table keep their
 * meaning only under a table with the same digest.
 */

int
ts_categories_digest(const ts_categories_t *cats, unsigned char *out)
{
    size_t                i, n;
    unsigned char        *p;
    const ts_category_t  *c;
    unsigned char         buf[TS_CATEGORIES_MAX * (TS_CATEGORY_NAME_MAX + 2)];

    p = buf;

    for (i = 0; i < cats->n; i++) {
        c = &cats->items[i];

        /* the name with its terminating zero: "ab" "c" is not "a" "bc" */
        n = strlen(c->name) + 1;
        memcpy(p, c->name, n);
        p += n;

        *p++ = (unsigned char) c->bit;
        *p++ = (unsigned char) (c->alias | c->common << 1 | c->named << 2);
    }

    return ts_sha256(buf, p - buf, out);
}


int
ts_categories_add_name(ts_categories_t *cats, const char *name, size_t len,
    char *err, size_t errlen)
{
    size_t          i;
    ts_category_t  *c;

    if (len == 0 || len >= TS_CATEGORY_NAME_MAX) {
        snprintf(err, errlen, "a scope name is 1 to %d characters",
                 TS_CATEGORY_NAME_MAX - 1);
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] == ',' || name[i] == '"'
            || name[i] == '\\' || (unsigned char) name[i] >= 0x7f)
        {
            snprintf(err, errlen, "a scope name has no spaces, commas, "
                     "quotes or backslashes");
            return -1;
        }
    }

    if (ts_categories_reserved(name, len)) {
        snprintf(err, errlen, "\"%.*s\" is a keyword, not a name",
                 (int) len, name);
        return -1;
    }

    c = (ts_category_t *) ts_categories_find(cats, name, len);

    if (c != NULL) {
        if (c->named) {
            return 0;
        }

        snprintf(err, errlen, "\"%.*s\" is a category", (int) len, name);
        return -1;
    }

    if (cats->nnames == TS_NAMES_MAX) {
        snprintf(err, errlen, "too many scope names, at most %d",
                 TS_NAMES_MAX);
        return -1;
    }

    if (cats->n == TS_CATEGORIES_MAX) {
        snprintf(err, errlen, "too many categories and scope names, at "
                 "most %d", TS_CATEGORIES_MAX);
        return -1;
    }

    c = &cats->items[cats->n++];
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->bit = (unsigned) cats->nnames++;
    c->named = 1;

    return 0;
}


const ts_category_t *
ts_categories_find(const ts_categories_t *cats, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < cats->n; i++) {
        if (strlen(cats->items[i].name) == len
            && memcmp(cats->items[i].name, name, len) == 0)
        {
            return &cats->items[i];
        }
    }

    return NULL;
}


/*
 * A list of names separated by spaces or commas, each one needed; an item
 * "a|b" is satisfied by either name, and by any valid token if one of them
 * is "all" or "common".  -1: an unknown name, in bad (an empty list: bad
 * has no length); -2: more than TS_ANY_MAX items of alternatives, the
 * first one too many in bad.
 */

int
ts_categories_parse(const ts_categories_t *cats, const unsigned char *list,
    size_t len, ts_required_t *req, ts_str_t *bad)
{
    size_t                 pos, start, n, count;
    unsigned               common;
    ts_any_t               any;
    const unsigned char   *p, *end, *bar;
    const ts_category_t   *c;

    memset(req, 0, sizeof(ts_required_t));
    pos = 0;
    count = 0;

    while ((n = ts_list_next(list, len, &pos, &start)) != 0) {
        count++;

        memset(&any, 0, sizeof(ts_any_t));
        common = 0;

        p = list + start;
        end = p + n;

        /* each alternative of the item in turn, every one checked */
        for ( ;; ) {
            bar = memchr(p, '|', end - p);
            if (bar == NULL) {
                bar = end;
            }

            c = ts_categories_find(cats, (const char *) p, bar - p);
            if (c == NULL) {
                bad->data = (unsigned char *) p;
                bad->len = bar - p;
                return -1;
            }

            if (c->common) {
                common = 1;

            } else if (c->named) {
                any.names |= (uint64_t) 1 << c->bit;

            } else {
                any.categories |= (uint64_t) 1 << c->bit;
            }

            if (bar == end) {
                break;
            }

            p = bar + 1;
        }

        if (common) {
            req->common = 1;

        } else if (memchr(list + start, '|', n) == NULL) {
            req->categories |= any.categories;
            req->names |= any.names;

        } else if (req->nany == TS_ANY_MAX) {
            bad->data = (unsigned char *) list + start;
            bad->len = n;
            return -2;

        } else {
            req->any[req->nany++] = any;
        }
    }

    if (count == 0) {
        bad->data = (unsigned char *) list;
        bad->len = 0;
        return -1;
    }

    return 0;
}


/* the requirements of both: -1 if their alternatives do not fit */

int
ts_required_merge(ts_required_t *dst, const ts_required_t *src)
{
    if (dst->nany + src->nany > TS_ANY_MAX) {
        return -1;
    }

    dst->categories |= src->categories;
    dst->names |= src->names;
    memcpy(&dst->any[dst->nany], src->any, src->nany * sizeof(ts_any_t));
    dst->nany += src->nany;
    dst->common |= src->common;

    return 0;
}


/*
 * The names a requirement needs: those needed each, then each set of
 * alternatives as "a|b", sep between; "common" if any valid token will do
 */

size_t
ts_required_format(const ts_categories_t *cats, const ts_required_t *req,
    char sep, char *buf, size_t size)
{
    size_t  len, n, i;

    len = ts_categories_format(cats, req->categories, req->names, sep, buf,
                               size);

    for (i = 0; i < req->nany; i++) {
        if (len && len + 1 < size) {
            buf[len++] = sep;
        }

        n = ts_categories_format(cats, req->any[i].categories,
                                 req->any[i].names, '|', buf + len,
                                 size - len);
        len += n;
    }

    if (len == 0 && req->common && size > sizeof("common") - 1) {
        memcpy(buf, "common", sizeof("common") - 1);
        len = sizeof("common") - 1;
    }

    /* a set cut short at the end of buf leaves no separator behind */
    while (len && (buf[len - 1] == sep || buf[len - 1] == '|')) {
        len--;
    }

    return len;
}


/* the first category bit a requirement names, for the answer's origin */

int
ts_required_first(const ts_required_t *req, unsigned *bit)
{
    size_t    i;
    uint64_t  mask;

    mask = req->categories;

    for (i = 0; mask == 0 && i < req->nany; i++) {
        mask = req->any[i].categories;
    }

    if (mask == 0) {
        return -1;
    }

    for (*bit = 0; !(mask & ((uint64_t) 1 << *bit)); (*bit)++) {
        /* void */
    }

    return 0;
}


/*
 * What a token's list of names grants: named scopes, and categories too
 * unless categories is NULL (a JWT has "s" for them).  Unknown names grant
 * nothing: a token may carry scopes this API does not check.
 */

void
ts_categories_grant(const ts_categories_t *cats, const unsigned char *list,
    size_t len, uint64_t *categories, uint64_t *names)
{
    size_t                pos, start, n;
    const ts_category_t  *c;

    pos = 0;

    while ((n = ts_list_next(list, len, &pos, &start)) != 0) {
        c = ts_categories_find(cats, (const char *) list + start, n);

        if (c == NULL || c->common) {
            continue;
        }

        if (c->named) {
            *names |= (uint64_t) 1 << c->bit;

        } else if (categories != NULL) {
            *categories |= (uint64_t) 1 << c->bit;
        }
    }
}


/* the next name of a list separated by spaces or commas, 0 at its end */

static size_t
ts_list_next(const unsigned char *list, size_t len, size_t *pos,
    size_t *start)
{
    size_t  i;

    i = *pos;

    while (i < len && (list[i] == ' ' || list[i] == ',')) {
        i++;
    }

    *start = i;

    while (i < len && list[i] != ' ' && list[i] != ',') {
        i++;
    }

    *pos = i;

    return i - *start;
}


const char *
ts_categories_name(const ts_categories_t *cats, unsigned bit)
{
    return ts_categories_bit_name(cats, bit, 0);
}


static const char *
ts_categories_bit_name(const ts_categories_t *cats, unsigned bit,
    unsigned named)
{
    size_t  i;

    for (i = 0; i < cats->n; i++) {
        if (!cats->items[i].alias && !cats->items[i].common
            && cats->items[i].named == named && cats->items[i].bit == bit)
        {
            return cats->items[i].name;
        }
    }

    return NULL;
}


/*
 * canonical names of the category bits in mask, then of the named scopes
 * in names, "bitN" if unnamed, sep between
 */

size_t
ts_categories_format(const ts_categories_t *cats, uint64_t mask,
    uint64_t names, char sep, char *buf, size_t size)
{
    int          n;
    size_t       len, start;
    unsigned     bit, named;
    uint64_t     set;
    const char  *name;

    len = 0;

    for (bit = 0; bit < 128; bit++) {
        named = bit >= 64;
        set = named ? names : mask;

        if ((!named && bit == TS_READONLY_BIT)
            || !(set & ((uint64_t) 1 << (bit % 64))))
        {
            continue;
        }

        name = ts_categories_bit_name(cats, bit % 64, named);

        /* a separator only before a name that fits */
        start = len ? len + 1 : 0;

        if (start >= size) {
            break;
        }

        n = name ? snprintf(buf + start, size - start, "%s", name)
                 : snprintf(buf + start, size - start, "bit%u", bit % 64);

        if (n < 0 || (size_t) n >= size - start) {
            break;
        }

        if (len) {
            buf[len] = sep;
        }

        len = start + n;
    }

    return len;
}


/*
 * The decision for a token whose signature and times are already
 * checked, in the order of the specification; *missing gets what the
 * request needs and the token lacks.
 */

ts_reason_e
ts_decide(const ts_policy_t *policy, const ts_token_t *tok,
    ts_required_t *missing)
{
    size_t           i;
    uint64_t         scope;
    unsigned         category;
    const ts_any_t  *any;

    memset(missing, 0, sizeof(ts_required_t));

    if (policy->sandbox != tok->test) {
        return TS_ENVIRONMENT;
    }

    if (tok->type == TS_TYPE_LEGACY && !policy->legacy) {
        return TS_TOKEN_TYPE;
    }

    if (policy->types && !(policy->types & TS_TYPE_BIT(tok->type))) {
        return TS_TOKEN_TYPE;
    }

    /* personal tokens are for on-premise software, never a cloud service */
    if (tok->type == TS_TYPE_PERSONAL && (policy->cloud || policy->outside)) {
        return TS_PERSONAL_CLOUD;
    }

    if (tok->type == TS_TYPE_SERVICE && policy->check_secret
        && !policy->secret_ok)
    {
        return TS_SERVICE_SECRET;
    }

    /*
     * a public token (Ecwid's storefront token) reads public locations
     * whatever its scopes, writes only where a location lets it and then
     * with the scopes the write needs
     */
    if (tok->type == TS_TYPE_PUBLIC) {
        if (!policy->public_ok) {
            return TS_PUBLIC_TOKEN;
        }

        if (!policy->write) {
            return TS_OK;
        }

        if (!policy->public_write) {
            return TS_READ_ONLY;
        }
    }

    scope = tok->scope;

    if (tok->type != TS_TYPE_PERSONAL) {
        scope &= ~policy->personal_only;
    }

    missing->categories = policy->required.categories & ~scope;
    missing->names = policy->required.names & ~tok->names;
    category = (missing->categories != 0);

    for (i = 0; i < policy->required.nany; i++) {
        any = &policy->required.any[i];

        if (!(any->categories & scope) && !(any->names & tok->names)) {
            missing->any[missing->nany++] = *any;
            category |= (any->categories != 0);
        }
    }

    if (category) {
        return TS_CATEGORY;
    }

    if (missing->names || missing->nany) {
        return TS_SCOPE;
    }

    if (policy->write && (tok->scope & TS_READONLY_MASK)) {
        return TS_READ_ONLY;
    }

    return TS_OK;
}

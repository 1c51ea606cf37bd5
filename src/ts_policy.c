
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

    if (bit > TS_CATEGORY_BIT_MAX || bit == TS_READONLY_BIT) {
        snprintf(err, errlen, "a category bit is 0 to %d except %d, the "
                 "read-only flag", TS_CATEGORY_BIT_MAX, TS_READONLY_BIT);
        return -1;
    }

    c = (ts_category_t *) ts_categories_find(cats, name, len);

    if (c != NULL && c->common) {
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


/* a list of names separated by spaces or commas */

int
ts_categories_parse(const ts_categories_t *cats, const unsigned char *list,
    size_t len, uint64_t *mask, unsigned *common, ts_str_t *bad)
{
    size_t                i, start, n;
    const ts_category_t  *c;

    *mask = 0;
    *common = 0;
    n = 0;

    for (i = 0; i < len; /* void */) {

        while (i < len && (list[i] == ' ' || list[i] == ',')) {
            i++;
        }

        start = i;

        while (i < len && list[i] != ' ' && list[i] != ',') {
            i++;
        }

        if (i == start) {
            break;
        }

        n++;

        c = ts_categories_find(cats, (const char *) list + start, i - start);
        if (c == NULL) {
            bad->data = (unsigned char *) list + start;
            bad->len = i - start;
            return -1;
        }

        if (c->common) {
            *common = 1;

        } else {
            *mask |= (uint64_t) 1 << c->bit;
        }
    }

    if (n == 0) {
        bad->data = (unsigned char *) list;
        bad->len = 0;
        return -1;
    }

    return 0;
}


const char *
ts_categories_name(const ts_categories_t *cats, unsigned bit)
{
    size_t  i;

    for (i = 0; i < cats->n; i++) {
        if (!cats->items[i].alias && !cats->items[i].common
            && cats->items[i].bit == bit)
        {
            return cats->items[i].name;
        }
    }

    return NULL;
}


/* canonical names of the bits in mask, "bitN" if unnamed, sep between */

size_t
ts_categories_format(const ts_categories_t *cats, uint64_t mask, char sep,
    char *buf, size_t size)
{
    int          n;
    size_t       len;
    unsigned     bit;
    const char  *name;

    len = 0;

    for (bit = 0; bit < 64; bit++) {
        if (bit == TS_READONLY_BIT || !(mask & ((uint64_t) 1 << bit))) {
            continue;
        }

        name = ts_categories_name(cats, bit);

        if (len && len + 1 < size) {
            buf[len++] = sep;
        }

        n = name ? snprintf(buf + len, size - len, "%s", name)
                 : snprintf(buf + len, size - len, "bit%u", bit);

        if (n < 0 || (size_t) n >= size - len) {
            break;
        }

        len += n;
    }

    return len;
}


/*
 * The decision for a token whose signature and times are already
 * checked, in the order of the specification; *missing gets the
 * required bits the token lacks.
 */

ts_reason_e
ts_decide(const ts_policy_t *policy, const ts_token_t *tok,
    uint64_t *missing)
{
    uint64_t  scope;

    *missing = 0;

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

    scope = tok->scope;

    if (tok->type != TS_TYPE_PERSONAL) {
        scope &= ~policy->personal_only;
    }

    *missing = policy->required & ~scope;

    if (*missing) {
        return TS_CATEGORY;
    }

    if (policy->write && (tok->scope & TS_READONLY_MASK)) {
        return TS_READ_ONLY;
    }

    return TS_OK;
}

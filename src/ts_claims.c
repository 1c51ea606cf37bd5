
/*
 * Claims kept for variables and for the issuer and audience checks: the
 * named top-level members of the header or the payload, each as compact
 * JSON, so a cached token keeps them without its JSON text.  What a
 * variable shows is made from the compact value.
 */


#include <string.h>
#include <jansson.h>

#include "ts_core.h"


#define TS_CLAIM_NAME_MAX  256

/* 15 digits print 0.1 as "0.1", not as "0.10000000000000001" */
#define TS_CLAIM_FLAGS  (JSON_COMPACT | JSON_ENCODE_ANY                      \
                         | JSON_REAL_PRECISION(15))


static int ts_claim_join(json_t *array, unsigned char *buf, size_t *len);
static int ts_claim_plain(json_t *str);


/*
 * The claims of json (the header's if header, else the payload's) among
 * claims[0..n) into their values, the texts in buf.  0: done (*used: the
 * bytes of buf used); 1: buf is too small, *used is the size needed; -1:
 * not a JSON object, or a value that cannot be printed.
 */

int
ts_claims_extract(const unsigned char *json, size_t len, ts_claim_t *claims,
    size_t n, unsigned header, unsigned char *buf, size_t size,
    size_t *used)
{
    int            rc;
    size_t         i, off, need;
    json_t        *root, *value;
    json_error_t   error;
    char           name[TS_CLAIM_NAME_MAX];

    root = memchr(json, '\0', len) == NULL
           ? json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES,
                        &error)
           : NULL;

    if (root == NULL) {
        return -1;
    }

    rc = -1;
    off = 0;

    if (!json_is_object(root)) {
        goto done;
    }

    for (i = 0; i < n; i++) {

        if (claims[i].header != header) {
            continue;
        }

        claims[i].value.data = NULL;
        claims[i].value.len = 0;

        if (claims[i].name.len >= TS_CLAIM_NAME_MAX
            || memchr(claims[i].name.data, '\0', claims[i].name.len) != NULL)
        {
            continue;
        }

        memcpy(name, claims[i].name.data, claims[i].name.len);
        name[claims[i].name.len] = '\0';

        value = json_object_get(root, name);
        if (value == NULL) {
            continue;
        }

        need = json_dumpb(value, NULL, 0, TS_CLAIM_FLAGS);
        if (need == 0) {
            goto done;
        }

        if (off + need <= size) {
            (void) json_dumpb(value, (char *) buf + off, need,
                              TS_CLAIM_FLAGS);
            claims[i].value.data = buf + off;
            claims[i].value.len = need;
        }

        off += need;
    }

    *used = off;
    rc = (off > size) ? 1 : 0;

done:

    json_decref(root);

    return rc;
}


/*
 * A string as a compact value (an opaque token's field): buf needs
 * 6 * len + 2 bytes.  -1: not UTF-8.
 */

int
ts_claim_string(const unsigned char *s, size_t len, unsigned char *buf,
    size_t size, size_t *used)
{
    int      rc;
    json_t  *str;

    str = json_stringn((const char *) s, len);
    if (str == NULL) {
        return -1;
    }

    *used = json_dumpb(str, (char *) buf, size, TS_CLAIM_FLAGS);

    rc = (*used == 0 || *used > size) ? -1 : 0;

    json_decref(str);

    return rc;
}


/*
 * What a variable shows of a compact value: a string as is, an array of
 * strings joined with commas, null as nothing, anything else (numbers,
 * true, false, objects, other arrays) as its JSON text.  A string with a
 * control character stays JSON text, escaped: a CR LF from a claim must
 * not split an upstream's header; so does a NUL, which an opaque token's
 * field (Redis values are bytes) may hold.  buf needs value->len bytes:
 * the text shown is never longer.
 */

int
ts_claim_display(const ts_str_t *value, unsigned char *buf, size_t *len)
{
    int            rc;
    json_t        *root;
    json_error_t   error;

    if (value->len == 0) {
        *len = 0;
        return 0;
    }

    if (value->data[0] != '"' && value->data[0] != '['
        && value->data[0] != 'n')
    {
        memcpy(buf, value->data, value->len);
        *len = value->len;
        return 0;
    }

    root = json_loadb((const char *) value->data, value->len,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (root == NULL) {
        return -1;
    }

    rc = 0;

    if (json_is_null(root)) {
        *len = 0;

    } else if (json_is_string(root) && ts_claim_plain(root)) {
        *len = json_string_length(root);
        memcpy(buf, json_string_value(root), *len);

    } else if (ts_claim_join(root, buf, len) != 0) {
        memcpy(buf, value->data, value->len);
        *len = value->len;
    }

    json_decref(root);

    return rc;
}


static int
ts_claim_join(json_t *array, unsigned char *buf, size_t *len)
{
    size_t   i, n, off;
    json_t  *item;

    if (!json_is_array(array)) {
        return -1;
    }

    json_array_foreach(array, i, item) {
        if (!json_is_string(item) || !ts_claim_plain(item)) {
            return -1;
        }
    }

    off = 0;

    json_array_foreach(array, i, item) {
        if (i) {
            buf[off++] = ',';
        }

        n = json_string_length(item);
        memcpy(buf + off, json_string_value(item), n);
        off += n;
    }

    *len = off;

    return 0;
}


/* a string without control characters */

static int
ts_claim_plain(json_t *str)
{
    size_t                i, len;
    const unsigned char  *p;

    p = (const unsigned char *) json_string_value(str);
    len = json_string_length(str);

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * 1 if the compact value is a string equal to one of values, or, where
 * array, an array with such a string ("aud"); 0 otherwise, absent too
 */

int
ts_claim_match(const ts_str_t *value, const ts_str_t *values, size_t n,
    int array)
{
    int            found;
    size_t         i, j, len;
    json_t        *root, *item;
    const char    *s;
    json_error_t   error;

    if (value->data == NULL) {
        return 0;
    }

    root = json_loadb((const char *) value->data, value->len,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (root == NULL) {
        return 0;
    }

    found = 0;

    for (i = 0; !found; i++) {

        if (json_is_string(root) && i == 0) {
            item = root;

        } else if (array && json_is_array(root) && i < json_array_size(root))
        {
            item = json_array_get(root, i);

        } else {
            break;
        }

        if (!json_is_string(item)) {
            continue;
        }

        s = json_string_value(item);
        len = json_string_length(item);

        for (j = 0; j < n; j++) {
            if (values[j].len == len && memcmp(values[j].data, s, len) == 0) {
                found = 1;
                break;
            }
        }
    }

    json_decref(root);

    return found;
}

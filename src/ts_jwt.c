
/*
 * JWT compact serialization: splitting, base64url, header and claims.
 * Claims are typed strictly: a value of the wrong JSON type, a number out
 * of range or a duplicate key makes the token malformed, never "absent".
 */


#include <string.h>
#include <jansson.h>

#include "ts_core.h"


typedef struct {
    const char             *name;
    ts_alg_e                alg;
} ts_alg_name_t;


static ts_reason_e ts_token_decode_segments(ts_token_t *tok,
    const unsigned char *data, size_t len, unsigned char **p,
    ts_base64url_decode_pt decode, ts_str_t *header, ts_str_t *payload);
static int ts_segment_decode(const unsigned char *src, size_t len,
    unsigned char **p, ts_str_t *dst, ts_base64url_decode_pt decode);
static ts_reason_e ts_token_parse_header(ts_token_t *tok, ts_str_t *header,
    unsigned char **p);
static ts_reason_e ts_token_parse_claims(ts_token_t *tok, ts_str_t *payload,
    unsigned char **p, const ts_categories_t *cats);
static ts_reason_e ts_claim_names(ts_token_t *tok, json_t *value,
    const ts_categories_t *cats);
static ts_reason_e ts_claim_int(ts_token_t *tok, json_t *value,
    int64_t *out, const char *error);
static ts_reason_e ts_claim_str(ts_token_t *tok, json_t *value,
    ts_str_t *out, unsigned char **p, const char *error);
static ts_reason_e ts_token_check_type(ts_token_t *tok, json_t *acc,
    json_t *f);


static const char  *ts_reason_names[TS_REASON_MAX] = {
    "ok",
    "missing",
    "malformed",
    "bad_signature",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "revoked",
    "category",
    "read_only",
    "environment",
    "token_type",
    "service_secret",
    "personal_cloud",
    "redis_unavailable",
    "operation",
    "scope",
    "public_token",
    "unknown_token",
    "subject",
    "config",
    "issuer",
    "audience",
    "require"
};


static const char  *ts_type_names[TS_TYPE_MAX] = {
    "legacy",
    "base",
    "test",
    "personal",
    "service",
    "secret",
    "public"
};


static const ts_alg_name_t  ts_alg_names[] = {
    { "ES256", TS_ALG_ES256 },
    { "ES384", TS_ALG_ES384 },
    { "RS256", TS_ALG_RS256 },
    { "RS384", TS_ALG_RS384 },
    { "RS512", TS_ALG_RS512 },
    { "PS256", TS_ALG_PS256 },
    { "PS384", TS_ALG_PS384 },
    { "PS512", TS_ALG_PS512 },
    { "EdDSA", TS_ALG_EDDSA },
    { "HS256", TS_ALG_HS256 },
    { "HS384", TS_ALG_HS384 },
    { "HS512", TS_ALG_HS512 },
    { NULL, TS_ALG_UNKNOWN }
};


/* the base64url alphabet; '=' padding is not part of a JWT */
static const unsigned char  ts_base64url_chars[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['-'] = 1, ['_'] = 1
};


const char *
ts_reason_name(ts_reason_e reason)
{
    if ((unsigned) reason >= TS_REASON_MAX) {
        return "unknown";
    }

    return ts_reason_names[reason];
}


const char *
ts_type_name(ts_type_e type)
{
    if ((unsigned) type >= TS_TYPE_MAX) {
        return "unknown";
    }

    return ts_type_names[type];
}


int
ts_type_by_name(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < TS_TYPE_MAX; i++) {
        if (strlen(ts_type_names[i]) == len
            && memcmp(ts_type_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


ts_alg_e
ts_alg_by_name(const char *name)
{
    const ts_alg_name_t  *a;

    for (a = ts_alg_names; a->name; a++) {
        if (strcmp(a->name, name) == 0) {
            return a->alg;
        }
    }

    return TS_ALG_UNKNOWN;
}


const char *
ts_alg_name(ts_alg_e alg)
{
    const ts_alg_name_t  *a;

    for (a = ts_alg_names; a->name; a++) {
        if (a->alg == alg) {
            return a->name;
        }
    }

    return "unknown";
}


/*
 * Parses "header.payload.signature" into tok.  buf must hold
 * TS_TOKEN_BUF_SIZE(len) bytes: the decoded segments and the claim
 * strings tok points to live there, so the caller owns all memory.
 */

ts_reason_e
ts_token_parse(ts_token_t *tok, const unsigned char *data, size_t len,
    unsigned char *buf, ts_base64url_decode_pt decode,
    const ts_categories_t *cats)
{
    unsigned char  *p;
    ts_str_t        header, payload;
    ts_reason_e     rc;

    memset(tok, 0, sizeof(ts_token_t));

    p = buf;

    rc = ts_token_decode_segments(tok, data, len, &p, decode, &header,
                                  &payload);
    if (rc != TS_OK) {
        return rc;
    }

    tok->header = header;
    tok->payload = payload;

    rc = ts_token_parse_header(tok, &header, &p);
    if (rc != TS_OK) {
        return rc;
    }

    return ts_token_parse_claims(tok, &payload, &p, cats);
}


/* a token without a dot is an opaque one, looked up rather than parsed */

int
ts_token_is_jwt(const unsigned char *data, size_t len)
{
    return len && memchr(data, '.', len) != NULL;
}


static ts_reason_e
ts_token_decode_segments(ts_token_t *tok, const unsigned char *data,
    size_t len, unsigned char **p, ts_base64url_decode_pt decode,
    ts_str_t *header, ts_str_t *payload)
{
    size_t                i, dots[2], n;
    const unsigned char  *end;

    n = 0;

    for (i = 0; i < len; i++) {
        if (data[i] == '.') {
            if (n == 2) {
                tok->error = "token contains an invalid number of segments";
                return TS_MALFORMED;
            }

            dots[n++] = i;
            continue;
        }

        if (!ts_base64url_chars[data[i]]) {
            tok->error = "token contains an invalid character";
            return TS_MALFORMED;
        }
    }

    if (n != 2) {
        tok->error = "token contains an invalid number of segments";
        return TS_MALFORMED;
    }

    if (dots[0] == 0 || dots[1] == dots[0] + 1) {
        tok->error = "token has an empty header or payload";
        return TS_MALFORMED;
    }

    end = data + len;

    if (ts_segment_decode(data, dots[0], p, header, decode) != 0
        || ts_segment_decode(data + dots[0] + 1, dots[1] - dots[0] - 1, p,
                             payload, decode)
           != 0
        || ts_segment_decode(data + dots[1] + 1,
                             end - (data + dots[1] + 1), p,
                             &tok->signature, decode)
           != 0)
    {
        tok->error = "token is not valid base64url";
        return TS_MALFORMED;
    }

    tok->signed_part.data = (unsigned char *) data;
    tok->signed_part.len = dots[1];

    return TS_OK;
}


static int
ts_segment_decode(const unsigned char *src, size_t len, unsigned char **p,
    ts_str_t *dst, ts_base64url_decode_pt decode)
{
    unsigned char  c, v;

    /* a lone trailing sextet cannot encode a byte */
    if (len % 4 == 1) {
        return -1;
    }

    /*
     * the unused low bits of the last character must be zero, or one
     * signature would have several spellings
     */
    if (len % 4 != 0) {
        c = src[len - 1];
        v = (c >= 'A' && c <= 'Z') ? c - 'A'
            : (c >= 'a' && c <= 'z') ? c - 'a' + 26
            : (c >= '0' && c <= '9') ? c - '0' + 52
            : (c == '-') ? 62 : 63;

        if (v & (len % 4 == 2 ? 0x0f : 0x03)) {
            return -1;
        }
    }

    dst->data = *p;
    dst->len = 0;

    if (len == 0) {
        return 0;
    }

    if (decode(dst->data, &dst->len, src, len) != 0) {
        return -1;
    }

    *p += dst->len;

    return 0;
}


static ts_reason_e
ts_token_parse_header(ts_token_t *tok, ts_str_t *header, unsigned char **p)
{
    json_t        *root, *alg, *kid;
    ts_reason_e    rc;
    json_error_t   error;

    /* JSON has no raw NUL; Jansson would stop reading at one */
    root = memchr(header->data, '\0', header->len) == NULL
           ? json_loadb((const char *) header->data, header->len,
                        JSON_REJECT_DUPLICATES, &error)
           : NULL;

    if (root == NULL) {
        tok->error = "header is not valid JSON";
        return TS_MALFORMED;
    }

    rc = TS_MALFORMED;

    if (!json_is_object(root)) {
        tok->error = "header is not a JSON object";
        goto done;
    }

    /* RFC 7515: extensions we do not understand must be refused */
    if (json_object_get(root, "crit") != NULL) {
        tok->error = "header has a \"crit\" parameter";
        goto done;
    }

    alg = json_object_get(root, "alg");
    if (!json_is_string(alg)) {
        tok->error = "header has no \"alg\"";
        goto done;
    }

    tok->alg = ts_alg_by_name(json_string_value(alg));

    if (tok->alg == TS_ALG_UNKNOWN) {
        /* "none" and every algorithm we do not verify */
        tok->error = "signature algorithm is not allowed";
        rc = TS_BAD_SIGNATURE;
        goto done;
    }

    kid = json_object_get(root, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid)
            || json_string_length(kid) == 0
            || json_string_length(kid) > TS_KID_MAX)
        {
            tok->error = "header has an invalid \"kid\"";
            goto done;
        }

        rc = ts_claim_str(tok, kid, &tok->kid, p, "invalid \"kid\"");
        goto done;
    }

    rc = TS_OK;

done:

    json_decref(root);

    return rc;
}


static ts_reason_e
ts_token_parse_claims(ts_token_t *tok, ts_str_t *payload, unsigned char **p,
    const ts_categories_t *cats)
{
    int64_t        scope;
    json_t        *root, *value, *acc, *f;
    const char    *key;
    ts_reason_e    rc;
    json_error_t   error;

    root = memchr(payload->data, '\0', payload->len) == NULL
           ? json_loadb((const char *) payload->data, payload->len,
                        JSON_REJECT_DUPLICATES, &error)
           : NULL;

    if (root == NULL) {
        tok->error = "payload is not valid JSON";
        return TS_MALFORMED;
    }

    rc = TS_MALFORMED;
    acc = NULL;
    f = NULL;

    if (!json_is_object(root)) {
        tok->error = "payload is not a JSON object";
        goto done;
    }

    if (json_object_get(root, "accessID") != NULL) {
        tok->error = "legacy accessID tokens are not supported";
        goto done;
    }

    if (json_object_get(root, "exp") == NULL) {
        tok->error = "\"exp\" claim is missing";
        goto done;
    }

    json_object_foreach(root, key, value) {

        rc = TS_OK;

        if (strcmp(key, "exp") == 0) {
            rc = ts_claim_int(tok, value, &tok->exp, "invalid \"exp\"");

        } else if (strcmp(key, "nbf") == 0) {
            rc = ts_claim_int(tok, value, &tok->nbf, "invalid \"nbf\"");
            tok->has_nbf = 1;

        } else if (strcmp(key, "iat") == 0) {
            rc = ts_claim_int(tok, value, &tok->iat, "invalid \"iat\"");
            tok->has_iat = 1;

        } else if (strcmp(key, "oid") == 0) {
            rc = ts_claim_int(tok, value, &tok->oid, "invalid \"oid\"");
            tok->has_oid = 1;

        } else if (strcmp(key, "s") == 0) {
            /* Jansson refuses integers past int64_t; negatives are no mask */
            rc = ts_claim_int(tok, value, &scope, "invalid \"s\"");

            if (rc == TS_OK) {
                if (scope < 0) {
                    tok->error = "invalid \"s\"";
                    rc = TS_MALFORMED;
                }

                tok->scope = (uint64_t) scope;
            }

        } else if (strcmp(key, "t") == 0 || strcmp(key, "sandbox") == 0) {
            if (!json_is_boolean(value)) {
                tok->error = "invalid \"t\" or \"sandbox\"";
                rc = TS_MALFORMED;
            }

            tok->test |= json_is_true(value);

        } else if (strcmp(key, "id") == 0) {
            rc = ts_claim_str(tok, value, &tok->id, p, "invalid \"id\"");

        } else if (strcmp(key, "sid") == 0) {
            rc = ts_claim_str(tok, value, &tok->sid, p, "invalid \"sid\"");

        } else if (strcmp(key, "acc") == 0) {
            acc = value;

        } else if (strcmp(key, "for") == 0) {
            f = value;

        } else if (cats != NULL && cats->nnames
                   && (strcmp(key, "scope") == 0 || strcmp(key, "scp") == 0
                       || strcmp(key, "scopes") == 0))
        {
            rc = ts_claim_names(tok, value, cats);
        }

        if (rc != TS_OK) {
            goto done;
        }
    }

    rc = ts_token_check_type(tok, acc, f);

    if (rc == TS_OK && f != NULL && tok->type == TS_TYPE_SERVICE) {
        rc = ts_claim_str(tok, f, &tok->service, p, "invalid \"for\"");
        tok->service.data += sizeof("asid:") - 1;
        tok->service.len -= sizeof("asid:") - 1;
    }

done:

    json_decref(root);

    return rc;
}


/* "acc", "for" and "t" must tell the same story */

static ts_reason_e
ts_token_check_type(ts_token_t *tok, json_t *acc, json_t *f)
{
    const char  *s;

    if (f != NULL && !json_is_string(f)) {
        tok->error = "invalid \"for\"";
        return TS_MALFORMED;
    }

    s = f ? json_string_value(f) : NULL;

    if (acc == NULL) {
        tok->type = TS_TYPE_LEGACY;
        return TS_OK;
    }

    if (!json_is_integer(acc)
        || json_integer_value(acc) < TS_TYPE_BASE
        || json_integer_value(acc) > TS_TYPE_SERVICE)
    {
        tok->error = "invalid \"acc\"";
        return TS_MALFORMED;
    }

    tok->type = (ts_type_e) json_integer_value(acc);

    switch (tok->type) {

    case TS_TYPE_TEST:
        if (!tok->test) {
            tok->error = "test token without \"t\"";
            return TS_MALFORMED;
        }

        break;

    case TS_TYPE_PERSONAL:
        if (s != NULL && strcmp(s, "self") != 0) {
            tok->error = "personal token not issued for \"self\"";
            return TS_MALFORMED;
        }

        break;

    case TS_TYPE_SERVICE:
        if (s == NULL
            || strncmp(s, "asid:", sizeof("asid:") - 1) != 0
            || json_string_length(f) == sizeof("asid:") - 1)
        {
            tok->error = "service token without \"for\": \"asid:...\"";
            return TS_MALFORMED;
        }

        break;

    default:
        break;
    }

    return TS_OK;
}


/*
 * OAuth scopes: "scope" is a space-separated string (RFC 8693), "scp" and
 * "scopes" are arrays or strings in the wild; names not declared with
 * token_scope_scope grant nothing
 */

static ts_reason_e
ts_claim_names(ts_token_t *tok, json_t *value, const ts_categories_t *cats)
{
    size_t   i;
    json_t  *item;

    if (json_is_string(value)) {
        ts_categories_grant(cats,
                            (const unsigned char *) json_string_value(value),
                            json_string_length(value), NULL, &tok->names);
        return TS_OK;
    }

    if (!json_is_array(value)) {
        tok->error = "invalid \"scope\", \"scp\" or \"scopes\"";
        return TS_MALFORMED;
    }

    json_array_foreach(value, i, item) {
        if (!json_is_string(item)) {
            tok->error = "invalid \"scope\", \"scp\" or \"scopes\"";
            return TS_MALFORMED;
        }

        ts_categories_grant(cats,
                            (const unsigned char *) json_string_value(item),
                            json_string_length(item), NULL, &tok->names);
    }

    return TS_OK;
}


static ts_reason_e
ts_claim_int(ts_token_t *tok, json_t *value, int64_t *out, const char *error)
{
    if (!json_is_integer(value)) {
        tok->error = error;
        return TS_MALFORMED;
    }

    *out = json_integer_value(value);

    return TS_OK;
}


static ts_reason_e
ts_claim_str(ts_token_t *tok, json_t *value, ts_str_t *out,
    unsigned char **p, const char *error)
{
    size_t  len;

    if (!json_is_string(value)) {
        tok->error = error;
        return TS_MALFORMED;
    }

    /* the decoded JSON text is longer than any string in it */
    len = json_string_length(value);

    out->data = *p;
    out->len = len;
    memcpy(out->data, json_string_value(value), len);

    *p += len;

    return TS_OK;
}


ts_reason_e
ts_token_check_time(const ts_token_t *tok, int64_t now, int64_t leeway)
{
    if (!tok->no_exp && tok->exp <= now - leeway) {
        return TS_EXPIRED;
    }

    if (tok->has_nbf && tok->nbf > now + leeway) {
        return TS_NOT_YET_VALID;
    }

    if (tok->has_iat && tok->iat > now + leeway) {
        return TS_NOT_YET_VALID;
    }

    return TS_OK;
}


/*
 * The token scope core: JWT decoding, signature verification, claim
 * checks and the policy decision.  It includes no nginx header, so the
 * unit tests and the fuzzers link it on its own; the nginx glue maps its
 * reason codes to statuses, log levels and response bodies.
 */


#ifndef _TS_CORE_H_INCLUDED_
#define _TS_CORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define TS_KID_MAX            128
#define TS_CATEGORY_NAME_MAX  32
#define TS_CATEGORIES_MAX     128

/* named scopes ("read_catalog") are bits of a mask of their own */
#define TS_NAMES_MAX          64

/* Jansson holds integers as int64_t: bits 0-62 of "s" are usable */
#define TS_CATEGORY_BIT_MAX   62
#define TS_ERROR_MAX          256

/* bit 30 of "s" marks a read-only token, it is not a category */
#define TS_READONLY_BIT       30
#define TS_READONLY_MASK      ((uint64_t) 1 << TS_READONLY_BIT)

#define TS_SHA256_LEN           32

/* ts_sha256_recent(): data remembered per process, and up to what size */
#define TS_RECENT_SLOTS         256
#define TS_RECENT_MAX_LEN       2048
#define TS_SECRETS_PER_SERVICE  4

/* a parsed token needs this much scratch memory for a token of len bytes */
#define TS_TOKEN_BUF_SIZE(len)  (2 * (len) + 16)


typedef struct {
    size_t                  len;
    unsigned char          *data;
} ts_str_t;


/* stable reason codes, the values of $token_scope_reason */
typedef enum {
    TS_OK = 0,
    TS_MISSING,
    TS_MALFORMED,
    TS_BAD_SIGNATURE,
    TS_UNKNOWN_KEY,
    TS_EXPIRED,
    TS_NOT_YET_VALID,
    TS_REVOKED,
    TS_CATEGORY,
    TS_READ_ONLY,
    TS_ENVIRONMENT,
    TS_TOKEN_TYPE,
    TS_SERVICE_SECRET,
    TS_PERSONAL_CLOUD,
    TS_REDIS_UNAVAILABLE,
    TS_OPERATION,
    TS_SCOPE,
    TS_PUBLIC_TOKEN,
    TS_UNKNOWN_TOKEN,
    TS_SUBJECT,
    TS_CONFIG,                   /* a rule that names nothing known */
    TS_ISSUER,
    TS_AUDIENCE,
    TS_REQUIRE,
    TS_REASON_MAX
} ts_reason_e;


typedef enum {
    TS_ALG_UNKNOWN = 0,
    TS_ALG_ES256,
    TS_ALG_ES384,
    TS_ALG_RS256,
    TS_ALG_RS384,
    TS_ALG_RS512,
    TS_ALG_PS256,
    TS_ALG_PS384,
    TS_ALG_PS512,
    TS_ALG_EDDSA,
    TS_ALG_HS256,
    TS_ALG_HS384,
    TS_ALG_HS512,
    TS_ALG_MAX
} ts_alg_e;


/*
 * the values of "acc" up to TS_TYPE_SERVICE, a token without "acc" is a
 * legacy token; secret and public tokens are opaque ones (Ecwid's kinds)
 */
typedef enum {
    TS_TYPE_LEGACY = 0,
    TS_TYPE_BASE,
    TS_TYPE_TEST,
    TS_TYPE_PERSONAL,
    TS_TYPE_SERVICE,
    TS_TYPE_SECRET,
    TS_TYPE_PUBLIC,
    TS_TYPE_MAX
} ts_type_e;

#define TS_TYPE_BIT(type)  (1u << (type))


/* a claim kept for variables and checks: its value as compact JSON */
typedef struct {
    ts_str_t                name;
    ts_str_t                value;       /* data NULL: the token has none */
    unsigned                header:1;    /* of the JOSE header */
} ts_claim_t;


typedef struct {
    ts_alg_e                alg;
    ts_str_t                kid;

    /* the decoded JSON texts, until the buffer of the parse is freed */
    ts_str_t                header;
    ts_str_t                payload;

    /* the claims kept, set by the caller after the parse */
    ts_claim_t             *claims;
    size_t                  nclaims;

    /* "header.payload", the bytes the signature covers */
    ts_str_t                signed_part;
    ts_str_t                signature;

    uint64_t                scope;
    uint64_t                names;       /* named scopes granted */
    int64_t                 exp;
    int64_t                 nbf;
    int64_t                 iat;
    int64_t                 oid;

    ts_type_e               type;

    ts_str_t                id;
    ts_str_t                sid;
    ts_str_t                service;     /* the id after "asid:" in "for" */

    unsigned                has_nbf:1;
    unsigned                has_iat:1;
    unsigned                has_oid:1;
    unsigned                test:1;      /* "t" or the obsolete "sandbox" */
    unsigned                opaque:1;    /* facts from Redis, not a JWT */
    unsigned                no_exp:1;    /* an opaque token that never ends */

    /* why a token is malformed, a static string */
    const char             *error;

    /* the key a signature check ran with (ts_token_verify()), or NULL */
    const char             *checked_kid;
    unsigned                checked:1;
} ts_token_t;


/*
 * Decodes base64url without padding into dst (room for 3 * len / 4 bytes);
 * returns 0 and the decoded length, or -1.  The glue passes nginx's own
 * ngx_decode_base64url(); the core checks the alphabet before calling it.
 */
typedef int (*ts_base64url_decode_pt)(unsigned char *dst, size_t *dst_len,
    const unsigned char *src, size_t len);


typedef struct ts_key_s  ts_key_t;

typedef struct {
    ts_key_t               *keys;
    size_t                  nkeys;
    size_t                  nalloc;

    /* of every key loaded, so caches tell keysets apart */
    unsigned char           fingerprint[TS_SHA256_LEN];
} ts_keyset_t;


typedef struct {
    char                    name[TS_CATEGORY_NAME_MAX];
    unsigned                bit;
    unsigned                alias:1;
    unsigned                common:1;    /* "all", "common": no bit needed */
    unsigned                named:1;     /* a named scope, a bit of names */
} ts_category_t;

typedef struct {
    ts_category_t           items[TS_CATEGORIES_MAX];
    size_t                  n;
    size_t                  nnames;      /* named scopes declared */
} ts_categories_t;


/* "content|advert": names of which any one will do */
typedef struct {
    uint64_t                categories;
    uint64_t                names;
} ts_any_t;

#define TS_ANY_MAX            8

/* what a request needs, or what a token lacks */
typedef struct {
    uint64_t                categories;  /* bits of "s", each one needed */
    uint64_t                names;       /* named scopes, each one needed */
    ts_any_t                any[TS_ANY_MAX];  /* one of each needed */
    unsigned                nany;
    unsigned                common:1;    /* any valid token will do */
} ts_required_t;


/* a slot of the revocation table; key 0 is an empty slot */
typedef struct {
    uint64_t                key;
    int64_t                 value;
} ts_slot_t;

typedef struct {
    size_t                  capacity;
    size_t                  count;
    ts_slot_t               slots[];
} ts_table_t;


typedef enum {
    TS_REVOKE_ID = 0,
    TS_UNREVOKE_ID,
    TS_REVOKE_SELLER,
    TS_UNREVOKE_SELLER,
    TS_SECRETS_CHANGED,
    TS_OPAQUE_CHANGED
} ts_revoke_op_e;

typedef struct {
    ts_revoke_op_e          op;
    ts_str_t                id;          /* token id or seller id */
    int64_t                 time;        /* TS_REVOKE_SELLER */
    unsigned char           digest[TS_SHA256_LEN];  /* TS_OPAQUE_CHANGED */
} ts_revoke_msg_t;

#define TS_TABLE_KEY_ID      'i'
#define TS_TABLE_KEY_SELLER  's'
#define TS_TABLE_KEY_SECRET  'v'

#define TS_SERVICE_ID_MAX    128


typedef struct ts_service_s  ts_service_t;

typedef struct {
    ts_service_t           *services;    /* sorted by id */
    size_t                  n;
    size_t                  nalloc;
} ts_secrets_t;


typedef enum {
    TS_ACCESS_AUTO = 0,
    TS_ACCESS_READ,
    TS_ACCESS_WRITE
} ts_access_e;


/* what one request needs, and what it carries besides the token */
typedef struct {
    ts_required_t           required;
    uint64_t                personal_only;
    unsigned                types;       /* TS_TYPE_BIT()s allowed, 0: any */

    unsigned                write:1;     /* the request writes */
    unsigned                sandbox:1;   /* a sandbox server */
    unsigned                legacy:1;    /* legacy tokens accepted */
    unsigned                cloud:1;     /* a cloud service's request */
    unsigned                outside:1;   /* outside the personal networks */
    unsigned                check_secret:1;  /* service secrets configured */
    unsigned                secret_ok:1; /* X-Client-Secret is the service's */
    unsigned                public_ok:1; /* public tokens may call it */
    unsigned                public_write:1;  /* and may write */
} ts_policy_t;


/* what one catalogued operation needs */
typedef struct {
    ts_required_t           required;
    unsigned                types;
    unsigned                write:1;
    unsigned                public:1;    /* public tokens may call it */
    unsigned                deny:1;      /* no token may call it */
    char                   *name;        /* "METHOD host/path-template" */
    size_t                  name_len;
} ts_op_t;

typedef struct ts_ops_s  ts_ops_t;


const char *ts_reason_name(ts_reason_e reason);
const char *ts_type_name(ts_type_e type);
int ts_type_by_name(const char *name, size_t len);
ts_alg_e ts_alg_by_name(const char *name);
const char *ts_alg_name(ts_alg_e alg);

ts_reason_e ts_token_parse(ts_token_t *tok, const unsigned char *data,
    size_t len, unsigned char *buf, ts_base64url_decode_pt decode,
    const ts_categories_t *cats);
int ts_token_is_jwt(const unsigned char *data, size_t len);
ts_reason_e ts_token_check_time(const ts_token_t *tok, int64_t now,
    int64_t leeway);

int ts_claims_extract(const unsigned char *json, size_t len,
    ts_claim_t *claims, size_t n, unsigned header, unsigned char *buf,
    size_t size, size_t *used);
int ts_claim_display(const ts_str_t *value, unsigned char *buf,
    size_t *len);
int ts_claim_string(const unsigned char *s, size_t len, unsigned char *buf,
    size_t size, size_t *used);
int ts_claim_match(const ts_str_t *value, const ts_str_t *values, size_t n,
    int array);

int ts_keyset_add_pem(ts_keyset_t *ks, const unsigned char *pem, size_t len,
    const char *kid, char *err, size_t errlen);
int ts_keyset_add_jwks(ts_keyset_t *ks, const unsigned char *json,
    size_t len, ts_base64url_decode_pt decode, char *err, size_t errlen);
void ts_keyset_free(ts_keyset_t *ks);
size_t ts_keyset_kids(const ts_keyset_t *ks, const char **kids, size_t n);
unsigned ts_keyset_algs(const ts_keyset_t *ks, size_t i);
const char *ts_openssl_version(void);
ts_reason_e ts_token_verify(const ts_keyset_t *ks, ts_token_t *tok);

void ts_categories_init(ts_categories_t *cats);
int ts_categories_add(ts_categories_t *cats, const char *name, size_t len,
    unsigned bit, char *err, size_t errlen);
const ts_category_t *ts_categories_find(const ts_categories_t *cats,
    const char *name, size_t len);
int ts_categories_add_name(ts_categories_t *cats, const char *name,
    size_t len, char *err, size_t errlen);
int ts_categories_digest(const ts_categories_t *cats, unsigned char *out);
int ts_categories_parse(const ts_categories_t *cats,
    const unsigned char *list, size_t len, ts_required_t *req, ts_str_t *bad);
int ts_required_merge(ts_required_t *dst, const ts_required_t *src);
size_t ts_required_format(const ts_categories_t *cats,
    const ts_required_t *req, char sep, char *buf, size_t size);
int ts_required_first(const ts_required_t *req, unsigned *bit);
void ts_categories_grant(const ts_categories_t *cats,
    const unsigned char *list, size_t len, uint64_t *categories,
    uint64_t *names);
const char *ts_categories_name(const ts_categories_t *cats, unsigned bit);
size_t ts_categories_format(const ts_categories_t *cats, uint64_t mask,
    uint64_t names, char sep, char *buf, size_t size);

int ts_sha256(const unsigned char *data, size_t len, unsigned char *out);
void ts_sha256_cleanup(void);
int ts_hex_digest(const char *p, size_t len, unsigned char *out);
uint64_t ts_table_secret_key(const ts_str_t *service,
    const unsigned char *digest);
int ts_sha256_pair(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen, unsigned char *out);
int ts_sha256_recent(const unsigned char *salt, size_t salt_len,
    const unsigned char *data, size_t len, unsigned char *out);
int ts_secrets_load(ts_secrets_t *secrets, const unsigned char *text,
    size_t len, char *err, size_t errlen);
int ts_secrets_match(const ts_secrets_t *secrets, const ts_str_t *service,
    const unsigned char *digest);
void ts_secrets_free(ts_secrets_t *secrets);

size_t ts_table_size(size_t capacity);
size_t ts_table_capacity(size_t size);
void ts_table_init(ts_table_t *t, size_t capacity);
size_t ts_table_clear(ts_table_t *t, size_t from, size_t n);
uint64_t ts_table_key(char kind, const unsigned char *data, size_t len);
uint64_t ts_table_key_once(char kind, const unsigned char *data, size_t len);
void ts_table_prefetch(const ts_table_t *t, uint64_t key);
int ts_table_put(ts_table_t *t, uint64_t key, int64_t value);
int ts_table_get(const ts_table_t *t, uint64_t key, int64_t *value);
void ts_table_del(ts_table_t *t, uint64_t key);
int64_t ts_token_issued(const ts_token_t *tok, int64_t lifetime,
    int64_t now);
int ts_revoke_message(const unsigned char *msg, size_t len,
    ts_revoke_msg_t *out);
int ts_parse_time(const unsigned char *p, size_t len, int64_t *out);

ts_ops_t *ts_ops_create(void);
int ts_ops_add(ts_ops_t *ops, const ts_str_t *method, const ts_str_t *host,
    const ts_str_t *path, const ts_op_t *op, char *err, size_t errlen);
const ts_op_t *ts_ops_match(const ts_ops_t *ops, const ts_str_t *method,
    const ts_str_t *host, const ts_str_t *path);
const ts_op_t *ts_ops_match_nocase(const ts_ops_t *ops,
    const ts_str_t *method, const ts_str_t *host, const ts_str_t *path,
    unsigned char *buf);
size_t ts_ops_count(const ts_ops_t *ops);
int ts_path_is_canonical(const unsigned char *p, size_t len);
void ts_ops_free(ts_ops_t *ops);

ts_reason_e ts_decide(const ts_policy_t *policy, const ts_token_t *tok,
    ts_required_t *missing);


#endif /* _TS_CORE_H_INCLUDED_ */

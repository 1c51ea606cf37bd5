#!/usr/bin/perl

# token_scope: required categories (names, aliases, "all"/"common", a
# $variable from map $host, "off"), report mode, the deny status, the
# origin, the error answer and the variables.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_category wbnew 20;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    map $host $ts_required {
        default              marketplace;
        content-api.test     content;
        either-api.test      "content|advert";
        spaces-api.test      "content statistics";
        commas-api.test      "content,statistics";
        common-api.test      common;
        open.test            off;
        broken.test          nosuchcategory;
        empty.test           "";
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-Request-Id $request_id always;
        add_header X-TS-Decision $token_scope_decision always;
        add_header X-TS-Reason $token_scope_reason always;

        location /marketplace {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /several {
            token_scope content marketplace;
            proxy_pass http://backend;
        }

        location /alias {
            token_scope prices;
            proxy_pass http://backend;
        }

        location /all {
            token_scope all;
            proxy_pass http://backend;
        }

        location /common {
            token_scope common;
            proxy_pass http://backend;
        }

        location /commonapi {
            token_scope commonapi;
            proxy_pass http://backend;
        }

        location /either {
            token_scope content|advert;
            add_header X-TS-Required $token_scope_required always;
            proxy_pass http://backend;
        }

        location /either-and {
            token_scope content|promotion marketplace;
            proxy_pass http://backend;
        }

        location /either-all {
            token_scope all|content;
            proxy_pass http://backend;
        }

        location /custom {
            token_scope wbnew;
            proxy_pass http://backend;
        }

        location /byhost {
            token_scope $ts_required;
            proxy_pass http://backend;
        }

        location /nested {
            token_scope marketplace;
            proxy_pass http://backend;

            location /nested/off {
                token_scope off;
                proxy_pass http://backend;
            }
        }

        location /unprotected {
            proxy_pass http://backend;
        }

        location /report {
            token_scope marketplace;
            token_scope_mode report;
            proxy_pass http://backend;
        }

        location /forbidden {
            token_scope marketplace;
            token_scope_deny_status 403;
            proxy_pass http://backend;
        }

        location /origin {
            token_scope marketplace;
            token_scope_origin s2s-api-auth-custom;
            proxy_pass http://backend;
        }

        location /vars {
            token_scope marketplace;

            add_header X-TS-Id $token_scope_id always;
            add_header X-TS-Type $token_scope_type always;
            add_header X-TS-Seller $token_scope_seller always;
            add_header X-TS-Seller-Oid $token_scope_seller_oid always;
            add_header X-TS-Service $token_scope_service always;
            add_header X-TS-Categories $token_scope_categories always;
            add_header X-TS-Readonly $token_scope_readonly always;
            add_header X-TS-Required $token_scope_required always;
            add_header X-TS-Decision $token_scope_decision always;
            add_header X-TS-Reason $token_scope_reason always;
            add_header X-TS-Exp $token_scope_exp always;
            add_header X-TS-Kid $token_scope_kid always;

            proxy_set_header X-Seller $token_scope_seller;
            proxy_set_header X-Token-Type $token_scope_type;
            proxy_pass http://backend/echo;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }

        location /echo {
            return 200 "seller=$http_x_seller type=$http_x_token_type\n";
        }
    }
}
EOF

$t->run();

my $content = $t->mint('e1', '--categories', 'content');
my $market = $t->mint('e1', '--categories', 'marketplace');
my $both = $t->mint('e1', '--categories', 'content,marketplace');
my $stats = $t->mint('e1', '--categories', 'content,statistics');
my $prices = $t->mint('e1', '--categories', 'discountsandprices');
my $none = $t->mint('e1', '--s', '0');
my $wbnew = $t->mint('e1', '--s', 1 << 20);
my $expired = $t->mint('e1', '--categories', 'marketplace',
                       '--claim', 'exp=' . (time() - 600));

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }


# categories

is(answer('/marketplace', $market), '200', 'a marketplace token passes a marketplace location');
is(get('/marketplace', $market)->{body}, "backend ok\n", 'the allowed request reaches the backend');
is(answer('/marketplace', $content), '401 category', 'a content token is refused by a marketplace location');
is(answer('/marketplace', $none), '401 category', 'a token without categories is refused by a marketplace location');
is(answer('/marketplace'), '401 missing', 'a request without a token is refused');
is(answer('/marketplace', $both), '200', 'a token with more categories than needed passes');

is(answer('/several', $both), '200', 'a token with all required categories passes');
is(answer('/several', $content), '401 category', 'a token missing one of several required categories is refused');
is(answer('/several', $market), '401 category', 'a token missing the other required category is refused');

is(answer('/alias', $prices), '200', 'the alias "prices" means discountsandprices');
is(answer('/alias', $t->mint('e1', '--categories', 'prices')), '200', 'a token minted with the alias passes');
is(answer('/alias', $market), '401 category', 'a marketplace token is refused where prices are required');

is(answer('/all', $none), '200', '"all" lets a token without categories pass');
is(answer('/all', $market), '200', '"all" lets any valid token pass');
is(answer('/all'), '401 missing', '"all" still needs a token');
is(answer('/all', $expired), '401 expired', '"all" still needs a valid token');
is(answer('/common', $none), '200', '"common" lets a token without categories pass');
is(answer('/common'), '401 missing', '"common" still needs a token');
is(answer('/commonapi', $none), '200', '"commonapi" lets a token without categories pass');


# alternatives: any one of them

my $advert = $t->mint('e1', '--categories', 'advert');
my $content_market = $t->mint('e1', '--categories', 'content,marketplace');

is(answer('/either', $content), '200', 'content|advert admits a content token');
is(answer('/either', $advert), '200', 'content|advert admits an advert token');
is(answer('/either', $market), '401 category', 'content|advert refuses a token with neither');
my $either = get('/either', $market);
is($either->{json}{detail}, 'token scope not allowed; the token lacks the content|advert category', 'the refusal names the alternatives as written');
like($either->{headers}{'www-authenticate'}, qr/scope="content\|advert"/, 'WWW-Authenticate names the alternatives as one scope');
is($either->{headers}{'x-ts-required'}, 'content|advert', '$token_scope_required names the alternatives');
is($either->{json}{origin}, 's2s-api-auth-content', 'the origin names the first alternative');
is(answer('/either-and', $content_market), '200', 'alternatives and a category besides: a token with one of them and the other passes');
is(answer('/either-and', $content), '401 category', 'alternatives and a category besides: the other category is still needed');
is(answer('/either-and', $market), '401 category', 'alternatives and a category besides: one of the alternatives is still needed');
is(answer('/either-all', $none), '200', 'all among alternatives admits any valid token');
is(answer('/byhost', $advert, Host => 'either-api.test'), '200', 'alternatives in a variable admit either category');
is(answer('/byhost', $market, Host => 'either-api.test'), '401 category', 'alternatives in a variable refuse a token with neither');

is(answer('/custom', $wbnew), '200', 'a category added with token_scope_category is granted by its bit');
is(answer('/custom', $market), '401 category', 'a category added with token_scope_category is enforced');


# categories from a variable (map $host)

is(answer('/byhost', $market), '200', 'the map default (marketplace) admits a marketplace token');
is(answer('/byhost', $content), '401 category', 'the map default (marketplace) refuses a content token');
is(answer('/byhost', $content, Host => 'content-api.test'), '200', 'a host mapped to content admits a content token');
is(answer('/byhost', $market, Host => 'content-api.test'), '401 category', 'a host mapped to content refuses a marketplace token');
is(answer('/byhost', $stats, Host => 'spaces-api.test'), '200', 'a space-separated list from a variable admits a token with both');
is(answer('/byhost', $content, Host => 'spaces-api.test'), '401 category', 'a space-separated list from a variable requires every category');
is(answer('/byhost', $stats, Host => 'commas-api.test'), '200', 'a comma-separated list from a variable admits a token with both');
is(answer('/byhost', $content, Host => 'commas-api.test'), '401 category', 'a comma-separated list from a variable requires every category');
is(answer('/byhost', $none, Host => 'common-api.test'), '200', 'a host mapped to common admits any valid token');
is(answer('/byhost', undef, Host => 'common-api.test'), '401 missing', 'a host mapped to common still needs a token');
is(answer('/byhost', undef, Host => 'open.test'), '200', 'a host mapped to off is not enforced');
is(get('/byhost', $market, Host => 'broken.test')->{status}, 500, 'an unknown category name in the variable is a 500');
like($t->read_file('error.log'), qr/\[(error|crit)\].*nosuchcategory/, 'the unknown category name is logged');
is(get('/byhost', $market, Host => 'empty.test')->{status}, 500, 'an empty variable is a 500');


# off

is(answer('/nested', $market), '200', 'the enclosing location is enforced for a good token');
is(answer('/nested'), '401 missing', 'the enclosing location is enforced');
is(answer('/nested/off'), '200', 'token_scope off in a nested location lets a request without a token pass');
is(answer('/nested/off', 'garbage'), '200', 'token_scope off ignores a broken token');
is(answer('/unprotected'), '200', 'a location without token_scope is not enforced');


# report mode

my $res = get('/report', $content);
is($res->{status}, 200, 'report mode lets a token without the category pass');
is($res->{body}, "backend ok\n", 'report mode passes the request to the backend');
is($res->{headers}{'x-ts-decision'}, 'report', 'report mode sets the decision to report');
is($res->{headers}{'x-ts-reason'}, 'category', 'report mode keeps the reason');
like($t->read_file('error.log'), qr/\[warn\].*category/, 'report mode logs the would-be denial as a warning');
is(get('/report')->{status}, 200, 'report mode lets a request without a token pass');
is(get('/report', $market)->{headers}{'x-ts-decision'}, 'allow', 'report mode allows a good token');


# deny status

$res = get('/forbidden', $content);
is(verdict($res), '403 category', 'token_scope_deny_status 403 answers a scope failure with 403');
is($res->{json}{title}, 'forbidden', 'a 403 answer has the title forbidden');
is($res->{json}{statusText}, 'Forbidden', 'a 403 answer has the statusText Forbidden');
is($res->{json}{status}, 403, 'a 403 answer has the status 403 in the body');
is(answer('/forbidden'), '401 missing', 'a missing token is still 401 under deny_status 403');
is(answer('/forbidden', $expired), '401 expired', 'an expired token is still 401 under deny_status 403');
is(answer('/forbidden', 'abc'), '401 malformed', 'a malformed token is still 401 under deny_status 403');
is(answer('/forbidden', $market), '200', 'deny_status 403 lets a good token pass');


# the error answer

$res = get('/marketplace', $content);
my $j = $res->{json} // {};

is($res->{status}, 401, 'a scope failure is 401 by default');
like($res->{headers}{'content-type'}, qr{^application/json}, 'the error answer is application/json');
ok(ref $res->{json} eq 'HASH', 'the error answer is a JSON object');
is($j->{title}, 'unauthorized', 'the title is unauthorized');
like($j->{detail}, qr/^token scope not allowed/, 'the detail starts with the WB phrase');
like($j->{detail}, qr/marketplace/i, 'the detail names the missing category');
is($j->{code}, 'category', 'the code is category');
like($j->{requestId}, qr/^[0-9a-f]{32}$/, 'the requestId is 32 hex digits');
is($j->{requestId}, $res->{headers}{'x-request-id'}, 'the requestId is $request_id');
is($j->{origin}, 's2s-api-auth-marketplace', 'the default origin names the required category');
like($res->{body}, qr/"status"\s*:\s*401[,}]/, 'the status is a JSON number');
is($j->{statusText}, 'Unauthorized', 'the statusText is Unauthorized');
like($j->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'the timestamp is ISO 8601 in UTC');
cmp_ok(abs((TokenScope::Test::parse_timestamp($j->{timestamp}) // 0) - time()), '<', 120, 'the timestamp is now');
is(join(',', sort keys %$j), 'code,detail,origin,requestId,status,statusText,timestamp,title', 'the answer has exactly the WB fields');
like($res->{headers}{'www-authenticate'}, qr/^Bearer error="insufficient_scope"/, 'a scope failure says insufficient_scope');
like($res->{headers}{'www-authenticate'}, qr/scope="marketplace"/, 'a scope failure names the scope');
is($res->{headers}{'x-ts-decision'}, 'deny', 'a refused request has the decision deny');
is($res->{headers}{'x-ts-reason'}, 'category', 'a refused request has the reason category');
my $sig = (split /\./, $content)[2];
unlike($res->{body}, qr/\Q$sig\E/, 'the answer does not echo the token');

$res = get('/marketplace');
is($res->{headers}{'www-authenticate'}, 'Bearer', 'a missing token is answered with a plain Bearer challenge');
is($res->{json}{detail}, 'empty Authorization header', 'a missing token has the WB detail');
is($res->{headers}{'x-ts-reason'}, 'missing', 'a missing token has the reason missing');

$res = get('/marketplace', 'abc.def');
like($res->{headers}{'www-authenticate'}, qr/^Bearer error="invalid_token", error_description="[^"]+"$/, 'a malformed token is answered with invalid_token');
like($res->{json}{detail}, qr/^token problem; token is malformed: ./, 'a malformed token has the WB detail and a reason');

$res = get('/marketplace', $expired);
is($res->{json}{detail}, 'token expired', 'an expired token has the WB detail');
like($res->{headers}{'www-authenticate'}, qr/^Bearer error="invalid_token"/, 'an expired token is answered with invalid_token');


# origin

is(get('/several', $content)->{json}{origin}, 's2s-api-auth-content', 'the default origin names the first required category');
is(get('/all')->{json}{origin}, 's2s-api-auth-common', 'the default origin of "all" is s2s-api-auth-common');
is(get('/common')->{json}{origin}, 's2s-api-auth-common', 'the default origin of "common" is s2s-api-auth-common');
is(get('/custom')->{json}{origin}, 's2s-api-auth-wbnew', 'the default origin of an added category names it');
is(get('/origin', $content)->{json}{origin}, 's2s-api-auth-custom', 'token_scope_origin sets the origin');
is(get('/origin')->{json}{origin}, 's2s-api-auth-custom', 'token_scope_origin also applies to a missing token');


# variables

my $exp = time() + 1800;
my $svc = $t->mint('e1', '--categories', 'content,marketplace',
                   '--type', 'service', '--service', '777',
                   '--claim', 'id="0199a0a0-0000-7000-8000-000000000001"',
                   '--claim', 'sid="5e11e7a1-2222-4c2d-9e3f-000000000002"',
                   '--claim', 'oid=4242', '--claim', "exp=$exp");

$res = get('/vars', $svc);
my $h = $res->{headers};

is($res->{status}, 200, 'a service token with the category passes');
is($res->{body}, "seller=5e11e7a1-2222-4c2d-9e3f-000000000002 type=service\n", 'the variables can be passed upstream');
is($h->{'x-ts-id'}, '0199a0a0-0000-7000-8000-000000000001', '$token_scope_id is the token id');
is($h->{'x-ts-type'}, 'service', '$token_scope_type is service');
is($h->{'x-ts-seller'}, '5e11e7a1-2222-4c2d-9e3f-000000000002', '$token_scope_seller is the sid');
is($h->{'x-ts-seller-oid'}, '4242', '$token_scope_seller_oid is the oid');
is($h->{'x-ts-service'}, '777', '$token_scope_service is the asid');
is($h->{'x-ts-categories'}, 'content,marketplace', '$token_scope_categories lists the canonical names');
is($h->{'x-ts-readonly'}, '0', '$token_scope_readonly is 0 for a read-write token');
is($h->{'x-ts-required'}, 'marketplace', '$token_scope_required names the required category');
is($h->{'x-ts-decision'}, 'allow', '$token_scope_decision is allow');
is($h->{'x-ts-reason'}, 'ok', '$token_scope_reason is ok');
is($h->{'x-ts-exp'}, $exp, '$token_scope_exp is the exp claim');
is($h->{'x-ts-kid'}, 'e1', '$token_scope_kid is the kid');

$h = get('/vars', $t->mint('e1', '--categories', 'marketplace,prices', '--readonly'))->{headers};
is($h->{'x-ts-readonly'}, '1', '$token_scope_readonly is 1 for a read-only token');
is($h->{'x-ts-categories'}, 'discountsandprices,marketplace', '$token_scope_categories has canonical names in bit order and no read-only bit');
is($h->{'x-ts-type'}, 'base', '$token_scope_type is base');
ok(!defined $h->{'x-ts-service'}, '$token_scope_service is empty for a base token');

$h = get('/vars', $t->mint('e1', '--type', 'legacy', '--categories', 'marketplace'))->{headers};
is($h->{'x-ts-type'}, 'legacy', '$token_scope_type is legacy for a token without acc');

$h = get('/vars', $t->mint('e1', '--type', 'personal', '--categories', 'marketplace'))->{headers};
is($h->{'x-ts-type'}, 'personal', '$token_scope_type is personal');

$h = get('/vars', $content)->{headers};
is($h->{'x-ts-decision'}, 'deny', '$token_scope_decision is deny for a refused token');
is($h->{'x-ts-reason'}, 'category', '$token_scope_reason is category for a refused token');
is($h->{'x-ts-categories'}, 'content', '$token_scope_categories is known for a refused token');

$h = get('/vars')->{headers};
is($h->{'x-ts-reason'}, 'missing', '$token_scope_reason is missing without a token');
ok(!defined $h->{'x-ts-id'}, '$token_scope_id is empty without a token');


# the audit log

my $log = $t->read_file('access.log');
like($log, qr{"GET /vars HTTP/1.0" 200 decision=allow reason=ok id=0199a0a0-0000-7000-8000-000000000001 kid=e1 seller=5e11e7a1-}, 'the access log records an allowed request with the token id');
like($log, qr{"GET /marketplace HTTP/1.0" 401 decision=deny reason=category id=\S+ kid=e1}, 'the access log records a refused request with its reason');
like($log, qr{"GET /report HTTP/1.0" 200 decision=report reason=category}, 'the access log records a reported request');

$t->done_testing();

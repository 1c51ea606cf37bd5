#!/usr/bin/perl

# Subrequests: nginx skips the access phase for them, so the module must
# decide them where they do run, with the main request's token.  An
# auth_request location with token_scope is a working authorization
# backend (empty_gif or proxy_pass as its content handler), and takes the
# main request's facts rather than looking the token up again; an SSI
# include of a protected location shows the protected content only to a
# good token, and a mirror into a protected location never reaches its
# backend with a refused token.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use JSON::PP;
use TokenScope::Test qw(verdict token_claims);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    # a cache to count how often a token is looked up
    token_scope_cache zone=c:1m;

    log_format mirrored '$request';

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        # auth_request with empty_gif as the authorization answer

        location /orders/ {
            auth_request /authz;
            auth_request_set $authz_reason $token_scope_reason;
            add_header X-Authz-Reason $authz_reason always;
            proxy_pass http://backend;
        }

        location = /authz {
            internal;
            token_scope marketplace;
            empty_gif;
        }

        location /orders403/ {
            auth_request /authz403;
            proxy_pass http://backend;
        }

        location = /authz403 {
            internal;
            token_scope marketplace;
            token_scope_deny_status 403;
            empty_gif;
        }

        # a protected location that asks /authz too: the subrequest takes
        # the main request's facts, the token is looked up once

        location /both/ {
            token_scope marketplace;
            auth_request /authz;
            proxy_pass http://backend;
        }

        # auth_request with proxy_pass as the authorization answer

        location /proxied/ {
            auth_request /authz-proxy;
            proxy_pass http://backend;
        }

        location = /authz-proxy {
            internal;
            token_scope marketplace;
            proxy_pass http://backend/authz-ok;
        }

        # SSI: the page is not protected, the included location is

        location /page/ {
            ssi on;
            proxy_pass http://backend/page;
        }

        location /protected/ {
            token_scope marketplace;
            proxy_pass http://backend/secret;
        }

        # mirror into a protected location

        location /m/ {
            mirror /mirror;
            proxy_pass http://backend;
        }

        location = /mirror {
            internal;
            token_scope marketplace;
            proxy_pass http://backend/mirrored;
        }

        location = /status {
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        access_log %%TESTDIR%%/backend.log;

        location / {
            return 200 "backend ok\n";
        }

        location = /authz-ok {
            return 200 "authorized\n";
        }

        location = /page {
            default_type text/html;
            return 200 '<html><body>PAGE-BEGIN <!--# include virtual="/protected/x" --> PAGE-END</body></html>\n';
        }

        location /secret {
            return 200 "SECRET-CONTENT\n";
        }

        location = /mirrored {
            access_log %%TESTDIR%%/mirrored.log mirrored;
            return 204;
        }
    }
}
EOF

$t->run();

my $market = $t->mint('e1', '--categories', 'marketplace');
my $content = $t->mint('e1', '--categories', 'content');
my $expired = $t->mint('e1', '--categories', 'marketplace',
                       '--claim', 'exp=' . (int(time()) - 600));

# the marketplace token's claims signed with e2 but claiming to be e1's
my $forged = $t->craft(key => 'e2',
                       header => '{"alg":"ES256","kid":"e1","typ":"JWT"}',
                       payload => JSON::PP->new->canonical
                                  ->encode(token_claims($market)));

# a content token with a known id, used only through auth_request
my $subid = '0199a0a0-0000-7000-8000-0000000000a1';
my $content_sub = $t->mint('e1', '--categories', 'content',
                           '--claim', qq{id="$subid"});

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }

sub poll {
    my ($check, $seconds) = @_;
    my $until = time() + ($seconds // 5);

    until ($check->()) {
        return 0 if time() > $until;
        sleep 0.05;
    }

    return 1;
}

# the cache counter NAME of the status page

sub cache_count {
    my ($name) = @_;
    my $body = $t->get('/status')->{body};
    return $body =~ /^token_scope_cache_\Q$name\E (\d+)$/m ? $1 : -1;
}

sub deny_count {
    my ($reason) = @_;
    my $body = $t->get('/status')->{body};
    return $body =~ /^token_scope_decisions_total\{decision="deny",reason="\Q$reason\E"\} (\d+)$/m ? $1 : 0;
}


# baseline: the protected locations themselves, requested directly

is(answer('/protected/x', $market), '200', 'a marketplace token passes the protected location requested directly');
is(get('/protected/x', $market)->{body}, "SECRET-CONTENT\n", 'the protected location answers the secret to a good token');
is(answer('/protected/x'), '401 missing', 'the protected location refuses a direct request without a token');
is(answer('/protected/x', $forged), '401 bad_signature', 'the protected location refuses the forged token directly');
is(answer('/protected/x', $expired), '401 expired', 'the protected location refuses the expired token directly');


# auth_request with empty_gif

my $res = get('/orders/1', $market);
is($res->{status}, 200, 'auth_request admits a marketplace token');
is($res->{body}, "backend ok\n", 'the admitted request reaches the backend');
is($res->{headers}{'x-authz-reason'}, 'ok', 'the authorization subrequest decided ok for a marketplace token');

$res = get('/orders/2');
is($res->{status}, 401, 'auth_request refuses a request without a token with 401');
is($res->{headers}{'www-authenticate'}, 'Bearer', 'the 401 without a token carries the plain Bearer challenge');
unlike($res->{body}, qr/backend ok/, 'the request without a token does not reach the backend');
is($res->{headers}{'x-authz-reason'}, 'missing', 'the authorization subrequest decided missing without a token');

$res = get('/orders/3', $content);
is($res->{status}, 401, 'auth_request refuses a content-only token with 401');
like($res->{headers}{'www-authenticate'} // '', qr/^Bearer error="insufficient_scope"/, 'the 401 for a content token says insufficient_scope');
like($res->{headers}{'www-authenticate'} // '', qr/scope="marketplace"/, 'the 401 for a content token names the marketplace scope');
is($res->{headers}{'x-authz-reason'}, 'category', 'the authorization subrequest decided category for a content token');

$res = get('/orders/4', $forged);
is($res->{status}, 401, 'auth_request refuses a forged token with 401');
like($res->{headers}{'www-authenticate'} // '', qr/^Bearer error="invalid_token"/, 'the 401 for a forged token says invalid_token');

$res = get('/orders/5', $expired);
is($res->{status}, 401, 'auth_request refuses an expired token with 401');
like($res->{headers}{'www-authenticate'} // '', qr/^Bearer error="invalid_token"/, 'the 401 for an expired token says invalid_token');

is(get('/orders/6', 'garbage')->{status}, 401, 'auth_request refuses a malformed token with 401');

# with token_scope_deny_status 403 in the authorization location

is(get('/orders403/1', $market)->{status}, 200, 'auth_request with deny_status 403 admits a marketplace token');
is(get('/orders403/2', $content)->{status}, 403, 'auth_request with deny_status 403 refuses a content token with 403');
is(get('/orders403/3')->{status}, 401, 'auth_request with deny_status 403 still refuses a missing token with 401');
is(get('/orders403/4', $expired)->{status}, 401, 'auth_request with deny_status 403 still refuses an expired token with 401');


# a protected location with auth_request: the subrequest reuses the facts
# the main request found, so a new token is verified and looked up once

my ($hits, $misses) = (cache_count('hits_total'), cache_count('misses_total'));
is(answer('/both/1', $t->mint('e1', '--categories', 'marketplace')), '200', 'a new marketplace token passes a protected location that also asks /authz');
is(cache_count('misses_total') - $misses, 1, 'the new token through the location and its auth_request subrequest is one cache miss');
is(cache_count('hits_total') - $hits, 0, 'and no cache hit: the subrequest reuses the main request\'s facts');


# auth_request with proxy_pass

$res = get('/proxied/1', $market);
is($res->{status}, 200, 'auth_request to a proxying location admits a marketplace token');
is($res->{body}, "backend ok\n", 'the request admitted through the proxying location reaches the backend');

is(get('/proxied/2')->{status}, 401, 'auth_request to a proxying location refuses a request without a token');
is(get('/proxied/3', $content)->{status}, 401, 'auth_request to a proxying location refuses a content token');
is(get('/proxied/4', $forged)->{status}, 401, 'auth_request to a proxying location refuses a forged token');
is(get('/proxied/5', $expired)->{status}, 401, 'auth_request to a proxying location refuses an expired token');
my @authz = $t->read_file('backend.log') =~ m{"GET /authz-ok }g;
is(scalar @authz, 1, 'only the admitted request reached the authorization backend');


# SSI

$res = get('/page/');
is($res->{status}, 200, 'the SSI page without a token is served');
like($res->{body}, qr/PAGE-BEGIN.*PAGE-END/s, 'the SSI page without a token has its own content');
unlike($res->{body}, qr/SECRET-CONTENT/, 'the SSI page without a token does not include the protected content');

$res = get('/page/', $content);
is($res->{status}, 200, 'the SSI page with a content token is served');
unlike($res->{body}, qr/SECRET-CONTENT/, 'the SSI page with a content token does not include the protected content');

$res = get('/page/', $expired);
unlike($res->{body}, qr/SECRET-CONTENT/, 'the SSI page with an expired token does not include the protected content');

$res = get('/page/', $market);
is($res->{status}, 200, 'the SSI page with a marketplace token is served');
like($res->{body}, qr/PAGE-BEGIN\s*SECRET-CONTENT\s*PAGE-END/, 'the SSI page with a marketplace token includes the protected content');


# mirror

sub mirror_case {
    my ($tag, $token) = @_;

    my $res = get("/m/x?tag=$tag", $token);

    # the main request is logged once its mirror subrequest has finished
    my $logged = poll(sub {
        $t->read_file('access.log') =~ m{"GET /m/x\?tag=$tag HTTP/1\.0"};
    });

    return ($res, $logged);
}

sub mirrored { $t->read_file('mirrored.log') =~ /tag=$_[0]\b/ ? 1 : 0 }

my ($mres, $logged) = mirror_case('market1', $market);
is($mres->{status}, 200, 'a mirrored request with a marketplace token is answered 200');
ok($logged, 'the mirrored request with a marketplace token is logged');
ok(poll(sub { mirrored('market1') }), 'the mirror with a marketplace token reaches the mirror backend');

($mres, $logged) = mirror_case('none1');
is($mres->{status}, 200, 'a mirrored request without a token is answered 200 by its own location');
is($mres->{body}, "backend ok\n", 'the main request without a token still reaches its own backend');
ok($logged, 'the mirrored request without a token is logged');
is(mirrored('none1'), 0, 'the mirror without a token never reaches the mirror backend');

($mres, $logged) = mirror_case('content1', $content);
is($mres->{status}, 200, 'a mirrored request with a content token is answered 200 by its own location');
ok($logged, 'the mirrored request with a content token is logged');
is(mirrored('content1'), 0, 'the mirror with a content token never reaches the mirror backend');


# a refused subrequest is logged and counted once

my $before = deny_count('category');
is(get('/orders/7', $content_sub)->{status}, 401, 'a content token with a known id is refused through auth_request');
is(deny_count('category') - $before, 1, 'the refused authorization subrequest is counted once');
like($t->read_file('error.log'), qr/denied.*\Q$subid\E/, 'the refused authorization subrequest is logged with its token id');

like($t->read_file('access.log'), qr{"GET /orders/7 HTTP/1\.0" 401 }, 'the main request refused through auth_request is logged with 401');

$t->done_testing();

#!/usr/bin/perl

# token_scope_issuer and token_scope_audience: "iss" must be one of the
# values (a string), "aud" a string or an array with one of them; a token
# without the claim is refused (reasons issuer, audience).  The same
# answers for a token from the cache.  token_scope_require: values from a
# map over claim variables, each non-empty and not "0", else reason
# require with 401 or error=403.

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
    token_scope_cache zone=c:1m;

    map $token_scope_claim_role $is_admin {
        admin    1;
        default  0;
    }

    map $token_scope_claim_email_verified $verified {
        true     1;
        default  "";
    }

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        token_scope all;

        location /iss {
            token_scope_issuer https://id.example https://id2.example;
            proxy_pass http://backend;
        }

        location /aud {
            token_scope_audience api;
            proxy_pass http://backend;
        }

        location /both {
            token_scope_issuer https://id.example;
            token_scope_audience api mobile;
            proxy_pass http://backend;
        }

        location /admin {
            token_scope_require $verified $is_admin error=403;
            proxy_pass http://backend;
        }

        location /verified {
            token_scope_require $verified;
            proxy_pass http://backend;
        }

        location /plain {
            proxy_pass http://backend;
        }

        location = /status {
            token_scope off;
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }
    }
}
EOF

$t->run();

sub v {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}

sub mint { $t->mint('e1', @_) }

sub hits {
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_hits_total (\d+)$/m;
    return $v // -1;
}

# each case twice: verified, then from the cache
sub twice {
    my ($path, $token, $expect, $name) = @_;
    is(v($path, $token), $expect, $name);
    is(v($path, $token), $expect, "$name (cached)");
}


# issuer

my $iss1 = mint('--claim', 'iss="https://id.example"');
my $iss2 = mint('--claim', 'iss="https://id2.example"');
my $other = mint('--claim', 'iss="https://evil.example"');
my $prefix = mint('--claim', 'iss="https://id.example/"');
my $noiss = mint();
my $arriss = mint('--claim', 'iss=["https://id.example"]');
my $numiss = mint('--claim', 'iss=1');

my $hits = hits();
twice('/iss', $iss1, '200', 'an issuer among the values passes');
cmp_ok(hits(), '>', $hits, 'the second request was a cache hit');
twice('/iss', $iss2, '200', 'the second issuer passes');
twice('/iss', $other, '401 issuer', 'another issuer is refused');
twice('/iss', $prefix, '401 issuer', 'an issuer with a byte more is refused');
twice('/iss', $noiss, '401 issuer', 'a token without iss is refused');
twice('/iss', $arriss, '401 issuer', 'an iss that is an array is refused');
twice('/iss', $numiss, '401 issuer', 'an iss that is a number is refused');
is(v('/plain', $other), '200', 'a location without token_scope_issuer takes any issuer');

my $r = $t->get('/iss', Authorization => "Bearer $other");
like($r->{headers}{'www-authenticate'} // '', qr/invalid_token/, 'an issuer refusal says invalid_token');
like($r->{json}{detail} // '', qr/issuer/, 'its detail names the issuer');


# audience

my $aud = mint('--claim', 'aud="api"');
my $auds = mint('--claim', 'aud=["web","api"]');
my $web = mint('--claim', 'aud=["web"]');
my $upper = mint('--claim', 'aud="API"');
my $noaud = mint();
my $objaud = mint('--claim', 'aud={"api":true}');

twice('/aud', $aud, '200', 'an audience string among the values passes');
twice('/aud', $auds, '200', 'an audience array with one of the values passes');
twice('/aud', $web, '401 audience', 'an audience array without the values is refused');
twice('/aud', $upper, '401 audience', 'audiences are compared byte for byte');
twice('/aud', $noaud, '401 audience', 'a token without aud is refused');
twice('/aud', $objaud, '401 audience', 'an aud that is an object is refused');

my $both = mint('--claim', 'iss="https://id.example"',
                '--claim', 'aud=["x","mobile"]');
twice('/both', $both, '200', 'issuer and audience both right pass');
twice('/both', $aud, '401 issuer', 'a right audience without the issuer is refused: issuer');
twice('/both', $iss1, '401 audience', 'a right issuer without the audience is refused: audience');


# require

my $admin = mint('--claim', 'role="admin"', '--claim', 'email_verified=true');
my $user = mint('--claim', 'role="user"', '--claim', 'email_verified=true');
my $unverified = mint('--claim', 'role="admin"',
                      '--claim', 'email_verified=false');
my $none = mint();

twice('/admin', $admin, '200', 'a verified admin meets both requirements');
twice('/admin', $user, '403 require', 'a user is refused with error=403');
twice('/admin', $unverified, '403 require', 'an unverified admin is refused with error=403');
twice('/admin', $none, '403 require', 'a token without the claims is refused');
twice('/verified', $user, '200', 'a verified user meets the one requirement');
twice('/verified', $unverified, '401 require', 'without error= the refusal is 401');

$t->done_testing();

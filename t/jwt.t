#!/usr/bin/perl

# JWT: the Authorization header, every supported algorithm with keys from
# PEM files and from JWKS files, HMAC only from a JWKS "oct" key, and the
# choice of the key by kid.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e256');
$t->keygen('ES384', 'e384');
$t->keygen('RS256', 'r1');
$t->keygen('EdDSA', 'ed');
$t->keygen('HS256', 'h1');
$t->keygen('ES256', 'k1');
$t->keygen('ES256', 'k2');
$t->keygen('ES256', 'solo');

# the same keys in JWKS files without "alg": any algorithm of the key type
for my $kid (qw(r1 h1)) {
    my $jwks = $t->read_file("keys/$kid.jwks");
    $jwks =~ s/"alg"\s*:\s*"\w+"\s*,?//;
    $jwks =~ s/,(\s*})/$1/;
    $jwks =~ s/"kid"\s*:\s*"$kid"/"kid": "$kid-any"/;
    $t->write_file("keys/$kid-any.jwks", $jwks);
}

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-TS-Reason $token_scope_reason always;
        add_header X-TS-Kid $token_scope_kid always;

        location /pem {
            token_scope all;
            token_scope_key_file %%KEYS%%/e256.pem kid=e256;
            token_scope_key_file %%KEYS%%/e384.pem kid=e384;
            token_scope_key_file %%KEYS%%/r1.pem kid=r1;
            token_scope_key_file %%KEYS%%/ed.pem kid=ed;
            proxy_pass http://backend;
        }

        location /jwks {
            token_scope all;
            token_scope_key_file %%KEYS%%/e256.jwks;
            token_scope_key_file %%KEYS%%/e384.jwks;
            token_scope_key_file %%KEYS%%/r1.jwks;
            token_scope_key_file %%KEYS%%/ed.jwks;
            token_scope_key_file %%KEYS%%/h1.jwks;
            proxy_pass http://backend;
        }

        location /jwks-any {
            token_scope all;
            token_scope_key_file %%KEYS%%/r1-any.jwks;
            token_scope_key_file %%KEYS%%/h1-any.jwks;
            proxy_pass http://backend;
        }

        location /noverify {
            token_scope marketplace;
            token_scope_verify off;
            proxy_pass http://backend;
        }

        location /two {
            token_scope all;
            token_scope_key_file %%KEYS%%/k1.pem kid=k1;
            token_scope_key_file %%KEYS%%/k2.jwks;
            proxy_pass http://backend;
        }

        location /one {
            token_scope all;
            token_scope_key_file %%KEYS%%/solo.pem;
            proxy_pass http://backend;
        }

        location /one-kid {
            token_scope all;
            token_scope_key_file %%KEYS%%/solo.pem kid=solo;
            proxy_pass http://backend;
        }

        location /one-jwks {
            token_scope all;
            token_scope_key_file %%KEYS%%/solo.jwks;
            proxy_pass http://backend;
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

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }


# the Authorization header

my $tok = $t->mint('e256');

is(verdict($t->get('/pem', Authorization => "Bearer $tok")), '200', 'a "Bearer" token passes');
is(verdict($t->get('/pem', Authorization => "bearer $tok")), '200', 'the scheme is case-insensitive (bearer)');
is(verdict($t->get('/pem', Authorization => "BEARER $tok")), '200', 'the scheme is case-insensitive (BEARER)');
is(verdict($t->get('/pem', Authorization => "Bearer    $tok")), '200', 'spaces after the scheme are skipped');
is(verdict($t->get('/pem', Authorization => $tok)), '200', 'a bare token passes');
is(verdict($t->get('/pem')), '401 missing', 'a request without Authorization is refused as missing');
is(verdict($t->get('/pem', Authorization => '')), '401 missing', 'an empty Authorization header is refused as missing');
is(verdict($t->get('/pem', Authorization => 'Bearer')), '401 missing', 'a scheme without a token is refused as missing');
is(verdict($t->get('/pem', Authorization => 'Bearer ')), '401 missing', 'a scheme and a space without a token are refused as missing');
is(verdict($t->get('/pem', Authorization => 'bearer    ')), '401 missing', 'a scheme in lower case and spaces without a token are refused as missing');
is(verdict($t->get('/pem', Authorization => 'Basic dXNlcjpwYXNzd29yZA==')), '401 malformed', 'a Basic credential is refused as malformed');
is(verdict($t->get('/pem', Authorization => "Bearer $tok trailing")), '401 malformed', 'text after the token is refused as malformed');
is(verdict($t->get('/pem', Authorization => "Token $tok")), '401 malformed', 'another scheme is refused as malformed');


# algorithms, keys from PEM files

is(answer('/pem', $t->mint('e256')), '200', 'ES256 with a PEM P-256 key passes');
is(answer('/pem', $t->mint('e384')), '200', 'ES384 with a PEM P-384 key passes');
is(answer('/pem', $t->mint('r1')), '200', 'RS256 with a PEM RSA key passes');
is(answer('/pem', $t->mint('r1', '--alg', 'RS384')), '200', 'RS384 with a PEM RSA key passes');
is(answer('/pem', $t->mint('r1', '--alg', 'RS512')), '200', 'RS512 with a PEM RSA key passes');
is(answer('/pem', $t->mint('r1', '--alg', 'PS256')), '200', 'PS256 with a PEM RSA key passes');
is(answer('/pem', $t->mint('r1', '--alg', 'PS384')), '200', 'PS384 with a PEM RSA key passes');
is(answer('/pem', $t->mint('r1', '--alg', 'PS512')), '200', 'PS512 with a PEM RSA key passes');
is(answer('/pem', $t->mint('ed')), '200', 'EdDSA with a PEM Ed25519 key passes');
is(answer('/pem', $t->mint('h1')), '401 unknown_key', 'HS256 is refused where no oct key is configured');

is(answer('/pem', $t->craft(key => 'e256')), '200', 'an ES256 token signed by openssl passes');
is(answer('/pem', $t->craft(key => 'r1', header => '{"alg":"PS256","kid":"r1"}')), '200', 'a PS256 token signed by openssl passes');
is(answer('/pem', $t->craft(key => 'ed')), '200', 'an EdDSA token signed by openssl passes');


# algorithms, keys from JWKS files

is(answer('/jwks', $t->mint('e256')), '200', 'ES256 with a JWKS EC P-256 key passes');
is(answer('/jwks', $t->mint('e384')), '200', 'ES384 with a JWKS EC P-384 key passes');
is(answer('/jwks', $t->mint('r1')), '200', 'RS256 with a JWKS RSA key passes');
is(answer('/jwks', $t->mint('ed')), '200', 'EdDSA with a JWKS OKP key passes');
is(answer('/jwks', $t->mint('h1')), '200', 'HS256 with a JWKS oct key passes');
is(answer('/jwks', $t->mint('r1', '--alg', 'PS256')), '401 bad_signature', 'PS256 is refused by a JWKS RSA key pinned to RS256 by "alg"');
is(answer('/jwks', $t->mint('h1', '--alg', 'HS512')), '401 bad_signature', 'HS512 is refused by a JWKS oct key pinned to HS256 by "alg"');

is(answer('/jwks-any', $t->mint('r1', '--kid', 'r1-any', '--alg', 'PS256')), '200', 'PS256 with a JWKS RSA key without "alg" passes');
is(answer('/jwks-any', $t->mint('r1', '--kid', 'r1-any', '--alg', 'RS512')), '200', 'RS512 with a JWKS RSA key without "alg" passes');
is(answer('/jwks-any', $t->mint('r1', '--kid', 'r1-any', '--alg', 'PS384')), '200', 'PS384 with a JWKS RSA key without "alg" passes');
is(answer('/jwks-any', $t->mint('h1', '--kid', 'h1-any', '--alg', 'HS384')), '200', 'HS384 with a JWKS oct key without "alg" passes');
is(answer('/jwks-any', $t->mint('h1', '--kid', 'h1-any', '--alg', 'HS512')), '200', 'HS512 with a JWKS oct key without "alg" passes');
is(answer('/jwks-any', $t->mint('r1', '--kid', 'r1-any', '--header', 'alg="ES256"')), '401 bad_signature', 'ES256 is refused by an RSA key without "alg"');
is(answer('/jwks', $t->craft(key => 'h1')), '200', 'an HS256 token signed by Digest::SHA passes');


# the key is chosen by kid

my $res = get('/two', $t->mint('k1'));
is($res->{status}, 200, 'the first of two keys is chosen by its kid');
is($res->{headers}{'x-ts-kid'}, 'k1', 'the kid of the first key is in $token_scope_kid');
$res = get('/two', $t->mint('k2'));
is($res->{status}, 200, 'the second of two keys is chosen by its kid');
is($res->{headers}{'x-ts-kid'}, 'k2', 'the kid of the second key is in $token_scope_kid');
is(answer('/two', $t->mint('k2', '--kid', 'k1')), '401 bad_signature', 'a token signed by one key under the kid of the other is refused');
is(answer('/two', $t->mint('k1', '--no-kid')), '401 unknown_key', 'a token without kid is refused when two keys are configured');
is(answer('/two', $t->mint('k1', '--kid', '20990101v1')), '401 unknown_key', 'a token with an unknown kid is refused');
is(answer('/two', $t->mint('e256')), '401 unknown_key', 'a token of a key configured elsewhere is refused');

$res = get('/two', $t->mint('k1', '--kid', 'nosuchkid'));
is($res->{json}{detail}, 'token problem; unknown signing key', 'an unknown key has the WB detail');
like($res->{headers}{'www-authenticate'}, qr/^Bearer error="invalid_token"/, 'an unknown key is answered with invalid_token');

is(answer('/one', $t->mint('solo', '--no-kid')), '200', 'a token without kid passes when exactly one key is configured');
is(answer('/one-kid', $t->mint('solo', '--no-kid')), '200', 'a token without kid passes the only key even if the key has a kid');
is(answer('/one-kid', $t->mint('solo')), '200', 'a token with the kid of the only key passes');
is(answer('/one-kid', $t->mint('solo', '--kid', 'other')), '401 unknown_key', 'a token with another kid is refused by a single key');
is(answer('/one-jwks', $t->mint('solo', '--no-kid')), '200', 'a token without kid passes a single JWKS key');
is(answer('/one-jwks', $t->mint('k1', '--no-kid')), '401 bad_signature', 'a token without kid signed by another key is refused');


# token_scope_verify off decodes without checking the signature

is(answer('/noverify', $t->mint('k1', '--categories', 'marketplace')), '200', 'verify off admits a token of any key');
is(answer('/noverify', $t->mint('k2', '--categories', 'marketplace', '--kid', 'k1')), '200', 'verify off does not check the signature');
is(answer('/noverify', $t->mint('k1', '--categories', 'content')), '401 category', 'verify off still checks the category');
is(answer('/noverify', $t->mint('k1', '--categories', 'marketplace', '--claim', 'exp=' . (time() - 100))), '401 expired', 'verify off still checks the expiry');
is(answer('/noverify', 'abc.def'), '401 malformed', 'verify off still refuses a malformed token');
is(answer('/noverify'), '401 missing', 'verify off still needs a token');
like($t->read_file('error.log'), qr/\[warn\].*token_scope_verify.* off/, 'nginx warns at start that verify is off');

$t->done_testing();

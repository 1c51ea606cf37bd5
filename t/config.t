#!/usr/bin/perl

# Configuration: mistakes are caught by "nginx -t" with a message that
# names the bad value or file; token_scope_verify off passes with a
# warning.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test;

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('HS256', 'h1');
$t->keygen('ES384', 'e384');
$t->keygen('RS256', 'r1');
$t->keygen('EdDSA', 'ed');

my $keys = $t->keydir;

$t->write_file('keys/broken.pem', <<'EOF');
-----BEGIN PUBLIC KEY-----
this is not base64 and not a key
-----END PUBLIC KEY-----
EOF
$t->write_file('keys/empty.pem', '');
$t->write_file('keys/text.pem', "hello\n");
$t->write_file('keys/truncated.jwks', '{"keys":[{"kty":"EC","crv":"P-256"');
$t->write_file('keys/nokeys.jwks', '{"keys":[]}');
$t->write_file('keys/badcurve.jwks',
    '{"keys":[{"kty":"EC","crv":"P-521","kid":"x","x":"AA","y":"AA"}]}');
$t->write_file('keys/badkty.jwks', '{"keys":[{"kty":"XYZ","kid":"x"}]}');
$t->write_file('keys/badpoint.jwks',
    '{"keys":[{"kty":"EC","crv":"P-256","kid":"x",'
    . '"x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",'
    . '"y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}');
$t->write_file('keys/private.pem', $t->read_file('keys/e1.key'));

my $ok_location = "token_scope marketplace;\n"
    . "            token_scope_key_file %%KEYS%%/e1.pem kid=e1;";

# a configuration with one location around the given directives, or with
# the given text at the http level if it starts with "http:"

sub conf {
    my ($location, $http) = @_;

    $http //= '';

    return <<"EOF";
http {
    %%TEST_GLOBALS_HTTP%%

    $http

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            $location
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
}

sub check {
    my ($location, $http) = @_;
    $t->write_config(conf($location, $http));
    return $t->test_config();
}

my ($rc, $out);


# the good configuration, as a baseline

($rc, $out) = check($ok_location);
is($rc, 0, 'a good configuration passes nginx -t') or diag($out);
like($out, qr/syntax is ok/, 'nginx -t says the syntax is ok');

($rc, $out) = check("token_scope content marketplace prices all;\n"
                    . "token_scope_key_file %%KEYS%%/e1.jwks;\n"
                    . "token_scope_key_file %%KEYS%%/h1.jwks;\n"
                    . "token_scope_leeway 30s; token_scope_max_size 4k;\n"
                    . "token_scope_access auto; token_scope_environment sandbox;\n"
                    . "token_scope_types base test personal service legacy;\n"
                    . "token_scope_legacy off; token_scope_mode report;\n"
                    . "token_scope_deny_status 403; token_scope_origin x;");
is($rc, 0, 'every directive with a good value passes nginx -t') or diag($out);


# categories

($rc, $out) = check("token_scope marketplace nosuchcategory;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;");
isnt($rc, 0, 'an unknown category fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "nosuchcategory"/, 'the message names the unknown category');

($rc, $out) = check("token_scope content|markteplace;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;");
isnt($rc, 0, 'an unknown alternative fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "markteplace" in \S+:\d+/, 'the message names the unknown alternative and its place');

($rc, $out) = check("token_scope content|;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;");
like($out, qr/\[emerg\].*empty alternative in "content\|"/, 'an empty alternative fails nginx -t and is named');

($rc, $out) = check("token_scope Marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;");
isnt($rc, 0, 'a category name in the wrong case fails nginx -t');

($rc, $out) = check("token_scope off marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;");
isnt($rc, 0, '"off" with a category fails nginx -t');

($rc, $out) = check("token_scope wbnew;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem kid=e1;",
                    'token_scope_category wbnew 20;');
is($rc, 0, 'a category added with token_scope_category can be required') or diag($out);

($rc, $out) = check($ok_location, 'token_scope_category marketplace 14;');
is($rc, 0, 'token_scope_category may move a known category to another bit') or diag($out);

($rc, $out) = check($ok_location, 'token_scope_category wbnew 62;');
is($rc, 0, 'token_scope_category accepts bit 62') or diag($out);

# "s" >= 2^63 makes a token malformed, so no token can carry bit 63
($rc, $out) = check($ok_location, 'token_scope_category wbnew 63;');
isnt($rc, 0, 'token_scope_category refuses bit 63, which no valid token can carry');

($rc, $out) = check($ok_location, 'token_scope_category wbnew 0;');
is($rc, 0, 'token_scope_category accepts bit 0') or diag($out);

($rc, $out) = check($ok_location, 'token_scope_category wbnew 30;');
isnt($rc, 0, 'token_scope_category refuses bit 30, the read-only flag');
like($out, qr/\[emerg\].*30/, 'the message names bit 30');

($rc, $out) = check($ok_location, 'token_scope_category deny 20;');
like($out, qr/\[emerg\].*"deny" is a keyword, not a name/, 'token_scope_category refuses deny, the catalogue\'s refusal');

($rc, $out) = check($ok_location, 'token_scope_category wbnew 64;');
isnt($rc, 0, 'token_scope_category refuses bit 64');
like($out, qr/\[emerg\].*64/, 'the message names bit 64');

($rc, $out) = check($ok_location, 'token_scope_category wbnew -1;');
isnt($rc, 0, 'token_scope_category refuses a negative bit');

($rc, $out) = check($ok_location, 'token_scope_category wbnew five;');
isnt($rc, 0, 'token_scope_category refuses a bit that is not a number');
like($out, qr/\[emerg\].*five/, 'the message names the bad bit');

($rc, $out) = check($ok_location, 'token_scope_category wbnew;');
isnt($rc, 0, 'token_scope_category needs a bit');

($rc, $out) = check($ok_location, 'token_scope_category all 20;');
isnt($rc, 0, 'token_scope_category refuses to redefine "all"');

($rc, $out) = check("token_scope_category wbnew 20;\n" . $ok_location);
isnt($rc, 0, 'token_scope_category is refused in a location');
like($out, qr/\[emerg\].*"token_scope_category" directive is not allowed here/, 'the message says the directive is not allowed there');


# key files

for my $kid (qw(e1 e384 r1 ed h1)) {
    ($rc, $out) = check("token_scope marketplace;\n"
                        . "token_scope_key_file %%KEYS%%/$kid.jwks;");
    is($rc, 0, "a JWKS file of a $t->{keys}{$kid}{alg} key passes nginx -t") or diag($out);

    next if $kid eq 'h1';

    ($rc, $out) = check("token_scope marketplace;\n"
                        . "token_scope_key_file %%KEYS%%/$kid.pem kid=$kid;");
    is($rc, 0, "a PEM file of a $t->{keys}{$kid}{alg} key passes nginx -t") or diag($out);
}

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/nosuchfile.pem;");
isnt($rc, 0, 'a missing key file fails nginx -t');
like($out, qr/\[emerg\].*nosuchfile\.pem/, 'the message names the missing key file');

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/broken.pem;");
isnt($rc, 0, 'a broken PEM file fails nginx -t');
like($out, qr/\[emerg\].*broken\.pem/, 'the message names the broken PEM file');

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/empty.pem;");
isnt($rc, 0, 'an empty key file fails nginx -t');
like($out, qr/\[emerg\].*empty\.pem/, 'the message names the empty key file');

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/text.pem;");
isnt($rc, 0, 'a key file with plain text fails nginx -t');

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/private.pem;");
isnt($rc, 0, 'a private key file fails nginx -t');
like($out, qr/\[emerg\].*private\.pem/, 'the message names the private key file');

for my $f (qw(truncated nokeys badcurve badkty badpoint)) {
    ($rc, $out) = check("token_scope marketplace;\n"
                        . "token_scope_key_file %%KEYS%%/$f.jwks;");
    isnt($rc, 0, "a broken JWKS file ($f) fails nginx -t");
    like($out, qr/\[emerg\].*\Q$f.jwks\E/, "the message names the broken JWKS file ($f)");
}

($rc, $out) = check("token_scope marketplace;\n"
                    . "token_scope_key_file %%KEYS%%/e1.pem foo=bar;");
isnt($rc, 0, 'an unknown key file parameter fails nginx -t');
like($out, qr/\[emerg\].*invalid parameter "foo=bar"/, 'the message names the invalid parameter');

($rc, $out) = check("token_scope marketplace;");
isnt($rc, 0, 'token_scope with verify on and no key file fails nginx -t');
like($out, qr/\[emerg\].*token_scope_key_file/, 'the message asks for a key file');


# token_scope_verify off

($rc, $out) = check("token_scope marketplace;\ntoken_scope_verify off;");
is($rc, 0, 'token_scope_verify off passes nginx -t without keys') or diag($out);
like($out, qr/\[warn\].*token_scope_verify.* off.*not for ingress/, 'token_scope_verify off prints a warning');


# values of the other directives

my @bad = (
    'token_scope_deny_status 404;'     => 'a deny status of 404',
    'token_scope_deny_status 500;'     => 'a deny status of 500',
    'token_scope_deny_status abc;'     => 'a deny status that is not a number',
    'token_scope_mode audit;'          => 'an unknown mode',
    'token_scope_access maybe;'        => 'an unknown access mode',
    'token_scope_environment staging;' => 'an unknown environment',
    'token_scope_types robot;'         => 'an unknown token type',
    'token_scope_verify maybe;'        => 'a verify flag that is not on or off',
    'token_scope_legacy maybe;'        => 'a legacy flag that is not on or off',
    'token_scope_leeway soon;'         => 'a leeway that is not a time',
    'token_scope_max_size big;'        => 'a max_size that is not a size',
);

while (my ($directive, $what) = splice @bad, 0, 2) {
    ($rc, $out) = check("$ok_location\n$directive");
    isnt($rc, 0, "$what fails nginx -t");
    like($out, qr/\[emerg\]/, "$what is reported as emerg");
}

($rc, $out) = check("$ok_location\ntoken_scope_deny_status 404;");
like($out, qr/404/, 'the message names the bad deny status');

$t->done_testing(config_errors => 1);

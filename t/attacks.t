#!/usr/bin/perl

# Attacks and malformed input: every forged, broken or hostile token is a
# 401 with a well-formed JSON answer and the right code, never a 5xx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use MIME::Base64 ();
use Test::More;
use TokenScope::Test qw(verdict b64u);
use TokenScope::Model qw(expected);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');
$t->keygen('RS256', 'r1');
$t->keygen('HS256', 'h1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    large_client_header_buffers 4 64k;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-TS-Reason $token_scope_reason always;

        location /ec {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            proxy_pass http://backend;
        }

        location /ec-oct {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_key_file %%KEYS%%/h1.jwks;
            proxy_pass http://backend;
        }

        location /ec-solo {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem;
            proxy_pass http://backend;
        }

        location /multi {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_key_file %%KEYS%%/e2.pem kid=e2;
            token_scope_key_file %%KEYS%%/r1.pem kid=r1;
            token_scope_key_file %%KEYS%%/h1.jwks;
            proxy_pass http://backend;
        }

        location /big {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_max_size 16k;
            proxy_pass http://backend;
        }

        location /small {
            token_scope all;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_max_size 200;
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

sub answer {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}

sub craft { $t->craft(key => 'e1', @_) }

sub payload { $t->payload(@_) }

my $now = time();
my $good = $t->mint('e1');
my ($h, $p, $s) = split /\./, $good;

is(answer('/ec', $good), '200', 'the unmodified token passes');
is(answer('/ec', craft()), '200', 'a crafted token with default claims passes');


# alg none and algorithm confusion

is(answer('/ec', $t->mint('e1', '--alg', 'none')), '401 bad_signature', 'alg none is refused');
is(answer('/ec-solo', $t->mint('e1', '--alg', 'none', '--no-kid')), '401 bad_signature', 'alg none without kid is refused by a single key');
is(answer('/ec', "$h.$p."), '401 bad_signature', 'an empty signature is refused');
is(answer('/ec', craft(header => '{"alg":"none","kid":"e1"}', signature => '')), '401 bad_signature', 'a crafted alg none is refused');
is(answer('/ec', craft(header => '{"alg":"None","kid":"e1"}', signature => '')), '401 bad_signature', 'alg None is refused');
is(answer('/ec', craft(header => '{"alg":"NONE","kid":"e1"}', signature => '')), '401 bad_signature', 'alg NONE is refused');
is(answer('/ec', craft(header => '{"alg":"es256","kid":"e1"}', alg => 'ES256')), '401 bad_signature', 'an algorithm name in the wrong case is refused');

my $hs_pem = $t->mint('e1', '--alg', 'HS256', '--hmac-secret-file', $t->keydir . '/e1.pem');
is(answer('/ec', $hs_pem), '401 bad_signature', 'HS256 signed with the EC public key PEM is refused');
is(answer('/ec-oct', $hs_pem), '401 bad_signature', 'HS256 signed with the EC public key PEM is refused with an oct key configured');
is(answer('/ec-oct', $t->mint('e1', '--alg', 'HS256', '--hmac-secret-file', $t->keydir . '/e1.pem', '--kid', 'h1')), '401 bad_signature', 'HS256 signed with the EC public key PEM under the oct kid is refused');
is(answer('/ec-solo', $t->mint('e1', '--alg', 'HS256', '--hmac-secret-file', $t->keydir . '/e1.pem', '--no-kid')), '401 bad_signature', 'HS256 signed with the EC public key PEM without kid is refused');
is(answer('/multi', $t->mint('r1', '--alg', 'HS256', '--hmac-secret-file', $t->keydir . '/r1.pem')), '401 bad_signature', 'HS256 signed with the RSA public key PEM is refused');

is(answer('/multi', $t->craft(key => 'e1', header => '{"alg":"ES256","kid":"r1"}')), '401 bad_signature', 'ES256 under the kid of an RSA key is refused');
is(answer('/multi', $t->craft(key => 'r1', header => '{"alg":"RS256","kid":"e1"}')), '401 bad_signature', 'RS256 under the kid of an EC key is refused');
is(answer('/multi', $t->craft(key => 'r1', header => '{"alg":"PS256","kid":"e1"}')), '401 bad_signature', 'PS256 under the kid of an EC key is refused');
is(answer('/multi', $t->craft(key => 'e1', header => '{"alg":"ES384","kid":"e1"}', alg => 'ES256')), '401 bad_signature', 'ES384 on a P-256 key is refused');
is(answer('/multi', $t->craft(key => 'h1', header => '{"alg":"HS256","kid":"e1"}')), '401 bad_signature', 'HS256 under the kid of an EC key is refused');
is(answer('/multi', $t->craft(key => 'e1', header => '{"alg":"ES256","kid":"h1"}')), '401 bad_signature', 'ES256 under the kid of an oct key is refused');
is(answer('/multi', $t->craft(key => 'e1', header => '{"alg":"EdDSA","kid":"e1"}', alg => 'ES256')), '401 bad_signature', 'EdDSA under the kid of an EC key is refused');


# forged signatures

my $other = $t->mint('e1', '--categories', 'marketplace,content,finance');
my (undef, $p2) = split /\./, $other;
is(answer('/ec', "$h.$p2.$s"), '401 bad_signature', 'a payload swapped under a valid signature is refused');
is(answer('/multi', $t->mint('e2', '--kid', 'e1')), '401 bad_signature', 'a token signed by the wrong key under a right kid is refused');
is(answer('/ec', $t->mint('e1', '--der')), '401 bad_signature', 'a DER ECDSA signature is refused');
is(answer('/ec', $h . '.' . $p . '.' . b64u("\0" x 64)), '401 bad_signature', 'an all-zero signature is refused');
is(answer('/ec', $h . '.' . $p . '.' . b64u("\xff" x 64)), '401 bad_signature', 'an all-ones signature is refused');
is(answer('/ec', $h . '.' . $p . '.' . substr($s, 0, 40)), '401 bad_signature', 'a truncated signature is refused');
my $b64u = join '', 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '-', '_';
# 42 characters carry 31 bytes and 4 unused bits, set or clear on purpose
my $cut = substr($s, 0, 41) . substr($b64u, index($b64u, substr($s, 41, 1)) | 1, 1);
(my $cut_clear = $cut) =~ s/(.)$/substr($b64u, index($b64u, $1) & ~15, 1)/e;
is(answer('/ec', "$h.$p.$cut"), '401 malformed', 'a signature cut mid-character with unused bits set is malformed');
is(answer('/ec', "$h.$p.$cut_clear"), '401 bad_signature', 'a signature cut mid-character with unused bits clear is a bad signature');
my $last = substr($b64u, index($b64u, substr($s, -1)) | 1, 1);
is(answer('/ec', $h . '.' . $p . '.' . substr($s, 0, -1) . $last), '401 malformed', 'a signature with unused bits set is refused');
is(answer('/ec', $h . '.' . $p . '.' . $s . 'AAAA'), '401 bad_signature', 'a signature with extra bytes is refused');
is(answer('/ec', $h . '.' . $p . '.' . b64u('x' x 2000)), '401 bad_signature', 'a long signature is refused');
is(answer('/multi', $t->craft(key => 'h1', signature => '')), '401 bad_signature', 'an empty HMAC is refused');
is(answer('/multi', $t->craft(key => 'h1', signature => "\0" x 32)), '401 bad_signature', 'an all-zero HMAC is refused');


# structure and encoding

is(answer('/ec', 'aaa.bbb'), '401 malformed', 'two segments are malformed');
is(answer('/ec', "$h.$p"), '401 malformed', 'a token without its signature segment is malformed');
is(answer('/ec', "$good.$s"), '401 malformed', 'four segments are malformed');
is(answer('/ec', 'a.b.c.d.e'), '401 malformed', 'five segments are malformed');
is(answer('/ec', '..'), '401 malformed', 'empty segments are malformed');
is(answer('/ec', ".$p.$s"), '401 malformed', 'an empty header is malformed');
is(answer('/ec', "$h..$s"), '401 malformed', 'an empty payload is malformed');
is(answer('/ec', '.' x 3000), '401 malformed', 'a token of dots is malformed');
is(answer('/ec', 'x'), '401 malformed', 'a single character is malformed');
(my $plus = $p) =~ s/^(.{10})./$1+/;
is(answer('/ec', "$h.$plus.$s"), '401 malformed', 'a "+" (plain base64) is malformed');
(my $slash = $p) =~ s/^(.{10})./$1\//;
is(answer('/ec', "$h.$slash.$s"), '401 malformed', 'a "/" (plain base64) is malformed');
is(answer('/ec', "$h.$p=.$s"), '401 malformed', 'padding "=" in the payload is malformed');
is(answer('/ec', "$h.$p.$s=="), '401 malformed', 'padding "=" in the signature is malformed');
is(answer('/ec', "$h=.$p.$s"), '401 malformed', 'padding "=" in the header is malformed');
sub badlen { my ($seg) = @_; $seg .= 'A' until length($seg) % 4 == 1; $seg }
is(answer('/ec', $h . '.' . badlen($p) . ".$s"), '401 malformed', 'a payload of impossible base64 length is malformed');
is(answer('/ec', "$h.$p." . badlen($s)), '401 malformed', 'a signature of impossible base64 length is malformed');
is(answer('/ec', "$h.$p*.$s"), '401 malformed', 'a "*" in the payload is malformed');
is(answer('/ec', "$h.$p.$s%00"), '401 malformed', 'a percent-encoded byte is malformed');
is(answer('/ec', "$h.\x{7f}$p.$s"), '401 malformed', 'a DEL character is malformed');
is(answer('/ec', "$h.\xc3\xa9$p.$s"), '401 malformed', 'a UTF-8 character is malformed');


# JSON

is(answer('/ec', craft(header => 'hello')), '401 malformed', 'a header that is not JSON is malformed');
is(answer('/ec', craft(payload => 'hello')), '401 malformed', 'a payload that is not JSON is malformed');
is(answer('/ec', craft(payload => '{"exp":' . ($now + 60))), '401 malformed', 'a truncated payload is malformed');
is(answer('/ec', craft(payload => '[' . ($now + 60) . ']')), '401 malformed', 'a payload that is an array is malformed');
is(answer('/ec', craft(payload => '"' . ($now + 60) . '"')), '401 malformed', 'a payload that is a string is malformed');
is(answer('/ec', craft(payload => 'null')), '401 malformed', 'a payload that is null is malformed');
is(answer('/ec', craft(header => '["ES256"]', alg => 'ES256')), '401 malformed', 'a header that is an array is malformed');
is(answer('/ec', craft(header => '{"kid":"e1"}', alg => 'ES256')), '401 malformed', 'a header without alg is malformed');
is(answer('/ec', craft(header => '{"alg":256,"kid":"e1"}', alg => 'ES256')), '401 malformed', 'a numeric alg is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","kid":5}')), '401 malformed', 'a numeric kid is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","kid":"' . ('k' x 300) . '"}')), '401 malformed', 'a kid longer than 128 bytes is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","kid":"e1","crit":["exp"]}')), '401 malformed', 'a header with crit is malformed');
is(answer('/ec', craft(payload => payload() . ' x')), '401 malformed', 'trailing garbage after the payload is malformed');

my $exp = $now + 3600;
is(answer('/ec', craft(payload => qq({"exp":$exp,"exp":$exp,"s":0}))), '401 malformed', 'a duplicate exp is malformed');
is(answer('/ec', craft(payload => qq({"exp":$exp,"s":16,"s":2}))), '401 malformed', 'a duplicate s is malformed');
is(answer('/ec', craft(payload => qq({"exp":$exp,"acc":1,"acc":4}))), '401 malformed', 'a duplicate acc is malformed');
is(answer('/ec', craft(payload => qq({"exp":$exp,"x":1,"x":2}))), '401 malformed', 'a duplicate unknown claim is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","alg":"none","kid":"e1"}', alg => 'ES256')), '401 malformed', 'a duplicate alg is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","kid":"e1","kid":"e2"}')), '401 malformed', 'a duplicate kid is malformed');

is(answer('/ec', craft(payload => payload(exp => "$exp.5"))), '401 malformed', 'exp as a float is malformed');
is(answer('/ec', craft(payload => payload(exp => "$exp.0"))), '401 malformed', 'exp as a float with .0 is malformed');
is(answer('/ec', craft(payload => payload(exp => '1e10'))), '401 malformed', 'exp in exponent notation is malformed');
is(answer('/ec', craft(payload => payload(exp => qq("$exp")))), '401 malformed', 'exp as a string is malformed');
is(answer('/ec', craft(payload => payload(exp => 'true'))), '401 malformed', 'exp as a boolean is malformed');
is(answer('/ec', craft(payload => payload(exp => 'null'))), '401 malformed', 'exp as null is malformed');
is(answer('/ec', craft(payload => payload(exp => "[$exp]"))), '401 malformed', 'exp as an array is malformed');
is(answer('/ec', craft(payload => payload(exp => '9223372036854775808'))), '401 malformed', 'exp beyond 64 bits is malformed');
is(answer('/ec', craft(payload => payload(exp => '-1'))), '401 expired', 'a negative exp is an integer in the past: expired');

is(answer('/ec', craft(payload => payload(s => '-1'))), '401 malformed', 'a negative s is malformed');
is(answer('/ec', craft(payload => payload(s => '18446744073709551616'))), '401 malformed', 's = 2^64 is malformed');
is(answer('/ec', craft(payload => payload(s => '9223372036854775808'))), '401 malformed', 's = 2^63 is malformed');
is(answer('/ec', craft(payload => payload(s => '16.0'))), '401 malformed', 's as a float is malformed');
is(answer('/ec', craft(payload => payload(s => '1.6e1'))), '401 malformed', 's in exponent notation is malformed');
is(answer('/ec', craft(payload => payload(s => '"16"'))), '401 malformed', 's as a string is malformed');
is(answer('/ec', craft(payload => payload(s => '9223372036854775807'))), '200', 's = 2^63 - 1 is accepted');


# size

my $pad = 'p' x 7000;
my $big = craft(payload => payload(pad => qq("$pad")));
cmp_ok(length $big, '>', 8192, 'the big token is longer than 8k');
is(answer('/ec', $big), '401 malformed', 'a token over the default max_size is malformed');
is(answer('/big', $big), '200', 'a token under a raised max_size passes');
my $huge = craft(payload => payload(pad => '"' . ('p' x 13000) . '"'));
is(answer('/big', $huge), '401 malformed', 'a token over a raised max_size is malformed');
is(answer('/big', 'a' x 40000), '401 malformed', 'a huge garbage token is malformed');
cmp_ok(length $good, '>', 200, 'the normal token is longer than 200 bytes');
is(answer('/small', $good), '401 malformed', 'a normal token over a small max_size is malformed');
like($t->get('/small', Authorization => "Bearer $good")->{json}{detail}, qr/^token problem; token is malformed: /, 'an oversized token has the malformed detail');


# nesting and NUL bytes

is(answer('/ec', craft(payload => payload(x => '{"a":[1,{"b":[2,{"c":3}]}]}'))), '200', 'a nested unknown claim is ignored');
is(answer('/ec', craft(payload => payload(s => '{"v":16}'))), '401 malformed', 's as an object is malformed');
is(answer('/big', craft(payload => payload(x => ('[' x 3000) . (']' x 3000)))), '401 malformed', 'arrays nested 3000 deep are malformed');
is(answer('/big', craft(payload => payload(x => ('{"":' x 2500) . '1' . ('}' x 2500)))), '401 malformed', 'objects nested 2500 deep are malformed');
is(answer('/big', craft(payload => payload(x => '[' x 5000))), '401 malformed', 'unclosed nesting is malformed');

is(answer('/ec', craft(payload => payload(id => qq("ab\0cd")))), '401 malformed', 'a raw NUL byte in a claim string is malformed');
is(answer('/ec', craft(payload => payload() . "\0")), '401 malformed', 'a NUL byte after the payload is malformed');
is(answer('/ec', craft(payload => "\0" . payload())), '401 malformed', 'a NUL byte before the payload is malformed');
is(answer('/ec', craft(payload => payload(id => '"ab\u0000cd"'))), '401 malformed', 'an escaped NUL in the token id is malformed');
is(answer('/ec', craft(payload => payload(sid => '"\u0000"'))), '401 malformed', 'an escaped NUL in the seller id is malformed');
is(answer('/ec', craft(header => "{\"alg\":\"ES256\",\"kid\":\"e1\0\"}", alg => 'ES256')), '401 malformed', 'a raw NUL byte in the kid is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256","kid":"e1\u0000x"}', alg => 'ES256')), '401 malformed', 'an escaped NUL in the kid is malformed');
is(answer('/ec', craft(header => '{"alg":"ES256\u0000","kid":"e1"}', alg => 'ES256')), '401 malformed', 'an escaped NUL in alg is malformed');
is(answer('/ec', craft(payload => payload(id => '"\ud800"'))), '401 malformed', 'a lone surrogate in a claim is malformed');
is(answer('/ec', craft(payload => payload(id => qq("\xff\xfe")))), '401 malformed', 'invalid UTF-8 in a claim is malformed');


# legacy HS256 accessID tokens

is(answer('/ec', $t->craft(key => 'h1', header => '{"alg":"HS256","typ":"JWT"}', payload => qq({"accessID":"abc","exp":$exp}))), '401 malformed', 'a legacy accessID token is malformed without an HMAC key');
is(answer('/multi', $t->craft(key => 'h1', payload => qq({"accessID":"abc","exp":$exp}))), '401 malformed', 'a legacy accessID token is refused even with an HMAC key');


# random mutations never crash or leak a 5xx, and each gets the answer
# the docs give for what the mutation broke (TokenScope::Model): of a
# token with fixed claims, so that a mutation of its header or payload
# makes the same JSON on every run

my $base = craft(header => '{"alg":"ES256","kid":"e1","typ":"JWT"}',
                 payload => '{"s":16,"acc":1,"exp":4102444800,'
                            . '"iat":1764547200,'
                            . '"id":"0199a0a0-0000-7000-8000-0000000000c1",'
                            . '"sid":"0f8e2b6a-1111-4c2d-9e3f-000000000001",'
                            . '"oid":12345}');
my %ec = (need => 0, keys => { e1 => 'ES256' }, valid => { $base => 1 });

is(answer('/ec', $base), expected("Bearer $base", %ec), 'the base of the mutations passes, as expected() says');

srand(20251122);
my @bad;
my @chars = ('A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_', '.', '=', '+', '/', '~');

for my $i (1 .. 300) {
    my $m = $base;
    for (1 .. 1 + int rand 3) {
        my $pos = int rand length $m;
        my $op = int rand 3;
        if ($op == 0) {
            substr($m, $pos, 1) = $chars[rand @chars];
        } elsif ($op == 1) {
            substr($m, $pos, 1) = '';
        } else {
            substr($m, $pos, 0) = $chars[rand @chars];
        }
    }
    my $v = answer('/ec', $m);
    my $e = expected("Bearer $m", %ec);
    push @bad, "$v, expected $e: $m" unless $v eq $e;
}

is(scalar @bad, 0, '300 mutated tokens get the answer the docs give: a well-formed 401, a pass only if unchanged')
    or diag(join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)]);

$t->done_testing();

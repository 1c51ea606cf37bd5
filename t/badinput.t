#!/usr/bin/perl

# Bad input: a generated corpus of malformed tokens and Authorization
# headers (truncations, bit flips, huge segments, nested JSON, NUL bytes,
# invalid UTF-8, numbers at every boundary, duplicate keys, repeated and
# odd headers).  Every token is otherwise valid (signed, unexpired, with
# the category), so the malformation is the only reason to refuse it: each
# gets exactly the answer the docs give for it (computed below from
# docs/errors.md and the order of checks in docs/directives.md), a 401
# with a well-formed JSON answer, nginx's own 400 where the HTTP request
# itself is unparseable, or a pass where what looks odd is valid (a
# number in range, nesting within Jansson's limit); never a 5xx; and the
# one worker answers them all without dying.

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
$t->keygen('HS256', 'h1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    # at "info" nginx itself logs a malformed or repeated header line
    # whole, a token in it too; the module's own lines are NOTICE or above
    error_log %%TESTDIR%%/error.log notice;

    large_client_header_buffers 4 48k;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /t {
            token_scope content;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_key_file %%KEYS%%/h1.jwks;
            proxy_pass http://backend;
        }

        location /big {
            token_scope content;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_key_file %%KEYS%%/h1.jwks;
            token_scope_max_size 40k;
            proxy_pass http://backend;
        }

        location = /pid {
            return 200 "$pid\n";
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

my $pid = $t->get('/pid')->{body};
like($pid, qr/^\d+$/, 'the worker tells its pid');

my $now = time();
my $exp = $now + 3600;
my $old = $now - 7200;

# the tokens whose signature is right: any other is a bad signature
my %valid;

# the base of the truncations and bit flips: fixed text, so that a flip in
# its header or payload makes the same JSON on every run
my $good = $t->craft(
    key => 'e1', header => '{"alg":"ES256","kid":"e1","typ":"JWT"}',
    payload => '{"s":2,"acc":1,"exp":4102444800,"iat":1764547200,'
               . '"id":"0199a0a0-0000-7000-8000-0000000000b1",'
               . '"sid":"0f8e2b6a-1111-4c2d-9e3f-000000000001","oid":12345}');
$valid{$good} = 1;

is(verdict($t->get('/t', Authorization => "Bearer $good")), '200',
   'the unmodified token passes');

# a token signed with the HMAC key (fast: no openssl per token) from raw
# header and payload text; the payload is the caller's, whole
sub hs {
    my ($payload, %opt) = @_;
    my $tok = $t->craft(key => 'h1', alg => 'HS256', payload => $payload,
                        %opt);
    $valid{$tok} = 1 unless exists $opt{signature};
    return $tok;
}

# a payload valid in every way: unexpired, with the category content
sub valid { $t->payload(s => '2', @_) }

# a payload whose other claims are fine but which has expired
sub expired { $t->payload(s => '2', exp => $old, @_) }

# the locations: the category mask they require, their keys, max_size
my %LOC = (
    '/t'   => { need => 2, keys => { e1 => 'ES256', h1 => 'HS256' },
                max => 8192, valid => \%valid },
    '/big' => { need => 2, keys => { e1 => 'ES256', h1 => 'HS256' },
                max => 40960, valid => \%valid },
);


# the corpus: [ what, [ headers ], path, expected verdict ]; by default
# the verdict expected() computes for the one Authorization header

my @cases;

sub bearer {
    my ($group, $token, %opt) = @_;
    push @cases, [ $group, [ Authorization => "Bearer $token" ],
                   $opt{path} // '/t', $opt{expect} ];
}


# truncations: every 9th length, and around each dot

my @dots;
push @dots, pos($good) - 1 while $good =~ /\./g;
my %cut = map { $_ => 1 } grep { $_ > 0 && $_ < length $good }
          (map { $_ * 9 } 1 .. int(length($good) / 9)),
          (map { ($_ - 1, $_, $_ + 1, $_ + 2) } @dots),
          length($good) - 1, length($good) - 2;

bearer('truncated', substr($good, 0, $_)) for sort { $a <=> $b } keys %cut;
bearer('truncated', substr($good, $_)) for 1, 2, 3, $dots[0], $dots[0] + 1;


# bit flips: one bit of one byte, everywhere in the token; a flip into a
# CR or LF breaks the HTTP request itself

srand(20251123);

for (1 .. 60) {
    my $m = $good;
    my $i = int rand length $m;
    substr($m, $i, 1) = chr(ord(substr($m, $i, 1)) ^ (1 << int rand 8));
    bearer('bit-flipped', $m);
}


# huge segments

my $big_pad = 'a' x 12000;
bearer('huge', ('A' x 12000) . '.e30.AAAA');
bearer('huge', 'eyJhbGciOiJIUzI1NiJ9.' . ('A' x 12000) . '.AAAA');
bearer('huge', 'eyJhbGciOiJIUzI1NiJ9.e30.' . ('A' x 12000));
bearer('huge', hs(valid(pad => qq("$big_pad"))), path => '/t');
bearer('huge', hs(valid(pad => qq("$big_pad"))), path => '/big');
bearer('huge', hs(valid(), header => '{"alg":"HS256","kid":"h1","x":"'
                                     . $big_pad . '"}'), path => '/big');
bearer('huge', hs(valid(), signature => 'x' x 9000), path => '/big');
bearer('huge', hs(valid(), signature => 'x' x 20000), path => '/big');
bearer('huge', 'A' x 30000, path => '/big');
bearer('huge', ('A' x 10000) . '.' . ('B' x 10000) . '.' . ('C' x 10000),
       path => '/big');
bearer('huge', '.' x 20000, path => '/big');
# over large_client_header_buffers: nginx refuses the request itself
bearer('huge', 'A' x 60000, expect => '400');


# nested JSON, in the payload and in the header

for my $depth (1, 2, 10, 100, 500, 1000, 2047, 2048, 2049, 5000) {
    bearer('nested', hs(valid(x => ('[' x $depth) . (']' x $depth))),
           path => '/big');
    bearer('nested', hs(valid(x => ('{"a":' x $depth) . '1'
                                       . ('}' x $depth))),
           path => '/big');
}

for my $depth (1, 64, 3000) {
    bearer('nested', hs(valid(x => '[' x $depth)), path => '/big');
    bearer('nested', hs(valid(s => ('[' x $depth) . '0' . (']' x $depth))),
           path => '/big');
    bearer('nested', hs(valid(), header => '{"alg":"HS256","kid":"h1",'
                        . '"x":' . ('[' x $depth) . (']' x $depth) . '}'),
           path => '/big');
    bearer('nested', hs(valid(), header => '{"alg":"HS256","kid":'
                        . ('[' x $depth) . '"h1"' . (']' x $depth) . '}'),
           path => '/big');
}


# NUL bytes: raw and escaped, decoded inside the token; raw in the header

my $p = valid();

for my $at (0, 1, int(length($p) / 2), length($p) - 1, length($p)) {
    my $q = $p;
    substr($q, $at, 0) = "\0";
    bearer('nul', hs($q));
}

for my $claim (qw(id sid for)) {
    bearer('nul', hs(valid($claim => '"\u0000"')));
    bearer('nul', hs(valid($claim => '"a\u0000b"')));
    bearer('nul', hs(valid($claim => qq("a\0b"))));
}

bearer('nul', hs(valid(acc => '4', for => '"asid:\u0000"')));
bearer('nul', hs(valid(), header => '{"alg":"HS256","kid":"h1\u0000"}'));
bearer('nul', hs(valid(), header => '{"alg":"HS256\u0000","kid":"h1"}'));
bearer('nul', hs(valid(), header => qq({"alg":"HS256","kid":"\0h1"})));
bearer('nul', hs(qq({"e\\u0000xp":$exp,"s":2})));
bearer('nul', hs(qq({"exp\\u0000":$exp,"exp":$exp,"s":2})));
bearer('nul', hs(qq({"\\u0000":1,"exp":$exp,"s":2})));
bearer('nul', substr($good, 0, 20) . "\0" . substr($good, 20));
bearer('nul', "$good\0");


# invalid UTF-8, in the claims and raw in the header

my @utf8 = ("\xff", "\xfe\xff", "\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\xaf",
            "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
            "\xe2\x82", "\xc3");

for my $bytes (@utf8) {
    bearer('utf-8', hs(valid(id => qq("x$bytes"))));
    bearer('utf-8', hs(qq({"exp":$exp,"s":2,"k$bytes":1})));
    bearer('utf-8', hs(valid(), header => qq({"alg":"HS256","kid":"h1$bytes"})));
}

bearer('utf-8', hs(valid(id => '"\ud800"')));
bearer('utf-8', hs(valid(id => '"\udc00\ud800"')));
bearer('utf-8', hs(valid(id => '"\ud800\u0041"')));
bearer('utf-8', "$good\xc3\xa9");
bearer('utf-8', "\xef\xbb\xbf$good");
bearer('utf-8', substr($good, 0, 30) . "\xff\xfe" . substr($good, 30));


# numbers at every boundary, in every numeric claim

my @numbers = qw(
    0 -0 1 -1 0.0 1.0 1e0 1E3 0e0 -1e0 0x10 01 +1 .5 1.
    2147483647 2147483648 -2147483648 -2147483649
    4294967295 4294967296 9007199254740991 9007199254740992
    4611686018427387904 9223372036854775807 -9223372036854775807
    9223372036854775808 -9223372036854775808 -9223372036854775809
    18446744073709551615 18446744073709551616 99999999999999999999999
    1e308 1e309 -1e309 NaN Infinity -Infinity
);

for my $n (@numbers) {
    for my $claim (qw(exp s nbf iat oid acc)) {
        bearer('numbers', hs(valid($claim => $n)));
    }
}


# duplicate keys, plain and through escapes

for my $claim (qw(exp s acc id sid for t sandbox nbf iat oid)) {
    my $v = $claim =~ /^(id|sid|for)$/ ? '"x"'
          : $claim =~ /^(t|sandbox)$/ ? 'false'
          : $claim eq 'exp' ? $exp : '1';
    bearer('duplicate', hs(valid() =~ s/}$/,"$claim":$v,"$claim":$v}/r));
}

bearer('duplicate', hs(qq({"exp":$exp,"s":2,"\\u0065xp":$exp})));
bearer('duplicate', hs(qq({"exp":$exp,"s":2,"s":2})));
bearer('duplicate', hs(qq({"exp":$exp,"s":2,"s":0})));
bearer('duplicate', hs(valid(), header => '{"alg":"HS256","kid":"h1","kid":"h1"}'));
bearer('duplicate', hs(valid(), header => '{"alg":"HS256","alg":"HS256","kid":"h1"}'));
bearer('duplicate', hs(valid(), header => '{"alg":"HS256","kid":"h1","typ":"JWT","typ":"JWT"}'));
bearer('duplicate', hs(valid(), header => '{"alg":"HS256","\u006bid":"h1","kid":"h1"}'));


# the Authorization header itself

sub header {
    my ($group, @headers) = @_;
    my %opt = ref $headers[-1] eq 'HASH' ? %{ pop @headers } : ();
    push @cases, [ $group, \@headers, '/t', $opt{expect} ];
}

header('header', Authorization => '');
header('header', Authorization => ' ');
header('header', Authorization => 'Bearer');
header('header', Authorization => 'Bearer ');
header('header', Authorization => 'Bearer      ');
header('header', Authorization => "Bearer\t$good");
header('header', Authorization => "Basic $good");
header('header', Authorization => 'Basic dXNlcjpwYXNz');
header('header', Authorization => "Bearer Bearer $good");
header('header', Authorization => "Bearer \"$good\"");
header('header', Authorization => "Bearer $good extra");
header('header', Authorization => "Bearer $good.");
header('header', Authorization => "Bearer .$good");
header('header', Authorization => "Bearer $good,$good");
header('header', Authorization => 'Bearer ' . ('x' x 8193));
header('header', Authorization => ('B' x 9000) . " $good");
# nginx refuses a repeated Authorization, a folded line and a space
# before the colon itself
header('header', Authorization => "Bearer $good", Authorization => "Bearer $good", { expect => '400' });
header('header', Authorization => "Bearer $good", authorization => 'Bearer x', { expect => '400' });
header('header', Authorization => 'Bearer x', Authorization => "Bearer $good", { expect => '400' });
header('header', Authorization => '', Authorization => "Bearer $good", { expect => '400' });
header('header', Authorization => "Bearer\r\n $good");
header('header', 'X-Authorization' => "Bearer $good", { expect => '401 missing' });
header('header', 'Authorization ' => "Bearer $good", { expect => '400' });


# every case: the verdict expected, nginx's own 400 as an HTML page

cmp_ok(scalar @cases, '>=', 200, 'the corpus has at least 200 cases');

my (%count, %bad, %codes);

for my $case (@cases) {
    my ($group, $headers, $path, $expect) = @$case;

    $expect //= expected($headers->[1], %{ $LOC{$path} });

    my $res = $t->request('GET', $path, @$headers);
    my $v = verdict($res);

    $v = '400' if $v eq '400 not-json(text/html)';

    $count{$group}++;
    $codes{$v}++;

    next if $v eq $expect;

    my $what = join ' ', map { length > 60 ? substr($_, 0, 60) . '...' : $_ }
                         @$headers;
    $what =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;

    push @{ $bad{$group} }, "$v, expected $expect: $what";
}

diag(join ', ', map { "$_: $codes{$_}" } sort keys %codes)
    if $ENV{TEST_VERBOSE};

my %names = (
    truncated     => 'truncated tokens',
    'bit-flipped' => 'tokens with one bit flipped',
    huge          => 'tokens with huge segments',
    nested        => 'tokens with deeply nested JSON',
    nul           => 'tokens with NUL bytes',
    'utf-8'       => 'tokens with invalid UTF-8',
    numbers       => 'tokens with numbers at the boundaries',
    duplicate     => 'tokens with duplicate keys',
    header        => 'odd or repeated Authorization headers',
);

for my $group (sort keys %names) {
    my @b = @{ $bad{$group} // [] };

    is(scalar @b, 0, ($count{$group} // 0) . " $names{$group} get the answer the docs give")
        or diag(join "\n", @b[0 .. ($#b > 4 ? 4 : $#b)]);
}

cmp_ok($count{$_} // 0, '>', 0, "the corpus has $names{$_}") for sort keys %names;


# the log says who failed and why, in lines nobody can forge: a kid or an
# id with a line break is not a line of its own

my $forge = "\n2026/01/01 00:00:00 [alert] 1#1: forged";
(my $fj = $forge) =~ s/\n/\\n/;

is(verdict($t->get('/t', Authorization => 'Bearer '
   . hs(valid(), header => qq({"alg":"HS256","kid":"h1$fj"})))),
   '401 unknown_key', 'a kid with a line break is an unknown key');
is(verdict($t->get('/t', Authorization => 'Bearer '
   . hs(expired(id => qq("x$fj"))))),
   '401 expired', 'an expired token with a line break in its id is refused');
my @forged = grep { /^2026\/01\/01 00:00:00 \[alert\] 1#1: forged/ }
             split /\n/, $t->read_file('error.log');
is(scalar @forged, 0, 'a line break in a kid or token id does not start a log line')
    or diag(join "\n", @forged);


# the same worker answered everything

is($t->get('/pid')->{body}, $pid, 'the worker that started answered every case');
my @exited = grep { /exited on signal|worker process \d+ exited/ }
             split /\n/, $t->read_file('error.log');
is(scalar @exited, 0, 'no worker exited') or diag(join "\n", @exited);
is(verdict($t->get('/t', Authorization => "Bearer $good")), '200',
   'the unmodified token still passes');

$t->done_testing();

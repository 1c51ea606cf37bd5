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


# The verdict the module must give, from docs/errors.md and the order of
# docs/directives.md ("A request is checked in this order"), for the
# Authorization header a client sends to a location that requires NEED
# (a category mask, 0 for "all") with KEYS ({ kid => algorithm }):
# "400" where nginx refuses the HTTP request itself, else what
# the module answers.  VALID holds the tokens whose signature is right.

use constant UTF8 => qr/\A(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]
               |[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]
               |\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}
               |\xf4[\x80-\x8f][\x80-\xbf]{2})*\z/x;

use constant ALGS => { map { $_ => 1 } qw(ES256 ES384 RS256 RS384 RS512
                                           PS256 PS384 PS512 EdDSA HS256
                                           HS384 HS512) };

sub expected {
    my ($header, %loc) = @_;

    # nginx: a CR ends the header line only right before the CRLF, a LF
    # ends it anywhere (what follows is an odd header line of its own)
    return '400' if $header =~ /\r./s || $header =~ /\0/;
    $header =~ s/[\r\n].*//s;
    $header =~ s/^ +| +$//g;

    # the module: "Bearer" in any case, then spaces, or the bare token
    my $token = $header;
    $token =~ s/^bearer(?: +|$)//i;
    $token =~ s/ +$//;

    return '401 missing' if $token eq '';
    return '401 malformed' if length $token > ($loc{max} // 8192);

    my $code = token_code($token, %loc);

    return $code eq 'ok' ? '200' : "401 $code";
}

sub token_code {
    my ($token, %loc) = @_;

    # three canonical base64url segments, header and payload not empty
    return 'malformed' if $token =~ /[^A-Za-z0-9_.-]/;

    my @seg = split /\./, $token, -1;
    return 'malformed' if @seg != 3 || $seg[0] eq '' || $seg[1] eq '';

    for (@seg) {
        return 'malformed' unless canonical($_);
    }

    my $h = jansson(MIME::Base64::decode_base64url($seg[0]));
    return 'malformed' unless $h && $h->[0] eq 'object';

    my %h = %{ $h->[1] };
    return 'malformed' if exists $h{crit};
    return 'malformed' unless $h{alg} && $h{alg}[0] eq 'string';
    return 'bad_signature' unless ALGS->{ $h{alg}[1] };

    if (my $kid = $h{kid}) {
        return 'malformed' unless $kid->[0] eq 'string'
                                  && length $kid->[1]
                                  && length $kid->[1] <= 128;
    }

    my $p = jansson(MIME::Base64::decode_base64url($seg[1]));
    my $claims = claims($p) // return 'malformed';

    # the key by kid, or the only key
    my $alg;

    if ($h{kid}) {
        $alg = $loc{keys}{ $h{kid}[1] } // return 'unknown_key';
    } else {
        my @algs = values %{ $loc{keys} };
        return 'unknown_key' if @algs != 1;
        $alg = $algs[0];
    }

    return 'bad_signature' if $h{alg}[1] ne $alg || !$loc{valid}{$token};

    my $now = time();

    return 'expired' if $claims->{exp} <= $now;
    return 'not_yet_valid' if defined $claims->{nbf} && $claims->{nbf} > $now;
    return 'not_yet_valid' if defined $claims->{iat} && $claims->{iat} > $now;
    return 'environment' if $claims->{test};

    my $need = $loc{need} // 0;
    return 'category' if ($claims->{s} & $need) != $need;

    return 'ok';
}

# the unused low bits of a last partial character must be zero
sub canonical {
    my ($seg) = @_;

    my $r = length($seg) % 4;
    return 0 if $r == 1;
    return 1 if $r == 0;

    my $v = index('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                  . '0123456789-_', substr($seg, -1));

    return !($v & ($r == 2 ? 0x0f : 0x03));
}

# the claims the module reads, or undef where docs/errors.md says
# malformed: not an object, an accessID, no exp, a claim of the wrong
# type, type claims that contradict each other
sub claims {
    my ($p) = @_;

    return undef unless $p && $p->[0] eq 'object';

    my %c = %{ $p->[1] };
    my %out = (s => 0);

    return undef if exists $c{accessID} || !exists $c{exp};

    for my $k (qw(exp nbf iat oid s)) {
        next unless exists $c{$k};
        return undef unless $c{$k}[0] eq 'int';
        return undef if $k eq 's' && $c{$k}[1] =~ /^-[1-9]/;
        $out{$k} = 0 + $c{$k}[1];
    }

    for my $k (qw(t sandbox)) {
        next unless exists $c{$k};
        return undef unless $c{$k}[0] eq 'true' || $c{$k}[0] eq 'false';
        $out{test} ||= $c{$k}[0] eq 'true';
    }

    for my $k (qw(id sid)) {
        return undef if exists $c{$k} && $c{$k}[0] ne 'string';
    }

    my $for = $c{for};
    return undef if $for && $for->[0] ne 'string';

    if (my $acc = $c{acc}) {
        return undef unless $acc->[0] eq 'int' && $acc->[1] =~ /^[1-4]$/;
        return undef if $acc->[1] == 2 && !$out{test};
        return undef if $acc->[1] == 3 && $for && $for->[1] ne 'self';
        return undef if $acc->[1] == 4
                        && !($for && $for->[1] =~ /^asid:./s);
    }

    return \%out;
}

# JSON as the module's Jansson reads it (JSON_REJECT_DUPLICATES): valid
# UTF-8, no NUL, integers within 64 bits, reals within a double, at most
# 2048 nested values, an object or an array at the top; [ type, value ],
# or undef where Jansson refuses the text
sub jansson {
    my ($text) = @_;

    return undef unless $text =~ UTF8;

    local $_ = $text;
    pos($_) = 0;

    my $v = eval { json_value(0) } or return undef;

    /\G[ \t\n\r]*/gc;

    return undef if pos($_) != length $_;
    return undef unless $v->[0] eq 'object' || $v->[0] eq 'array';

    return $v;
}

sub json_value {
    my ($depth) = @_;

    no warnings qw(recursion);

    die "too deep\n" if ++$depth > 2048;

    /\G[ \t\n\r]*/gc;

    if (/\G\{/gc) {
        my %o;
        /\G[ \t\n\r]*/gc;
        return [ 'object', \%o ] if /\G\}/gc;

        while (1) {
            /\G[ \t\n\r]*"/gc or die "no key\n";
            my $k = json_string();
            die "duplicate\n" if exists $o{$k};
            /\G[ \t\n\r]*:/gc or die "no colon\n";
            $o{$k} = json_value($depth);
            /\G[ \t\n\r]*/gc;
            next if /\G,/gc;
            return [ 'object', \%o ] if /\G\}/gc;
            die "no end of object\n";
        }
    }

    if (/\G\[/gc) {
        my @a;
        /\G[ \t\n\r]*/gc;
        return [ 'array', \@a ] if /\G\]/gc;

        while (1) {
            push @a, json_value($depth);
            /\G[ \t\n\r]*/gc;
            next if /\G,/gc;
            return [ 'array', \@a ] if /\G\]/gc;
            die "no end of array\n";
        }
    }

    return [ 'string', json_string() ] if /\G"/gc;

    if (/\G(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][+-]?[0-9]+)?/gc) {
        my ($int, $frac, $exp) = ($1, $2, $3);

        if (!defined $frac && !defined $exp) {
            my ($neg, $digits) = $int =~ /^(-?)(\d+)$/;
            my $max = $neg ? '9223372036854775808' : '9223372036854775807';
            die "too big\n" if length $digits > length $max
                || (length $digits == length $max && $digits gt $max);
            return [ 'int', $int ];
        }

        my $real = 0 + ($int . ($frac // '') . ($exp // ''));
        die "real overflow\n" if $real == 9**9**9 || $real == -9**9**9;
        return [ 'real', $real ];
    }

    return [ $1 ] if /\G(true|false|null)/gc;

    die "not a value\n";
}

sub json_string {
    my $s = '';

    while (1) {
        if (/\G([^"\\\x00-\x1f]+)/gc) {
            $s .= $1;
        } elsif (/\G"/gc) {
            return $s;
        } elsif (/\G\\(["\\\/bfnrt])/gc) {
            $s .= { '"' => '"', '\\' => '\\', '/' => '/', b => "\b",
                    f => "\f", n => "\n", r => "\r", t => "\t" }->{$1};
        } elsif (/\G\\u([0-9a-fA-F]{4})/gc) {
            my $c = hex $1;
            die "NUL\n" if $c == 0;
            die "lone low surrogate\n" if $c >= 0xdc00 && $c <= 0xdfff;

            if ($c >= 0xd800 && $c <= 0xdbff) {
                /\G\\u([dD][c-fC-F][0-9a-fA-F]{2})/gc
                    or die "lone high surrogate\n";
                $c = 0x10000 + (($c - 0xd800) << 10) + (hex($1) - 0xdc00);
            }

            my $ch = chr $c;
            utf8::encode($ch);
            $s .= $ch;
        } else {
            die "bad string\n";
        }
    }
}

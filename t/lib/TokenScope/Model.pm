package TokenScope::Model;

# The verdict the module must give for an Authorization header, written
# from the documentation alone (docs/errors.md, docs/directives.md), so
# that t/attacks.t and t/badinput.t compare the module with the docs
# rather than with itself.

use strict;
use warnings;

use Exporter 'import';
use FindBin;
use MIME::Base64 ();

our @EXPORT_OK = qw(expected documented_reasons);

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


# The reason codes docs/errors.md documents (the first column of the
# tables under "Reason codes"), and "ok", the reason of a pass

sub documented_reasons {
    my $root = shift // "$FindBin::Bin/..";

    open my $fh, '<', "$root/docs/errors.md" or die "docs/errors.md: $!\n";
    my $doc = do { local $/; <$fh> };

    my ($section) = $doc =~ /^## Reason codes\n(.*?)(?=^## )/ms
        or die "docs/errors.md: no \"Reason codes\" section\n";

    my %reasons = (ok => 1);
    $reasons{$1} = 1 while $section =~ /^\| `([a-z_]+)` +\|/mg;

    # a list, or their number in scalar context
    my @reasons = sort keys %reasons;

    return @reasons;
}


1;

#!/usr/bin/perl

# Per-seller rate limits with the shipped conf.d/ratelimit.conf (the zone
# keyed by $token_scope_seller) and conf.d/ratelimit-server.conf (burst,
# 429, the JSON answer and X-Ratelimit-* headers): a seller over its limit
# gets 429 while another seller passes; the limit is per seller, not per
# token; requests without a verified token are never counted against a
# seller, since nginx does not limit an empty key.  The checks that need
# "the next request at once" use a zone with the same key at one request
# a minute, which holds however slow the client is; the shipped rate and
# burst are read from conf.d, and the checks of the shipped zone allow for
# what the rate refills while the requests are made.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);
use POSIX ();

my $CONFD = "$TokenScope::Test::ROOT/conf.d";

# the 429 timestamp is in the module's UTC format when nginx runs in UTC
$ENV{TZ} = 'UTC';

my $t = TokenScope::Test->new();

# the configuration under test
my ($RATE) = $t->read_file("$CONFD/ratelimit.conf")
             =~ /^limit_req_zone \$token_scope_seller zone=per_seller:\S+ rate=(\d+)r\/s;$/m;
my ($BURST) = $t->read_file("$CONFD/ratelimit-server.conf")
              =~ /^limit_req\s+zone=per_seller burst=(\d+) nodelay;$/m;
die "cannot read rate= and burst= from $CONFD\n" unless $RATE && $BURST;

# the same key at one request a minute
my $SLOW_BURST = 2;

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'forger');

(my $conf = <<'EOF') =~ s/%%CONFD%%/$CONFD/g;
http {
    %%TEST_GLOBALS_HTTP%%

    include %%CONFD%%/ratelimit.conf;

    limit_req_zone $token_scope_seller zone=per_seller_slow:1m rate=1r/m;

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        include %%CONFD%%/ratelimit-server.conf;

        location /marketplace {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /slow {
            token_scope marketplace;
            limit_req zone=per_seller_slow burst=%%SLOW_BURST%% nodelay;
            proxy_pass http://backend;
        }

        location /unprotected {
            proxy_pass http://backend;
        }

        location /upstream429 {
            token_scope marketplace;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }

        location /upstream429 {
            add_header X-From-Backend yes always;
            return 429 "backend says slow down\n";
        }
    }
}
EOF

$conf =~ s/%%SLOW_BURST%%/$SLOW_BURST/g;
$t->write_config($conf)->run();

my $A = '"aaaaaaaa-0000-4000-8000-00000000000a"';
my $B = '"bbbbbbbb-0000-4000-8000-00000000000b"';
my $C = '"cccccccc-0000-4000-8000-00000000000c"';

my $a1 = $t->mint('e1', '--categories', 'marketplace', '--claim', "sid=$A");
my $a2 = $t->mint('e1', '--categories', 'marketplace', '--claim', "sid=$A");
my $b1 = $t->mint('e1', '--categories', 'marketplace', '--claim', "sid=$B");
my $c1 = $t->mint('e1', '--categories', 'marketplace', '--claim', "sid=$C");
my $c_content = $t->mint('e1', '--categories', 'content', '--claim', "sid=$C");
my $c_forged = $t->mint('forger', '--categories', 'marketplace',
                        '--claim', "sid=$C", '--kid', 'e1');

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }

# polls CODE every 10 ms until it returns true or SECONDS pass

sub poll {
    my ($code, $seconds) = @_;

    my $deadline = time() + $seconds;

    until ($code->()) {
        return 0 if time() > $deadline;
        sleep 0.01;
    }

    return 1;
}

# requests until the first 429; the answers before it and the 429 itself

sub until_429 {
    my ($path, $token, $max) = @_;

    my @before;

    for (1 .. $max) {
        my $res = get($path, $token);
        return (\@before, $res) if $res->{status} == 429;
        push @before, verdict($res);
    }

    return (\@before, undef);
}


# the seller over its limit

my $start = time();
my ($before, $res) = until_429('/marketplace', $a1, 10 * ($BURST + 1));
my $took = time() - $start;

ok(defined $res, 'a seller sending more than rate and burst allow gets 429');
cmp_ok(scalar @$before, '>=', $BURST + 1, "the seller first gets the burst of $BURST plus one request");
cmp_ok(scalar @$before, '<=', $BURST + 2 + int($RATE * $took), sprintf('and no more than the rate refilled meanwhile (%d requests in %.2fs)', scalar @$before, $took));
is(join(',', sort keys %{ { map { $_ => 1 } @$before } }), '200', 'every request before the limit passed');

$res //= {};
my $j = $res->{json} // {};

is(verdict($res), '429 rate_limited', 'the 429 answer has the shape of the module errors with code rate_limited');
like($res->{headers}{'content-type'} // '', qr{^application/json}, 'the 429 answer is application/json');
is($j->{title}, 'too many requests', 'the 429 title is "too many requests"');
is($j->{statusText}, 'Too Many Requests', 'the 429 statusText is "Too Many Requests"');
like($res->{body} // '', qr/"status":429[,}]/, 'the 429 status is a JSON number');
like($j->{detail} // '', qr/too many requests/, 'the 429 detail says what happened');
ok(length($j->{origin} // ''), 'the 429 answer has an origin');
cmp_ok(abs((TokenScope::Test::parse_timestamp($j->{timestamp}) // 0) - time()), '<', 120, 'the 429 timestamp is now');
is(join(',', sort keys %$j), 'code,detail,origin,requestId,status,statusText,timestamp,title', 'the 429 answer has exactly the WB fields');
is($res->{headers}{'x-ratelimit-limit'}, $BURST, 'the 429 answer has X-Ratelimit-Limit, the burst');
is($res->{headers}{'x-ratelimit-retry'}, POSIX::ceil(1 / $RATE), 'the 429 answer has X-Ratelimit-Retry in seconds');
is($res->{headers}{'x-ratelimit-remaining'}, '0', 'the 429 answer has X-Ratelimit-Remaining 0');
is($res->{headers}{'retry-after'}, '1', 'the 429 answer has Retry-After');
isnt(get('/marketplace', $a1)->{json}{requestId}, $j->{requestId}, 'each 429 answer has its own requestId');

is(answer('/unprotected', $a1), '200', 'a location without token_scope does not limit the seller: there is no verified seller');
is(answer('/marketplace'), '401 missing', 'a request without a token is refused by the module, not by the limit');

# one slot comes back every 1/rate seconds; polled (a refused request
# does not delay the refill)
ok(poll(sub { answer('/marketplace', $a1) eq '200' }, 50 / $RATE), 'the limited seller passes again once the rate has refilled its allowance');


# at one request a minute: the per-seller key, "at once"

($before, $res) = until_429('/slow', $a1, $SLOW_BURST + 2);
is(scalar(@$before) . ' then ' . verdict($res // {}), ($SLOW_BURST + 1) . ' then 429 rate_limited', "at 1r/m and burst $SLOW_BURST, a seller gets the burst plus one request, then 429");
is(answer('/slow', $a2), '429 rate_limited', 'another token of the same seller is limited too: the limit is per seller');
is(answer('/slow', $b1), '200', 'another seller still passes while the first one is limited');
is(answer('/slow', $b1), '200', 'another seller passes again');


# requests without a verified seller are not counted against anyone

my %seen;
$seen{ answer('/slow') }++ for 1 .. 40;
is(join(',', sort keys %seen), '401 missing', 'forty requests without a token are all answered 401 missing, none 429');

%seen = ();
$seen{ answer('/slow', $c_forged) }++ for 1 .. 40;
is(join(',', sort keys %seen), '401 bad_signature', 'forty forged tokens naming seller C are all refused as bad signatures, none 429');

is(answer('/slow', $c1), '200', 'seller C still passes: forged tokens and requests without a token used none of its allowance');


# a valid token refused by the module still counts for its seller

($before, $res) = until_429('/slow', $c_content, $SLOW_BURST + 2);

ok(defined $res, 'a seller sending valid tokens without the category is limited too');
is(join(',', sort keys %{ { map { $_ => 1 } @$before } }), '401 category', 'its requests before the limit were refused for the category');
is(answer('/slow', $c1), '429 rate_limited', 'and then its good token is limited: the signature proved the seller');


# an upstream's own 429 passes unchanged

$res = get('/upstream429', $b1);
is($res->{status}, 429, 'an upstream 429 keeps its status');
is($res->{body}, "backend says slow down\n", 'an upstream 429 keeps its body: error_page applies only to nginx 429s');
is($res->{headers}{'x-from-backend'}, 'yes', 'an upstream 429 keeps its headers');


like($t->read_file('error.log'), qr/\[warn\].*limiting requests.*zone "per_seller"/, 'a refusal by the limit is logged at warn');
unlike($t->read_file('error.log'), qr/\[error\].*limiting requests/, 'no refusal by the limit is logged as an error');

$t->done_testing();

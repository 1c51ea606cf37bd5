#!/usr/bin/perl

# The decision belongs to the location that serves the request (SPEC
# section 13).  A $token_scope_* variable read before the access phase (a
# server-level "set" or "if", a location's rewrite phase) never fixes the
# decision, and a server-level "set" of $token_scope_seller already holds
# the token's seller; after "rewrite ... last", try_files to a named
# location, error_page and X-Accel-Redirect the serving location decides
# anew with its own rules.  The context survives the redirect: an
# error_page target with "token_scope off" sees the refusal's variables, a
# 429 named location still logs the seller.  One final decision is counted
# per request, however many locations it went through, also when
# error_page hands a refusal to a location without token_scope.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use TokenScope::Test qw(verdict token_claims);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    log_format lifecycle escape=json
        '{"request":"$request","uri":"$uri","status":$status,'
        '"decision":"$token_scope_decision","reason":"$token_scope_reason",'
        '"required":"$token_scope_required","seller":"$token_scope_seller"}';

    access_log %%TESTDIR%%/lifecycle.log lifecycle;

    # one request a minute per seller: the second one at once is refused
    limit_req_zone $token_scope_seller zone=one_a_minute:1m rate=1r/m;

    log_not_found off;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    # the seller read by a server-level "set" before any location is found
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        token_scope content;

        set $s $token_scope_seller;

        location /admin/ {
            token_scope marketplace;
            add_header X-Early-Seller "[$s]" always;
            proxy_pass http://backend;
        }

        location /plain/ {
            proxy_pass http://backend;
        }
    }

    # the type tested by a server-level "if" that does not return
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name localhost;

        token_scope content;

        if ($token_scope_type = base) {
            set $base 1;
        }

        location /admin/ {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /plain/ {
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name localhost;

        # the rewrite phase reads the seller, then goes to a stricter
        # location, or from a strict location to a weaker one
        location /weak/ {
            token_scope content;
            set $s $token_scope_seller;
            rewrite ^ /strict/x last;
            proxy_pass http://backend;
        }

        location /strict/ {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /strong/ {
            token_scope marketplace;
            set $s $token_scope_seller;
            rewrite ^ /lenient/x last;
            proxy_pass http://backend;
        }

        location /lenient/ {
            token_scope content;
            proxy_pass http://backend;
        }

        # try_files and error_page into a stricter named location
        location /try/ {
            token_scope content;
            root %%TESTDIR%%/empty;
            try_files $uri @strict;
        }

        location /missing/ {
            token_scope content;
            root %%TESTDIR%%/empty;
            error_page 404 = @strict;
        }

        location @strict {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        # the backend answers X-Accel-Redirect: /internal/x
        location /accel/ {
            token_scope content;
            proxy_pass http://backend;
        }

        location /internal/ {
            internal;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        # the refusal's variables in the error_page target
        location /guarded/ {
            token_scope marketplace;
            error_page 401 = @why;
            proxy_pass http://backend;
        }

        location /guarded-keep/ {
            token_scope marketplace;
            error_page 401 @why;
            proxy_pass http://backend;
        }

        location @why {
            token_scope off;

            # a named location's proxy_pass takes no URI
            rewrite ^ /why break;

            proxy_set_header X-Reason $token_scope_reason;
            proxy_set_header X-Decision $token_scope_decision;
            proxy_set_header X-Seller $token_scope_seller;
            proxy_pass http://backend;
        }

        # a refusal handed by error_page to a location without token_scope
        location /handed/ {
            token_scope marketplace;
            error_page 401 @plain;
            proxy_pass http://backend;
        }

        location @plain {
            rewrite ^ /unprotected break;
            proxy_pass http://backend;
        }

        # a static miss redirected from one protected location to another
        location /first/ {
            token_scope marketplace;
            root %%TESTDIR%%/empty;
            error_page 404 = /second/x;
        }

        location /second/ {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        # the 429 answer in a named location without token_scope
        location /limited/ {
            token_scope marketplace;
            limit_req zone=one_a_minute nodelay;
            limit_req_status 429;
            error_page 429 @busy;
            proxy_pass http://backend;
        }

        location @busy {
            rewrite ^ /busy break;
            proxy_pass http://backend;
        }

        location = /status {
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        # the front's requests alone in lifecycle.log
        access_log off;

        location / {
            return 200 "backend ok\n";
        }

        location /why {
            return 200 "reason=$http_x_reason decision=$http_x_decision seller=$http_x_seller\n";
        }

        location /accel/ {
            add_header X-Accel-Redirect /internal/x;
            return 200 "not redirected\n";
        }

        location /busy {
            return 200 "busy\n";
        }

        location = /unprotected {
            return 200 "unprotected\n";
        }
    }
}
EOF

mkdir $t->testdir . '/empty';

$t->run();

my $content = $t->mint('e1', '--categories', 'content');
my $market = $t->mint('e1', '--categories', 'marketplace');
my $both = $t->mint('e1', '--categories', 'content,marketplace');
my $limited = $t->mint('e1', '--categories', 'marketplace');

my $content_sid = token_claims($content)->{sid};
my $market_sid = token_claims($market)->{sid};
my $limited_sid = token_claims($limited)->{sid};

sub get {
    my ($port, $path, $token) = @_;
    return $t->get($path, port => $port,
                   defined $token ? (Authorization => "Bearer $token") : ());
}

sub answer { verdict(get(@_)) }


# polls COND every 50 ms for up to 10 s; returns its first true value

sub poll {
    my ($cond) = @_;

    for (1 .. 200) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }

    return undef;
}


# the access log line of "GET PATH", decoded ({} if none comes)

sub logged {
    my ($path) = @_;

    return poll(sub {
        for my $line (split /\n/, $t->read_file('lifecycle.log')) {
            my $j = eval { JSON::PP->new->decode($line) } or next;
            return $j if $j->{request} eq "GET $path HTTP/1.0";
        }
        return undef;
    }) // {};
}

# ... as "STATUS DECISION/REASON required=... seller=..."

sub decided {
    my $j = logged(@_);
    return 'no access log line' unless %$j;
    return "$j->{status} $j->{decision}/$j->{reason} required=$j->{required} seller=$j->{seller}";
}


# the status page as { 'name{labels}' => value } (as in t/status.t)

sub scrape {
    my $res = $t->get('/status', port => 8083);
    my %m;

    for my $line (split /\n/, $res->{body}) {
        $m{$1} = $2 if $line =~ /^([a-z_]+(?:\{[^}]*\})?) (-?\d+)$/;
    }

    return \%m;
}

sub decisions {
    my ($m, $decision, $reason) = @_;
    return $m->{"token_scope_decisions_total{decision=\"$decision\",reason=\"$reason\"}"} // 0;
}

# the page once it counted a decision more than BEFORE (counting may come
# in the log phase, after the answer)

sub counted {
    my ($before) = @_;
    return poll(sub {
        my $m = scrape();
        return all_decisions($m) > all_decisions($before) ? $m : undef;
    }) // scrape();
}

sub all_decisions {
    my ($m) = @_;
    my $n = 0;
    $n += $m->{$_} for grep { /^token_scope_decisions_total\{/ } keys %$m;
    return $n;
}


# a server-level "set" or "if" reads a variable before the location is
# known: the location decides all the same

for my $server ([ 8080, 'a server-level "set" of $token_scope_seller' ],
                [ 8082, 'a server-level "if" on $token_scope_type' ])
{
    my ($port, $read) = @$server;

    is(answer($port, '/admin/x', $content), '401 category', "a content token is refused by a marketplace location after $read");
    is(answer($port, '/admin/x', $market), '200', "a marketplace token passes a marketplace location after $read");
    is(answer($port, '/admin/x', $both), '200', "a token with both categories passes a marketplace location after $read");
    is(answer($port, '/admin/x'), '401 missing', "a request without a token is refused by a marketplace location after $read");
    is(answer($port, '/plain/x', $content), '200', "a location without token_scope uses the server's content rule after $read");
    is(answer($port, '/plain/x', $market), '401 category', "the server's content rule refuses a marketplace token after $read");

    get($port, "/admin/log-$port", $content);
    is(decided("/admin/log-$port"), "401 deny/category required=marketplace seller=$content_sid", "the access log shows the marketplace location's refusal after $read");
}

# what the server-level "set" read: the token's facts, not an empty value

is(get(8080, '/admin/early', $market)->{headers}{'x-early-seller'}, "[$market_sid]", 'a server-level "set" of $token_scope_seller holds the seller of a marketplace token that passes');


# rewrite ... last after the rewrite phase read the seller

is(answer(8083, '/weak/1', $content), '401 category', 'a content token is refused by the strict location a weak one rewrites to');
is(answer(8083, '/weak/1', $market), '200', 'a marketplace token passes the strict location a weak one rewrites to');
is(answer(8083, '/weak/1', $both), '200', 'a token with both categories passes the strict location a weak one rewrites to');
is(answer(8083, '/strong/1', $content), '200', 'a content token passes the weak location a strict one rewrites to: the weak one decides');
is(answer(8083, '/strong/1', $market), '401 category', 'a marketplace token is refused by the content location a strict one rewrites to');

get(8083, '/weak/log', $content);
is(decided('/weak/log'), "401 deny/category required=marketplace seller=$content_sid", 'the access log of a rewritten request shows the decision of the location it was rewritten to');


# try_files, error_page and X-Accel-Redirect: nginx clears the modules'
# contexts on these redirects today; the context that must now survive
# them (for the variables of an error_page target) must not carry the
# decision into the next location

# try_files $uri @strict

is(answer(8083, '/try/x', $content), '401 category', 'a content token is refused by the named location try_files falls back to');
is(answer(8083, '/try/x', $both), '200', 'a token with both categories passes the named location try_files falls back to');
is(answer(8083, '/try/x', $market), '401 category', 'a marketplace token is refused by the content location before try_files');


# error_page 404 = @strict

is(answer(8083, '/missing/x', $content), '401 category', 'a content token is refused by the named location error_page 404 redirects to');
is(answer(8083, '/missing/x', $both), '200', 'a token with both categories passes the named location error_page 404 redirects to');

get(8083, '/missing/log', $content);
is(decided('/missing/log'), "401 deny/category required=marketplace seller=$content_sid", 'the access log of a request redirected by error_page shows the final decision');


# X-Accel-Redirect from the backend to an internal location

is(answer(8083, '/accel/x', $content), '401 category', 'a content token that passed the first location is refused by the internal location X-Accel-Redirect names');
is(get(8083, '/accel/x', $both)->{body}, "backend ok\n", 'a token with both categories is served by the internal location X-Accel-Redirect names');


# error_page 401 = @why, with the refusal's variables: "=" alone makes
# the named location's status (the backend's 200) the answer; without "="
# the status stays 401 with the named location's body

my $res = get(8083, '/guarded/x', $content);
is($res->{status}, 200, 'error_page 401 = @why answers with the status of the named location');
is($res->{body}, "reason=category decision=deny seller=$content_sid\n", 'the error_page target sees the reason, the decision and the seller of the refusal');

$res = get(8083, '/guarded/x');
is($res->{body}, "reason=missing decision=deny seller=\n", 'the error_page target sees a missing token as reason missing and no seller');

is(get(8083, '/guarded/x', $market)->{body}, "backend ok\n", 'a marketplace token passes the location with error_page 401');

$res = get(8083, '/guarded-keep/x', $content);
is($res->{status}, 401, 'error_page 401 @why without "=" keeps the status 401');
is($res->{body}, "reason=category decision=deny seller=$content_sid\n", 'error_page 401 @why without "=" answers with the named location\'s body');

get(8083, '/guarded/log', $content);
is(decided('/guarded/log'), "200 deny/category required=marketplace seller=$content_sid", 'the access log of a refusal handled by error_page shows the refusal');


# one final decision counted per request

my $before = scrape();
is(get(8083, '/first/x', $market)->{body}, "backend ok\n", 'a request redirected from one protected location to another is served');
my $after = counted($before);
is(decisions($after, 'allow', 'ok') - decisions($before, 'allow', 'ok'), 1, 'a request redirected from one protected location to another that allows it counts one allow');
is(all_decisions($after) - all_decisions($before), 1, 'a request redirected from one protected location to another counts one decision in all');

$before = scrape();
is(answer(8083, '/missing/count', $content), '401 category', 'a request allowed by one location and refused by the one it is redirected to is refused');
$after = counted($before);
is(decisions($after, 'deny', 'category') - decisions($before, 'deny', 'category'), 1, 'that request counts its final refusal');
is(all_decisions($after) - all_decisions($before), 1, 'that request counts one decision in all');

# error_page 401 @plain: the serving location has no token_scope, the
# refusal is still counted, in the log phase, by the context it left

$before = scrape();
$res = get(8083, '/handed/x', $content);
is($res->{status}, 401, 'a refusal handed by error_page 401 @plain to a location without token_scope keeps the status 401');
is($res->{body}, "unprotected\n", 'a refusal handed by error_page to a location without token_scope answers with that location\'s body');
$after = counted($before);
is(decisions($after, 'deny', 'category') - decisions($before, 'deny', 'category'), 1, 'a refusal handed by error_page to a location without token_scope is counted once as deny/category');
is(all_decisions($after) - all_decisions($before), 1, 'a refusal handed by error_page to a location without token_scope counts one decision in all');


# limit_req's 429 in a named location without token_scope

is(get(8083, '/limited/1', $limited)->{status}, 200, 'the first request of a seller limited to one a minute passes');
$res = get(8083, '/limited/2', $limited);
is($res->{status}, 429, 'the next one is refused by the rate limit with 429');
is($res->{body}, "busy\n", 'the 429 answer comes from the named location of error_page 429');

# limit_req runs before the access phase: nothing is decided yet, but the
# seller (a fact of the token) is known and stays known in @busy
is(logged('/limited/2')->{status}, 429, 'the access log has the 429 of the rate limit');
is(logged('/limited/2')->{seller}, $limited_sid, 'the access log of a 429 answered by a named location without token_scope shows the seller');

$t->done_testing();

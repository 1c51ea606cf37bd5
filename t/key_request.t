#!/usr/bin/perl

# Keys over HTTP (SPEC section 14, token_scope_key_request): the JWKS comes
# from a subrequest to an internal location that proxies to a provider,
# here a second server of the same nginx serving files that the test
# rewrites and counting its answers in an access log of its own.  Two
# workers (reuseport).  Checked: the first token fetches and waits, the
# other worker fetches nothing; a rotation (a new kid at the provider)
# costs one fetch; a kid removed at the provider is refused after the
# refresh, also for a token the cache holds; a provider answering 404 or
# junk leaves the last good keys at work with one error line per streak;
# 1000 forged kids cause at most one fetch per min_refresh; a reload keeps
# the keys without a fetch; Cache-Control max-age shorter than valid is
# honoured; the status page counts the fetches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals reload);

my $t = TokenScope::Test->new();

$t->keygen('ES256', $_) for qw(a1 a2 a3 f1);

# the provider's key sets, from the keys' own JWKS files

sub jwks {
    my (@kids) = @_;

    my @keys = map {
        @{ JSON::PP->new->decode($t->read_file("keys/$_.jwks"))->{keys} }
    } @kids;

    return JSON::PP->new->canonical->encode({ keys => \@keys });
}

mkdir $t->testdir . '/provider';
chmod 0755, $t->testdir . '/provider';

sub provide {
    my ($file, $text) = @_;

    my $path = $t->testdir . "/provider/$file";

    if (!defined $text) {
        unlink $path;
        return;
    }

    # a new file in place of the old: nginx never reads half of one
    $t->write_file("provider/$file.new", $text);
    rename "$path.new", $path or die "rename: $!\n";
}

provide('main.json', jwks(qw(a1 a2)));
provide('short.json', jwks(qw(a1 a2)));

$t->write_config(globals(workers => 2) . <<'EOF');

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_cache zone=c:1m;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        add_header X-Worker $pid always;
        add_header X-TS-Reason $token_scope_reason always;

        location /main {
            token_scope marketplace;
            token_scope_key_file %%KEYS%%/f1.pem kid=f1;
            token_scope_key_request /_keys/main min_refresh=1s;
            proxy_pass http://backend;
        }

        location /slow {
            token_scope marketplace;
            token_scope_key_request /_keys/slow min_refresh=1s;
            proxy_pass http://backend;
        }

        location /short {
            token_scope marketplace;
            token_scope_key_request /_keys/short min_refresh=1s;
            proxy_pass http://backend;
        }

        location /_keys/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8082%%/;
            proxy_pass_request_headers off;
            proxy_pass_request_body off;
        }

        location = /status {
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

    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name provider;

        access_log %%TESTDIR%%/provider.log;

        location = /main {
            default_type application/json;
            alias %%TESTDIR%%/provider/main.json;
        }

        # about 3 s for the answer: a window for requests to come meanwhile
        location = /slow {
            default_type application/json;
            limit_rate 100;
            alias %%TESTDIR%%/provider/main.json;
        }

        location = /short {
            default_type application/json;
            add_header Cache-Control "public, max-age=4";
            alias %%TESTDIR%%/provider/short.json;
        }
    }
}
EOF

$t->run();

# the provider's answers, by file
sub fetches {
    my ($what) = @_;
    return scalar grep { m{"GET /\Q$what\E } }
                  split /\n/, $t->read_file('provider.log');
}

sub get {
    my ($path, $token) = @_;
    return $t->get($path, Authorization => "Bearer $token");
}

sub answer { verdict(get(@_)) }

sub metric {
    my ($name) = @_;
    my ($v) = $t->get('/status')->{body} =~ /^\Q$name\E (\S+)$/m;
    return $v;
}

sub errors {
    return scalar grep { /keys from "\/_keys\/main" not fetched/ }
                  split /\n/, $t->read_file('error.log');
}

# a token whose kid no key has: refused before any signature check, so
# the signature is any 64 bytes
sub forged {
    my ($kid) = @_;
    return $t->craft(key => 'a1', signature => 'x' x 64,
                     header => '{"alg":"ES256","kid":"' . $kid
                               . '","typ":"JWT"}');
}

# runs CODE in N processes at once; what each returned, true or false

sub parallel {
    my ($n, $code) = @_;

    my @pids;

    for (1 .. $n) {
        my $pid = fork();
        die "fork: $!\n" unless defined $pid;

        if ($pid == 0) {
            POSIX::_exit($code->() ? 0 : 1);
        }

        push @pids, $pid;
    }

    return map { waitpid($_, 0); $? == 0 } @pids;
}

# waits until min_refresh (1 s) has passed since the last fetch began
sub past_min_refresh {
    my $since = time();
    wait_for(sub { time() - $since > 1.1 }, 3);
}

my $a1 = $t->mint('a1', '--categories', 'marketplace');
my $a2 = $t->mint('a2', '--categories', 'marketplace');
my $f1 = $t->mint('f1', '--categories', 'marketplace');

is(metric('token_scope_key_request_age_seconds'), '-1',
   'no keys fetched at start: age -1');

# single flight: 8 requests at once on a node without keys, the answer
# slow; the first fetches, the others wait for it in both workers

my @all = parallel(8, sub { answer('/slow', $a1) eq '200' });
is(scalar(grep { $_ } @all), 8, 'single flight: all 8 waiting requests pass');
is(fetches('slow'), 1, 'single flight: one fetch for them all');

# start: no keys; the first token fetches and waits, the other worker
# takes the keys from the zone

is(answer('/main', $a1), '200', 'start: the first token waits for the fetch and passes');
is(fetches('main'), 1, 'start: one fetch');

my ($v, $workers) = $t->every_worker('/main', $a2, 20);
is($v, '200', 'start: tokens of both kids pass in every worker');
is($workers, 2, 'start: both workers answered');
is(fetches('main'), 1, 'start: one fetch per node, not per worker');

is(answer('/main', $f1), '200', 'a key from token_scope_key_file works beside them');
is(fetches('main'), 1, 'a key from a file needs no fetch');

# both URIs so far: /_keys/slow and /_keys/main, 2 keys each
is(metric('token_scope_key_fetches_total{result="ok"}'), 2,
   'status: two good fetches');
is(metric('token_scope_key_request_keys'), 4, 'status: 4 keys held');
cmp_ok(metric('token_scope_key_request_age_seconds'), '>=', 0,
       'status: the age of the keys');

# rotation: a new kid at the provider; its first token fetches once

provide('main.json', jwks(qw(a1 a2 a3)));
past_min_refresh();

my $a3 = $t->mint('a3', '--categories', 'marketplace');

is(answer('/main', $a3), '200', 'rotation: the first token with the new kid passes');
is(fetches('main'), 2, 'rotation: it fetched once');

($v, $workers) = $t->every_worker('/main', $a3, 20);
is($v, '200', 'rotation: followers pass in every worker');
is(fetches('main'), 2, 'rotation: followers fetch nothing');

# forged kids: 1000 within about a second, from 4 clients at once

past_min_refresh();

my $before = fetches('main');
my $start = time();
my $c = 0;
my $refused = !grep { !$_ } parallel(4, sub {
    $c = $$;
    for my $i (1 .. 250) {
        my $r = answer('/main', forged("forged-$c-$i"));
        return 0 if $r ne '401 unknown_key';
    }
    return 1;
});

my $spent = time() - $start;
my $storm = fetches('main') - $before;

ok($refused, 'forged kids: all 1000 refused as unknown_key');
cmp_ok($storm, '>=', 1, 'forged kids: a fetch was made');
cmp_ok($storm, '<=', 1 + int($spent / 1),
       "forged kids: at most one fetch per min_refresh ($storm in "
       . sprintf('%.1f', $spent) . ' s)');
is(answer('/main', $a1), '200', 'forged kids: good tokens still pass');

# the provider answers junk, then 404: the last good keys stay, one error
# line for the streak, a notice on recovery

provide('main.json', "this is not JSON\n");
past_min_refresh();

is(answer('/main', forged('junk-1')), '401 unknown_key', 'junk: an unknown kid is refused');
ok(wait_for(sub { fetches('main') == $before + $storm + 1 }, 5), 'junk: it was fetched');
ok(wait_for(sub { errors() == 1 }, 5), 'junk: one error line');
is(answer('/main', $a1), '200', 'junk: the last good keys stay');
is(answer('/main', $a3), '200', 'junk: the rotated key too');

provide('main.json', undef);
past_min_refresh();

is(answer('/main', forged('gone-1')), '401 unknown_key', '404: an unknown kid is refused');
ok(wait_for(sub { fetches('main') == $before + $storm + 2 }, 5), '404: it was fetched');
is(answer('/main', $a2), '200', '404: the last good keys stay');
is(errors(), 1, '404: still one error line for the streak');

cmp_ok(metric('token_scope_key_fetches_total{result="invalid"}'), '>=', 1,
       'status: the junk counted as invalid');
cmp_ok(metric('token_scope_key_fetches_total{result="error"}'), '>=', 1,
       'status: the 404 counted as error');

provide('main.json', jwks(qw(a1 a2 a3)));
past_min_refresh();

is(answer('/main', forged('back-1')), '401 unknown_key', 'recovery: an unknown kid is still refused');
ok(wait_for(sub { $t->read_file('error.log') =~ /keys from "\/_keys\/main" fetched again/ }, 5),
   'recovery: a notice');

# a reload keeps the keys and does not fetch

my $n = fetches('main');
reload($t);

($v, $workers) = $t->every_worker('/main', $a3, 20);
is($v, '200', 'reload: the fetched keys work in the new workers');
is(fetches('main'), $n, 'reload: no fetch');

# a kid removed at the provider: refused after the refresh (max-age=4, so
# valid is 4 s and the refresh comes after 2 s), also for a cached token

is(answer('/short', $a2), '200', 'short: a2 passes');
is(answer('/short', $a2), '200', 'short: a2 passes again');
my $hits = metric('token_scope_cache_hits_total');
is(answer('/short', $a2), '200', 'short: a2 from the cache');
cmp_ok(metric('token_scope_cache_hits_total'), '>', $hits, 'short: it was a cache hit');
cmp_ok(fetches('short'), '>=', 1, 'short: fetched');

provide('short.json', jwks(qw(a1)));

# known tokens only: what fetches now is the refresh, max-age's (a slow
# machine may have had one already: the count is taken from here)
my $n0 = fetches('short');
my $t0 = time();
ok(wait_for(sub { answer('/short', $a1); fetches('short') > $n0 }, 10),
   'max-age: a refresh in the background');
cmp_ok(time() - $t0, '<', 6, 'max-age=4 honoured (valid is 1h)');

ok(wait_for(sub { answer('/short', $a2) eq '401 unknown_key' }, 5),
   'removed kid: the cached token is refused after the refresh');
is(answer('/short', $a1), '200', 'removed kid: the kept kid passes');

# mistakes fail "nginx -t", each named

my $bad = TokenScope::Test->new(name => 'nginx -t', config_errors => 1);

for my $case (['/_keys/main valid=soon', qr/invalid parameter "valid=soon"/],
              ['/_keys/main every=1s', qr/invalid parameter "every=1s"/],
              ['http://idp.example.com/jwks', qr/is not a URI of this server/])
{
    $bad->write_config(<<"EOF");
http {
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            token_scope marketplace;
            token_scope_key_request $case->[0];
        }
    }
}
EOF

    my ($rc, $out) = $bad->test_config();
    isnt($rc, 0, "nginx -t refuses token_scope_key_request $case->[0]");
    like($out, $case->[1], '... and names the mistake');
}

$t->done_testing();

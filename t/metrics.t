#!/usr/bin/perl

# The token_scope_status page as an operator alerts on it.  The page is
# parsed with prometheus_client's own parser: every family has HELP and
# TYPE, and every label pair the configuration fixes is printed at 0
# before it counts anything.  Then each counter moves by exactly what a
# known sequence of requests must make it move: decisions by server,
# signatures checked by key and result (cached tokens are not), the time
# histogram, opaque lookups by result, a limit_req refusal counting one
# cache hit, a configuration error counted as reason "config".  The revocation state: a node started before its Redis
# reports a growing sync age (never -1) and stale 1 until the first sync,
# then stale 0 and the time of the sync; Redis stopped beyond max_stale
# sets stale again, with one warn line, and its return one notice line and
# the reconnects.  A reload that changes the keys or servers starts their
# counters anew; one that does not keeps them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);
use TokenScope::Model qw(documented_reasons);
use TokenScope::Redis qw(wait_for globals);

TokenScope::Redis::check_installed();

my $PYTHON = '/usr/bin/python3';

plan(skip_all => 'python3-prometheus-client is not installed')
    unless system($PYTHON, '-c', 'import prometheus_client.parser') == 0;

my $MAX_STALE = 2;

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');
$t->keygen('ES256', 'k0');
$t->keygen('ES256', 'forger');

# %%E2%% is filled in per phase
my $template = globals(workers => 2) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    %%E2%%
    token_scope_cache zone=tokens:1m;
    token_scope_redis 127.0.0.1:%%REDIS%% timeout=300ms max_stale=%%MAX_STALE%%s;

    limit_req_zone $token_scope_seller zone=slow:1m rate=1r/m;

    # a rule naming nothing known: an operator's mistake nginx -t misses
    map $host $ts_typo {
        default  nosuchcategory;
    }

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name api.example.com alias.example.com;

        location /marketplace {
            token_scope marketplace;
            token_scope_revocation off;
            proxy_pass http://backend;
        }

        location /revocation {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /slow {
            token_scope marketplace;
            token_scope_revocation off;
            limit_req zone=slow;
            limit_req_status 429;
            proxy_pass http://backend;
        }

        location /config {
            token_scope $ts_typo;
            token_scope_mode report;
            token_scope_revocation off;
            proxy_pass http://backend;
        }

        location /nokid {
            token_scope_key_file %%KEYS%%/k0.pem;
            token_scope marketplace;
            token_scope_revocation off;
            proxy_pass http://backend;
        }

        location /opaque {
            token_scope all;
            token_scope_revocation off;
            token_scope_opaque on ttl=60s miss_ttl=60s;
            proxy_pass http://backend;
        }

        location = /status {
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name other.example.com;

        location / {
            token_scope content;
            token_scope_revocation off;
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

sub config {
    my (%opt) = @_;

    my $conf = $template;
    my $e2 = $opt{e2} ? 'token_scope_key_file %%KEYS%%/e2.pem kid=e2;' : '';

    $conf =~ s/%%E2%%/$e2/;
    $conf =~ s/%%REDIS%%/$redis->port/ge;
    $conf =~ s/%%MAX_STALE%%/$MAX_STALE/g;

    $t->write_config($conf);
}

# the page parsed by prometheus_client: { families => { name => { type,
# help } }, samples => { 'name{a="x",b="y"}' => value } }, labels sorted

my $PARSE = <<'EOF';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"families": {}, "samples": {}}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    out["families"][f.name] = {"type": f.type, "help": f.documentation}
    for s in f.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        key = s.name + ("{" + labels + "}" if labels else "")
        out["samples"][key] = s.value
print(json.dumps(out))
EOF

sub scrape {
    my ($host) = @_;

    my $res = $t->get('/status', defined $host ? (Host => $host) : ());
    die "status page: $res->{status}\n" unless $res->{status} == 200;

    my $file = $t->write_file('page.txt', $res->{body});
    my $script = $t->write_file('parse.py', $PARSE);

    my ($rc, $json, $err) = $t->run_cmd([ $PYTHON, $script, $file ]);
    die "prometheus_client cannot parse the page: $err\n$res->{body}\n"
        if $rc != 0;

    my $page = decode_json($json);
    $page->{text} = $res->{body};

    return $page;
}

sub v {
    my ($page, $key) = @_;
    return $page->{samples}{$key};
}

# the samples of one family (a prefix of the name), "key=value" sorted

sub family {
    my ($page, $name) = @_;
    return join ' ', map { my $k = $_; (my $l = $k) =~ s/^\Q$name\E//;
                           "$l=" . ($page->{samples}{$k} + 0) }
                     sort grep { /^\Q$name\E(\{|$)/ }
                     keys %{ $page->{samples} };
}

# the difference of every sample between two scrapes, without the zeroes
# and without the gauges and the histogram (their own checks)

sub moved {
    my ($before, $after, $prefix) = @_;
    return join ' ', map { "$_ +" . ($after->{samples}{$_} - ($before->{samples}{$_} // 0)) }
                     sort grep { /^\Q$prefix\E/
                                 && $after->{samples}{$_} != ($before->{samples}{$_} // 0) }
                     keys %{ $after->{samples} };
}

sub get {
    my ($path, $token, $host) = @_;
    return $t->get($path, (defined $token ? (Authorization => "Bearer $token") : ()),
                          (defined $host ? (Host => $host) : ()));
}

sub answer { verdict(get(@_)) }

# the log phase counts after the answer is sent: wait for a counter

sub settled {
    my ($key, $value) = @_;
    my $page;
    wait_for(sub { $page = scrape(); ($page->{samples}{$key} // -1) >= $value }, 5);
    return $page;
}

# the master's children now; a reload is done when they have all exited

sub workers {
    my $master = $t->read_file('nginx.pid');
    chomp $master;

    my @pids;

    for my $status (glob '/proc/[0-9]*/status') {
        open my $fh, '<', $status or next;
        local $/;
        my $s = <$fh> // '';
        push @pids, $1 if $s =~ /^PPid:\s+\Q$master\E$/m && $status =~ m{/proc/(\d+)/};
    }

    return @pids;
}

sub reload {
    my @old = workers();

    TokenScope::Redis::reload($t);

    ok(wait_for(sub { !grep { kill 0, $_ } @old }, 10), 'the old workers have exited');
}


# nginx starts before its Redis: never synced, the age still grows

config();
$t->run();

my $page = scrape();

my %bad;
for my $name (sort keys %{ $page->{families} }) {
    my $f = $page->{families}{$name};
    $bad{$name} = "$f->{type} '$f->{help}'"
        if $f->{type} eq 'unknown' || $f->{help} eq '';
}

ok(scalar(keys %{ $page->{families} }) >= 20, 'prometheus_client parses the page into its families') or diag($page->{text});
is(join(', ', map { "$_: $bad{$_}" } sort keys %bad), '', 'every family has HELP and TYPE');
my @type_lines = $page->{text} =~ /^# TYPE (\S+) /mg;
my @help_lines = $page->{text} =~ /^# HELP (\S+) /mg;
is(join(' ', @help_lines), join(' ', @type_lines), 'each TYPE line has its HELP line');

my @decision_keys = grep { /^token_scope_decisions_total\{/ } keys %{ $page->{samples} };
my %page_reasons = map { /reason="(\w+)"/ ? ($1 => 1) : () } @decision_keys;
is(join(' ', sort keys %page_reasons), join(' ', documented_reasons()), 'the reasons on the page are those docs/errors.md documents');
is(scalar @decision_keys, 3 * documented_reasons(), 'every decision and reason pair is printed');
is(v($page, 'token_scope_decisions_total{decision="report",reason="config"}'), 0, 'a pair never seen is printed at 0 (report, config)');
is(family($page, 'token_scope_category_requests_total{category="finance"}'), '=0', 'a configured category never required is printed at 0');
is(family($page, 'token_scope_verifications_total'), '{alg="ES256",kid="",result="bad_signature"}=0 {alg="ES256",kid="",result="ok"}=0 {alg="ES256",kid="e1",result="bad_signature"}=0 {alg="ES256",kid="e1",result="ok"}=0', 'verifications: every configured key and algorithm, each result at 0');
is(family($page, 'token_scope_server_decisions_total'), '{decision="allow",server="api.example.com"}=0 {decision="allow",server="other.example.com"}=0 {decision="deny",server="api.example.com"}=0 {decision="deny",server="other.example.com"}=0 {decision="report",server="api.example.com"}=0 {decision="report",server="other.example.com"}=0', 'decisions by server: the servers that use the module, by their first name, at 0');
is(family($page, 'token_scope_opaque_lookups_total'), '{result="error"}=0 {result="found"}=0 {result="timeout"}=0 {result="unknown"}=0', 'opaque lookups: every result at 0');
is(family($page, 'token_scope_redis_reconnects_total'), '{role="opaque"}=0 {role="revocation"}=0', 'Redis reconnects: both users at 0');
is(scalar(grep { /^token_scope_request_duration_seconds_bucket\{/ } keys %{ $page->{samples} }), 14, 'the time histogram has its 14 buckets');
is($page->{families}{token_scope_request_duration_seconds}{type}, 'histogram', 'the time family is a histogram');
is(v($page, 'token_scope_request_duration_seconds_count'), 0, 'no request timed yet');
is(family($page, 'token_scope_key_info'), '{kid="e1"}=1', 'key_info lists keys by kid, the key without a kid is not listed');
unlike($page->{text}, qr/kid=""\} 1/, 'no key_info{kid=""}');
is(v($page, 'token_scope_keys'), 2, 'token_scope_keys counts both keys, with and without a kid');
like($page->{text}, qr/^token_scope_build_info\{version="[0-9.]+",nginx="[0-9.]+",openssl="[^"]+"\} 1$/m, 'build_info names the module, nginx and OpenSSL versions');

is(v($page, 'token_scope_revocation_stale'), 1, 'before the first sync the revocation state is stale');
is(v($page, 'token_scope_revocation_last_sync_timestamp_seconds'), 0, 'and was never synced: last sync 0');
cmp_ok(v($page, 'token_scope_revocation_sync_age_seconds'), '>=', 0, 'the sync age is not -1 while never synced');
is(answer('/revocation', $t->mint('e1', '--categories', 'marketplace')), '503 redis_unavailable', 'meanwhile the node refuses with 503');

my $age0 = v($page, 'token_scope_revocation_sync_age_seconds');
ok(wait_for(sub { v(scrape(), 'token_scope_revocation_sync_age_seconds') > $age0 }, 3), 'the sync age grows while never synced, so "> max_stale" alerts fire');

$redis->start();

ok(wait_for(sub { v(scrape(), 'token_scope_revocation_stale') == 0 }, 5), 'Redis up: the state is synced, stale 0');
$page = scrape();
cmp_ok(abs(v($page, 'token_scope_revocation_last_sync_timestamp_seconds') - time()), '<=', 2, 'the last sync is now');
cmp_ok(v($page, 'token_scope_revocation_sync_age_seconds'), '<=', 2, 'and the sync age small');
is(answer('/revocation', $t->mint('e1', '--categories', 'marketplace')), '200', 'and the node lets tokens pass');


# a known sequence of requests

my $market = $t->mint('e1', '--categories', 'marketplace');
my $content = $t->mint('e1', '--categories', 'content');
my $forged = $t->mint('forger', '--categories', 'marketplace', '--kid', 'e1');
my $alien = $t->mint('e2', '--categories', 'marketplace');
my $nokid = $t->mint('k0', '--categories', 'marketplace', '--no-kid');

my $before = scrape();

is(answer('/marketplace', $market), '200', 'a valid token: verified (a miss)');
is(answer('/marketplace', $market), '200', 'again: a cache hit, no verification');
is(answer('/marketplace', $market), '200', 'again: a cache hit');
is(answer('/marketplace', $forged), '401 bad_signature', 'a forged token: checked, bad signature');
is(answer('/marketplace', $forged), '401 bad_signature', 'again: a bad signature is never cached');
is(answer('/marketplace', $alien), '401 unknown_key', 'an unknown kid: no signature checked');
is(answer('/marketplace', $content), '401 category', 'a token without the category: verified, then refused');
is(answer('/nokid', $nokid), '200', 'a token without a kid, verified by the key without one');
is(answer('/', $content, 'other.example.com'), '200', 'the other server: a cached token passes');
is(answer('/', $market, 'other.example.com'), '401 category', 'the other server refuses another');
is(answer('/marketplace'), '401 missing', 'no token');

my $after = settled('token_scope_request_duration_seconds_count',
                    $before->{samples}{token_scope_request_duration_seconds_count} + 11);

is(moved($before, $after, 'token_scope_verifications_total'), 'token_scope_verifications_total{alg="ES256",kid="",result="ok"} +1 token_scope_verifications_total{alg="ES256",kid="e1",result="bad_signature"} +2 token_scope_verifications_total{alg="ES256",kid="e1",result="ok"} +2', 'verifications: exactly the signatures checked, by key and result; cache hits and unknown kids are not');
is(moved($before, $after, 'token_scope_server_decisions_total'), 'token_scope_server_decisions_total{decision="allow",server="api.example.com"} +4 token_scope_server_decisions_total{decision="allow",server="other.example.com"} +1 token_scope_server_decisions_total{decision="deny",server="api.example.com"} +5 token_scope_server_decisions_total{decision="deny",server="other.example.com"} +1', 'decisions by server: each request under its server');
is(moved($before, $after, 'token_scope_cache_hits_total'), 'token_scope_cache_hits_total +4', 'cache hits: the two repeats and both tokens again in the other server');
is(moved($before, $after, 'token_scope_request_duration_seconds_count'), 'token_scope_request_duration_seconds_count +11', 'the histogram counts each of the 11 requests once; the status page is not timed');
is(v($after, 'token_scope_request_duration_seconds_bucket{le="+Inf"}'), v($after, 'token_scope_request_duration_seconds_count'), 'the +Inf bucket is the count');
cmp_ok(v($after, 'token_scope_request_duration_seconds_sum'), '>', v($before, 'token_scope_request_duration_seconds_sum'), 'the sum grows');
cmp_ok(v($after, 'token_scope_request_duration_seconds_sum'), '<', 1, 'and is a time in seconds, small');

my @buckets = map { v($after, "token_scope_request_duration_seconds_bucket{le=\"$_\"}") }
              qw(1e-05 2.5e-05 5e-05 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 +Inf);
is(scalar(grep { $buckets[$_] < $buckets[$_ - 1] } 1 .. $#buckets), 0, 'the buckets are cumulative');


# a request limit_req refuses counts one cache hit, and no decision

is(answer('/slow', $market), '200', 'the first request to the limited location passes');
$before = settled('token_scope_server_decisions_total{decision="allow",server="api.example.com"}',
                  $after->{samples}{'token_scope_server_decisions_total{decision="allow",server="api.example.com"}'} + 1);
is(get('/slow', $market)->{status}, 429, 'the next one is refused by limit_req');
$after = settled('token_scope_request_duration_seconds_count',
                 $before->{samples}{token_scope_request_duration_seconds_count} + 1);
is(moved($before, $after, 'token_scope_cache_'), 'token_scope_cache_hits_total +1', 'the refused request is one cache hit, not two');
is(moved($before, $after, 'token_scope_decisions_total'), '', 'and no decision');


# a configuration error is a decision with the reason "config"

$before = scrape();
is(answer('/config', $market), '200', 'report mode: a rule naming an unknown category lets the request go');
$after = settled('token_scope_decisions_total{decision="report",reason="config"}', 1);
is(moved($before, $after, 'token_scope_decisions_total'), 'token_scope_decisions_total{decision="report",reason="config"} +1', 'and counts it as decision report, reason config');


# opaque lookups

my $found = 'secret_' . ('F' x 32);
$redis->cli('HSET', 'token_scope:opaque:' . sha256_hex($found), 'type', 'secret', 'scopes', 'read_catalog');
my $unknown = 'secret_' . ('U' x 32);
my $slow = 'secret_' . ('S' x 32);
$t->remember_secret($_) for $found, $unknown, $slow;

$before = scrape();
is(answer('/opaque', $found), '200', 'an opaque token Redis knows: found');
is(answer('/opaque', $found), '200', 'again: cached, no lookup');
is(answer('/opaque', $unknown), '401 unknown_token', 'an opaque token Redis does not know: unknown');

$redis->pause();
is(answer('/opaque', $slow), '503 redis_unavailable', 'Redis paused: the lookup times out');
$redis->resume();

$after = settled('token_scope_opaque_lookups_total{result="timeout"}', 1);
is(moved($before, $after, 'token_scope_opaque_lookups_total'), 'token_scope_opaque_lookups_total{result="found"} +1 token_scope_opaque_lookups_total{result="timeout"} +1 token_scope_opaque_lookups_total{result="unknown"} +1', 'opaque lookups: one found, one unknown, one timeout');
ok(wait_for(sub { v(scrape(), 'token_scope_redis_errors_total{role="opaque"}') >= 1 }, 5), 'the stuck lookup connection is a Redis error of the opaque role');
ok(wait_for(sub { v(scrape(), 'token_scope_redis_reconnects_total{role="opaque"}') >= 1 }, 5), 'and its connection is opened again: a reconnect');


# Redis stopped beyond max_stale: stale, with one warn line; back: notice

my $from = length $t->read_file('error.log');
my $errors = v(scrape(), 'token_scope_redis_errors_total{role="revocation"}');

$redis->stop();

ok(wait_for(sub { v(scrape(), 'token_scope_redis_errors_total{role="revocation"}') > $errors }, 5), 'Redis stopped: the sync counts an error');
ok(wait_for(sub { v(scrape(), 'token_scope_revocation_stale') == 1 }, $MAX_STALE + 5), 'past max_stale the state is stale: the gauge says 1');
cmp_ok(v(scrape(), 'token_scope_revocation_sync_age_seconds'), '>', $MAX_STALE - 1, 'and the sync age is past max_stale');
is(answer('/revocation', $market), '503 redis_unavailable', 'the node refuses');

sub lines {
    my ($re) = @_;
    return grep { /$re/ } split /\n/, substr($t->read_file('error.log'), $from);
}

my @warn = lines(qr/revocation state from redis .* is older than max_stale/);
is(scalar @warn, 1, 'one line says the state went stale');
like($warn[0] // '', qr/\[warn\]/, 'at the warn level');

my $reconnects = v(scrape(), 'token_scope_redis_reconnects_total{role="revocation"}');
$redis->start();

ok(wait_for(sub { v(scrape(), 'token_scope_revocation_stale') == 0 }, 5), 'Redis back: stale 0 again');
ok(wait_for(sub { answer('/revocation', $market) eq '200' }, 5), 'the node lets tokens pass again');
my @notice = lines(qr/revocation state from redis .* is current again/);
is(scalar @notice, 1, 'one line says the state is current again');
like($notice[0] // '', qr/\[notice\]/, 'at the notice level');
cmp_ok(v(scrape(), 'token_scope_redis_reconnects_total{role="revocation"}'), '>', $reconnects, 'the sync reconnected: counted');


# reloads: the same labels keep their counters, other labels start anew

$page = scrape();
my $verified = v($page, 'token_scope_verifications_total{alg="ES256",kid="e1",result="ok"}');
my $decided = v($page, 'token_scope_decisions_total{decision="allow",reason="ok"}');
cmp_ok($verified, '>', 0, 'some verifications were counted');

reload();
$page = scrape();
is(v($page, 'token_scope_verifications_total{alg="ES256",kid="e1",result="ok"}'), $verified, 'a reload with the same keys and servers keeps the verifications');
is(v($page, 'token_scope_decisions_total{decision="allow",reason="ok"}'), $decided, 'and the decisions');

config(e2 => 1);
reload();
$page = scrape();
is(family($page, 'token_scope_verifications_total'), '{alg="ES256",kid="",result="bad_signature"}=0 {alg="ES256",kid="",result="ok"}=0 {alg="ES256",kid="e1",result="bad_signature"}=0 {alg="ES256",kid="e1",result="ok"}=0 {alg="ES256",kid="e2",result="bad_signature"}=0 {alg="ES256",kid="e2",result="ok"}=0', 'a reload that adds a key starts the labelled counters anew, the new key at 0');
is(family($page, 'token_scope_server_decisions_total{decision="allow",server="api.example.com"}'), '=0', 'the decisions by server too');
is(v($page, 'token_scope_decisions_total{decision="allow",reason="ok"}'), $decided, 'the decisions by reason live on');
is(v($page, 'token_scope_keys'), 3, 'token_scope_keys counts the new key');

my $rotated = $t->mint('e2', '--categories', 'marketplace');
is(answer('/marketplace', $rotated), '200', 'a token of the new key passes');
$page = settled('token_scope_verifications_total{alg="ES256",kid="e2",result="ok"}', 1);
is(v($page, 'token_scope_verifications_total{alg="ES256",kid="e2",result="ok"}'), 1, 'and is counted under the new key, once');
is(v($page, 'token_scope_verifications_total{alg="ES256",kid="e1",result="ok"}'), 0, 'not under the old one');

$t->done_testing();

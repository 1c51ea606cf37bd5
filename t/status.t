#!/usr/bin/perl

# token_scope_status: the Prometheus page is scraped after a known mix of
# requests (allowed, missing, malformed, category, expired, report mode;
# several categories and token types) answered by two worker processes, and
# every counter must equal what was sent.  Then a reload adds the
# verified-token cache and a second key: the counters survive it, and the
# cache counters match the hits and misses the requests must have made.  A
# second reload keeps everything, cache counters included.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep);
use TokenScope::Test qw(verdict);
use TokenScope::Model qw(documented_reasons);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');

# %%CACHE%% and %%E2%% are filled in per phase
my $template = <<'EOF';
load_module %%MODULE%%;

daemon off;
master_process on;
worker_processes 2;

pid %%TESTDIR%%/nginx.pid;
error_log %%TESTDIR%%/error.log info;

events {
    worker_connections 128;
}

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    %%E2%%
    %%CACHE%%

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        # reuseport: the kernel spreads connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        add_header X-Worker $pid always;

        location /marketplace {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /content {
            token_scope content;
            proxy_pass http://backend;
        }

        location /report {
            token_scope marketplace;
            token_scope_mode report;
            proxy_pass http://backend;
        }

        location /all {
            token_scope all;
            proxy_pass http://backend;
        }

        location /off {
            proxy_pass http://backend;
        }

        # a static miss redirected to another protected location
        location /redirect {
            token_scope marketplace;
            root %%TESTDIR%%;
            error_page 404 = /marketplace;
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
}
EOF

sub config {
    my (%opt) = @_;

    my $conf = $template;
    my $cache = $opt{cache} ? 'token_scope_cache zone=tokens:1m;' : '';
    my $e2 = $opt{e2} ? 'token_scope_key_file %%KEYS%%/e2.pem kid=e2;' : '';

    $conf =~ s/%%CACHE%%/$cache/;
    $conf =~ s/%%E2%%/$e2/;

    $t->write_config($conf);
}

my %workers;

sub get {
    my ($path, $token) = @_;
    my $res = $t->get($path, defined $token
                             ? (Authorization => "Bearer $token") : ());
    $workers{ $res->{headers}{'x-worker'} // '' }++;
    return $res;
}

sub send_n {
    my ($n, $path, $token) = @_;
    my %got;
    $got{ verdict(get($path, $token)) }++ for 1 .. $n;
    return join ',', map { "$_ x$got{$_}" } sort keys %got;
}

# the page as { 'name{labels}' => value }, and the lines that are not
# Prometheus text

sub scrape {
    my $res = $t->get('/status');
    my (%m, @bad);

    for my $line (split /\n/, $res->{body}) {
        next if $line =~ /^# (HELP|TYPE) [a-z_]+ /;

        if ($line =~ /^([a-z_]+(?:\{[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*\})?) (-?\d+(?:\.\d+)?)$/) {
            $m{$1} = $2;
        } else {
            push @bad, $line;
        }
    }

    return (\%m, \@bad, $res);
}

# the counters of one family, as "labels=value" sorted; nonzero: only
# those that counted something (every label pair is printed, 0 or not)

sub family {
    my ($m, $name, $prefix, $nonzero) = @_;
    my $match = $prefix ? qr/^\Q$name\E/ : qr/^\Q$name\E(\{|$)/;
    return join ' ', map { my $v = $m->{$_}; s/^\Q$name\E//; "$_=$v" }
                     sort grep { $_ =~ $match && (!$nonzero || $m->{$_}) }
                     keys %$m;
}

sub decisions { family($_[0], 'token_scope_decisions_total', 0, 1) }
sub categories { family($_[0], 'token_scope_category_requests_total', 0, 1) }
sub types { family($_[0], 'token_scope_type_requests_total') }
sub cache { family($_[0], 'token_scope_cache_', 1) }

sub reload {
    my @old = grep { /^\d+$/ } keys %workers;
    my $pid = $t->read_file('nginx.pid');
    chomp $pid;

    kill 'HUP', $pid;

    # done when the old workers have exited: new ones answer from then on
    for (1 .. 200) {
        last unless grep { kill 0, $_ } @old;
        sleep 0.05;
    }

    %workers = ();
}


config();
$t->run();

my $market = $t->mint('e1', '--categories', 'marketplace');
my $personal = $t->mint('e1', '--categories', 'marketplace', '--type', 'personal');
my $content = $t->mint('e1', '--categories', 'content');
my $expired = $t->mint('e1', '--categories', 'marketplace', '--exp-in', '-600');


# before any request

my ($m, $bad, $res) = scrape();

is($res->{status}, 200, 'the status page answers 200');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'the status page is Prometheus text format 0.0.4');
is(scalar @$bad, 0, 'every line of the status page is a comment or a sample') or diag(join "\n", @$bad);
is(decisions($m), '', 'no decision is counted before any request');
my @decision_keys = grep { /^token_scope_decisions_total\{/ } keys %$m;
my %page_reasons = map { /reason="(\w+)"/ ? ($1 => 1) : () } @decision_keys;
is(join(' ', sort keys %page_reasons), join(' ', documented_reasons()), 'the reasons on the page are those docs/errors.md documents');
is(scalar @decision_keys, 3 * documented_reasons(), 'every decision and reason pair is printed, at 0');
is(categories($m), '', 'no category is counted before any request');
is(scalar(grep { /^token_scope_category_requests_total\{/ } keys %$m), 14, 'every configured category is printed, at 0');
is(types($m), '{type="base"}=0 {type="legacy"}=0 {type="personal"}=0 {type="public"}=0 {type="secret"}=0 {type="service"}=0 {type="test"}=0', 'every token type is listed at 0 before any request');
is(cache($m), 'entries=0 evictions_total=0 hits_total=0 misses_total=0', 'the cache counters are 0 without a cache');
is($m->{token_scope_revocation_connected}, 0, 'revocation is not connected without Redis');
is($m->{token_scope_revocation_sync_age_seconds}, 0, 'the revocation sync age is 0 without Redis');
is($m->{token_scope_revocation_stale}, 0, 'the revocation state is not stale without Redis');
is($m->{token_scope_revocation_entries}, 0, 'the revocation set is empty without Redis');
is(family($m, 'token_scope_key_info'), '{kid="e1"}=1', 'the loaded key is listed by kid');
is($t->request('POST', '/status')->{status}, 405, 'the status page refuses POST');


# a known mix of requests, without a cache

is(send_n(5, '/marketplace', $market), '200 x5', 'five allowed base tokens');
is(send_n(2, '/marketplace', $personal), '200 x2', 'two allowed personal tokens');
is(send_n(3, '/content', $content), '200 x3', 'three allowed tokens in a content location');
is(send_n(1, '/all', $market), '200 x1', 'one allowed token where any category does');
is(send_n(3, '/marketplace'), '401 missing x3', 'three requests without a token');
is(send_n(1, '/marketplace', 'abc'), '401 malformed x1', 'one malformed token');
is(send_n(4, '/marketplace', $content), '401 category x4', 'four tokens without the category');
is(send_n(2, '/marketplace', $expired), '401 expired x2', 'two expired tokens');
is(send_n(1, '/report', $content), '200 x1', 'one token without the category in report mode');
is(send_n(2, '/off', $content), '200 x2', 'two requests where token_scope is off');

is(scalar(grep { /^\d+$/ } keys %workers), 2, 'both workers answered requests');

($m) = scrape();

is(decisions($m), '{decision="allow",reason="ok"}=11 {decision="deny",reason="category"}=4 {decision="deny",reason="expired"}=2 {decision="deny",reason="malformed"}=1 {decision="deny",reason="missing"}=3 {decision="report",reason="category"}=1', 'the decisions by reason are exactly the requests sent, from both workers');
is(categories($m), '{category="content"}=3 {category="marketplace"}=18', 'the category counters count every decided request by its required category, "all" in none');
is(types($m), '{type="base"}=16 {type="legacy"}=0 {type="personal"}=2 {type="public"}=0 {type="secret"}=0 {type="service"}=0 {type="test"}=0', 'the type counters count every request with a verified token, expired ones included');
is(cache($m), 'entries=0 evictions_total=0 hits_total=0 misses_total=0', 'without a cache nothing is counted as a hit or a miss');

my ($again) = scrape();
is(decisions($again), decisions($m), 'scraping the status page changes no counter');


# reload: a cache and a second key

config(cache => 1, e2 => 1);
reload();

my ($after) = scrape();

is(decisions($after), decisions($m), 'the decision counters survive a reload');
is(categories($after), categories($m), 'the category counters survive a reload');
is(types($after), types($m), 'the type counters survive a reload');
is(family($after, 'token_scope_key_info'), '{kid="e1"}=1 {kid="e2"}=1', 'after the reload both keys are listed');
is(cache($after), 'entries=0 evictions_total=0 hits_total=0 misses_total=0', 'the new cache starts empty');

my $market2 = $t->mint('e1', '--categories', 'marketplace');
my $content2 = $t->mint('e1', '--categories', 'content');
my $expired2 = $t->mint('e1', '--categories', 'marketplace', '--exp-in', '-600');
my $rotated = $t->mint('e2', '--categories', 'marketplace');

is(send_n(5, '/marketplace', $market2), '200 x5', 'five requests with one allowed token: a miss, then four hits');
is(send_n(3, '/marketplace', $content2), '401 category x3', 'three requests with one token without the category: a miss, then two hits');
is(send_n(2, '/marketplace', $expired2), '401 expired x2', 'two requests with one expired token: two misses, it is never cached');
is(send_n(2, '/marketplace'), '401 missing x2', 'two requests without a token: no cache lookup');
is(send_n(2, '/marketplace', $rotated), '200 x2', 'two requests with a token of the new key: a miss, then a hit');

is(scalar(grep { /^\d+$/ } keys %workers), 2, 'both new workers answered requests');

($m) = scrape();

is(decisions($m), '{decision="allow",reason="ok"}=18 {decision="deny",reason="category"}=7 {decision="deny",reason="expired"}=4 {decision="deny",reason="malformed"}=1 {decision="deny",reason="missing"}=5 {decision="report",reason="category"}=1', 'the decisions add up across the reload');
is(categories($m), '{category="content"}=3 {category="marketplace"}=32', 'the category counters add up across the reload');
is(types($m), '{type="base"}=28 {type="legacy"}=0 {type="personal"}=2 {type="public"}=0 {type="secret"}=0 {type="service"}=0 {type="test"}=0', 'the type counters add up across the reload');
is(cache($m), 'entries=3 evictions_total=0 hits_total=7 misses_total=5', 'the cache counters match the hits and misses of the requests, from both workers');


# reload with the same configuration: the cache and its counters stay

reload();

($after) = scrape();

is(decisions($after), decisions($m), 'the decision counters survive a second reload');
is(cache($after), cache($m), 'the cache counters survive a reload');

is(send_n(1, '/marketplace', $market2), '200 x1', 'a token cached before the reload passes');

($after) = scrape();
is($after->{token_scope_cache_hits_total}, $m->{token_scope_cache_hits_total} + 1, 'a token cached before the reload is a hit after it');


# one request, one decision, even through an internal redirect

($m) = scrape();
is(send_n(1, '/redirect', $market2), '200 x1', 'a request redirected by error_page to another protected location passes');
($after) = scrape();

is($after->{'token_scope_decisions_total{decision="allow",reason="ok"}'} - $m->{'token_scope_decisions_total{decision="allow",reason="ok"}'}, 1, 'a redirected request is counted once');

$t->done_testing();

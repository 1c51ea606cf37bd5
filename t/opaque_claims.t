#!/usr/bin/perl

# $token_scope_claim_NAME of an opaque token: the field NAME of its Redis
# hash, as a string, asked of Redis and then from the cache; header
# variables and token_scope_issuer / token_scope_audience do not apply to
# opaque tokens (a hash field "iss" is no issuer).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

my $conf = globals(workers => 1) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_scope read_catalog;

    token_scope_redis 127.0.0.1:%%REDIS%% timeout=300ms max_stale=10s;
    token_scope_cache zone=ts_cache:1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        token_scope_opaque on ttl=60s;
        token_scope read_catalog;

        add_header X-Store $token_scope_claim_store always;
        add_header X-Note $token_scope_claim_note always;
        add_header X-Scopes $token_scope_claim_scopes always;
        add_header X-Typ $token_scope_header_typ always;

        location /catalog {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /iss {
            token_scope_issuer https://id.example;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location = /status {
            token_scope off;
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

$conf =~ s/%%REDIS%%/$redis->port/ge;
$t->write_config($conf);

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects to Redis')
    or diag($t->read_file('error.log'));

sub opaque {
    my (@fields) = @_;
    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    my $token = 'secret_' . join '', map { $c[rand @c] } 1 .. 32;

    $t->remember_secret($token);
    $redis->cli('HSET', 'token_scope:opaque:' . sha256_hex($token),
                'type', 'secret', 'scopes', 'read_catalog', @fields);

    return $token;
}

sub hits {
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_hits_total (\d+)$/m;
    return $v // -1;
}

my $o = opaque('store', '1234', 'note', 'a "quoted" note',
               'iss', 'https://id.example');

my $r = $t->get('/catalog', Authorization => "Bearer $o");
is(verdict($r), '200', 'an opaque token passes');
is($r->{headers}{'x-store'}, '1234', 'a field of its hash is a claim variable');
is($r->{headers}{'x-note'}, 'a "quoted" note', 'a field with quotes is shown as is');
is($r->{headers}{'x-scopes'}, 'read_catalog', 'so are the fields the module reads');
ok(!defined $r->{headers}{'x-typ'}, 'an opaque token has no header fields');

my $hits = hits();
$r = $t->get('/catalog', Authorization => "Bearer $o");
cmp_ok(hits(), '>', $hits, 'the second request was a cache hit');
is($r->{headers}{'x-store'}, '1234', 'the cached token has the field');
is($r->{headers}{'x-note'}, 'a "quoted" note', 'and the other one');

is(verdict($t->get('/iss', Authorization => "Bearer $o")), '401 issuer', 'an opaque token is refused where an issuer is required, whatever its fields');

my $plain = opaque();
$r = $t->get('/catalog', Authorization => "Bearer $plain");
is(verdict($r), '200', 'an opaque token without the fields passes');
ok(!defined $r->{headers}{'x-store'}, 'its claim variable is empty');

$t->done_testing();

#!/usr/bin/perl

# Token types (SPEC section 4): the type from "acc" cross-checked with "for"
# and "t"; every type on every kind of location (production, sandbox,
# personal-only, service secrets, personal networks, legacy off); personal
# tokens refused to cloud services (X-Client-Secret, networks after realip);
# service tokens bound to their service's secrets (a file, rotation, and the
# Redis form); personal-only categories; the variables; "nginx -t" errors.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for);


# "nginx -t" refuses mistakes in the new directives, naming the value

my $c = TokenScope::Test->new();
$c->keygen('ES256', 'e1');

sub check {
    my ($directives, $file) = @_;

    $c->write_file('secrets.txt', $file) if defined $file;

    $c->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            token_scope marketplace;
            $directives
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF

    my ($rc, $out) = $c->test_config();
    return $rc == 0 ? "ok $out" : "failed $out";
}

my $d = sha256_hex('x');
my $file = '%%TESTDIR%%/secrets.txt';

like(check('token_scope_personal_from 10.0.0.0/33;'), qr/^failed .*invalid network "10\.0\.0\.0\/33"/s, 'a prefix too long fails nginx -t');
like(check('token_scope_personal_from 10.0.0.0/8 intranet;'), qr/^failed .*invalid network "intranet"/s, 'a name instead of a network fails nginx -t');
like(check('token_scope_personal_from 10.0.0.1/8;'), qr/^ok .*\[warn\].*low address bits of 10\.0\.0\.1\/8 are meaningless/s, 'a network with host bits passes with a warning');
like(check('token_scope_personal_from 10.0.0.0/8; token_scope_personal_from 192.168.0.0/16;'), qr/^failed .*"token_scope_personal_from" directive is duplicate/s, 'a second token_scope_personal_from fails nginx -t');
like(check('token_scope_types base robot;'), qr/^failed .*invalid token type "robot"/s, 'an unknown token type fails nginx -t');
like(check('token_scope_types;'), qr/^failed .*invalid number of arguments/s, 'token_scope_types without a type fails nginx -t');
like(check('token_scope_types base test personal service legacy;'), qr/^ok /, 'all five types are known');
like(check('token_scope_legacy maybe;'), qr/^failed .*"maybe".*token_scope_legacy/s, 'token_scope_legacy takes on or off');
like(check('token_scope_personal_only users2;'), qr/^failed .*unknown token scope category or scope "users2"/s, 'an unknown personal-only category fails nginx -t');
like(check('token_scope_personal_only common;'), qr/^failed .*"token_scope_personal_only" takes categories with a bit/s, 'common cannot be personal-only');
like(check('token_scope_personal_only usermanagement;'), qr/^ok /, 'token_scope_personal_only usermanagement passes nginx -t');
like(check('token_scope_personal_only users finance;'), qr/^ok /, 'an alias and several categories are accepted as personal-only');
like(check('token_scope_service_secrets redis;'), qr/^failed .*"token_scope_service_secrets redis" needs "token_scope_redis"/s, 'the Redis form needs token_scope_redis');
like(check('token_scope_service_secrets %%TESTDIR%%/nosuch.txt;'), qr/^failed .*nosuch\.txt/s, 'a missing secrets file fails nginx -t naming it');
like(check("token_scope_service_secrets $file;", "42 $d\n# comment\n\n77 " . uc($d) . "\n"), qr/^ok /, 'a good secrets file passes');
like(check("token_scope_service_secrets $file;", "42 $d\n\n42 $d\n"), qr/^failed .*secrets\.txt.*service "42" is listed twice/s, 'a service listed twice fails nginx -t');
like(check("token_scope_service_secrets $file;", "# c\n42 $d\n77 nothex\n"), qr/^failed .*secrets\.txt.*line 3: "nothex" is not a SHA-256 hex digest/s, 'a bad digest fails nginx -t naming the line');
like(check("token_scope_service_secrets $file;", "42 " . substr($d, 1) . "\n"), qr/^failed .*line 1: .* is not a SHA-256 hex digest/s, 'a digest one digit short fails nginx -t');
like(check("token_scope_service_secrets $file;", "42 $d\n77\n"), qr/^failed .*secrets\.txt.*line 2: service "77" has no secret/s, 'a service without a digest fails nginx -t naming the line');
like(check("token_scope_service_secrets $file;", "42" . " $d" x 5 . "\n"), qr/^failed .*line 1: more than 4 secrets for one service/s, 'five digests for one service fail nginx -t');
like(check("token_scope_service_secrets $file;", "42" . " $d" x 4 . "\n"), qr/^ok /, 'four digests for one service pass');
like(check("token_scope_service_secrets $file;", ('x' x 129) . " $d\n"), qr/^failed .*line 1: service id is longer than 128/s, 'an overlong service id fails nginx -t');


my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

# service 42 is rotating its secret (both valid); 77 is listed in upper case

my %secret = (
    old   => 'old-secret-of-42',
    new   => 'new-secret-of-42',
    s77   => 'secret-of-77',
    stray => 'secret-of-nobody',
);

$t->write_file('secrets.txt', <<"EOF");
# service id, then the SHA-256 of each valid X-Client-Secret

42 @{[ sha256_hex($secret{old}) ]} @{[ sha256_hex($secret{new}) ]}  # rotation
\t77\t@{[ uc sha256_hex($secret{s77}) ]}\r

EOF

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-TS-Type $token_scope_type always;
        add_header X-TS-Service $token_scope_service always;
        add_header X-TS-Decision $token_scope_decision always;

        location /production {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /sandbox {
            token_scope marketplace;
            token_scope_environment sandbox;
            proxy_pass http://backend;
        }

        location /users-personal {
            token_scope usermanagement;
            token_scope_types personal;
            token_scope_personal_only usermanagement;
            proxy_pass http://backend;
        }

        location /users {
            token_scope usermanagement;
            token_scope_personal_only usermanagement;
            proxy_pass http://backend;

            location /users/nested {
                proxy_pass http://backend;
            }
        }

        location /users-open {
            token_scope usermanagement;
            proxy_pass http://backend;
        }

        location /service {
            token_scope marketplace;
            token_scope_service_secrets %%TESTDIR%%/secrets.txt;
            proxy_pass http://backend;
        }

        location /service-403 {
            token_scope marketplace;
            token_scope_service_secrets %%TESTDIR%%/secrets.txt;
            token_scope_deny_status 403;
            proxy_pass http://backend;
        }

        location /onprem {
            token_scope marketplace;
            token_scope_personal_from 10.0.0.0/8 192.168.1.0/24
                                      2001:db8::/32;
            proxy_pass http://backend;
        }

        location /onprem-report {
            token_scope marketplace;
            token_scope_personal_from 10.0.0.0/8;
            token_scope_mode report;
            proxy_pass http://backend;
        }

        location /nolegacy {
            token_scope marketplace;
            token_scope_legacy off;
            proxy_pass http://backend;
        }

        location /services-only {
            token_scope marketplace;
            token_scope_types service;
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

my @cats = ('--categories', 'marketplace,usermanagement');

sub mint { $t->mint('e1', @cats, @_) }

my %tok = (
    base     => mint('--type', 'base'),
    test     => mint('--type', 'test'),
    personal => mint('--type', 'personal'),
    service  => mint('--type', 'service', '--service', '42'),
    legacy   => mint('--type', 'legacy'),
);

my $svc77 = mint('--service', '77');
my $svc99 = mint('--service', '99');
my $legacy_test = mint('--type', 'legacy', '--claim', 't=true');

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }

sub detail { get(@_)->{json}{detail} // '' }

my @old = ('X-Client-Secret' => $secret{old});
my @new = ('X-Client-Secret' => $secret{new});
my @s77 = ('X-Client-Secret' => $secret{s77});
my @inside = ('X-Real-IP' => '10.1.2.3');
my @outside = ('X-Real-IP' => '203.0.113.5');


# every type on every kind of location: [ location, headers, verdicts ]

my @types = qw(base test personal service legacy);

my @matrix = (
    [ '/production', [],
      '200', '401 environment', '200', '200', '200' ],
    [ '/sandbox', [],
      '401 environment', '200', '401 environment', '401 environment',
      '401 environment' ],
    [ '/users-personal', [],
      '401 token_type', '401 environment', '200', '401 token_type',
      '401 token_type' ],
    [ '/users', [],
      '401 category', '401 environment', '200', '401 category',
      '401 category' ],
    [ '/users-open', [],
      '200', '401 environment', '200', '200', '200' ],
    [ '/service', [@old],
      '200', '401 environment', '401 personal_cloud', '200', '200' ],
    [ '/service', [],
      '200', '401 environment', '200', '401 service_secret', '200' ],
    [ '/onprem', [@inside],
      '200', '401 environment', '200', '200', '200' ],
    [ '/onprem', [@outside],
      '200', '401 environment', '401 personal_cloud', '200', '200' ],
    [ '/nolegacy', [],
      '200', '401 environment', '200', '200', '401 token_type' ],
    [ '/services-only', [],
      '401 token_type', '401 environment', '401 token_type', '200',
      '401 token_type' ],
);

for my $row (@matrix) {
    my ($path, $headers, @expect) = @$row;
    my $with = @$headers ? " with $headers->[0] $headers->[1]" : '';

    for my $i (0 .. $#types) {
        is(answer($path, $tok{ $types[$i] }, @$headers), $expect[$i],
           "a $types[$i] token on $path$with: $expect[$i]");
    }
}

is(answer('/sandbox', $legacy_test), '200', 'a legacy test token (t, no acc) passes a sandbox');
is(answer('/production', $legacy_test), '401 environment', 'a legacy test token is refused by production');


# contradictory claims are malformed, whatever the location

my %contradiction = (
    'acc 4 without for' => [ '--type', 'service', '--service', '42', '--claim', 'for=null' ],
    'acc 4 for self' => [ '--type', 'service', '--service', '42', '--claim', 'for="self"' ],
    'acc 4 for an empty asid' => [ '--type', 'service', '--service', '42', '--claim', 'for="asid:"' ],
    'acc 4 for a bare id' => [ '--type', 'service', '--service', '42', '--claim', 'for="42"' ],
    'acc 2 without t' => [ '--type', 'test', '--claim', 't=null' ],
    'acc 2 with t false' => [ '--type', 'test', '--claim', 't=false' ],
    'acc 3 for a service' => [ '--type', 'personal', '--claim', 'for="asid:42"' ],
    'acc 3 for someone else' => [ '--type', 'personal', '--claim', 'for="someone"' ],
    'acc 5' => [ '--claim', 'acc=5' ],
    'acc 0' => [ '--claim', 'acc=0' ],
    'acc as a string' => [ '--claim', 'acc="3"' ],
    'for as a number' => [ '--type', 'personal', '--claim', 'for=42' ],
);

for my $what (sort keys %contradiction) {
    my $token = mint(@{ $contradiction{$what} });

    is(answer('/production', $token), '401 malformed', "a token with $what is malformed on production");
    is(answer('/sandbox', $token), '401 malformed', "a token with $what is malformed on a sandbox");
}

like(detail('/production', mint('--type', 'service', '--service', '42', '--claim', 'for=null')),
     qr/^token problem; token is malformed: service token without "for": "asid:\.\.\."$/,
     'the detail of acc 4 without for says what is wrong');
like(detail('/sandbox', mint('--type', 'test', '--claim', 't=null')),
     qr/^token problem; token is malformed: test token without "t"$/,
     'the detail of acc 2 without t says what is wrong');
like(detail('/production', mint('--type', 'personal', '--claim', 'for="asid:42"')),
     qr/^token problem; token is malformed: personal token not issued for "self"$/,
     'the detail of acc 3 for a service says what is wrong');
like(get('/production', mint('--claim', 'acc=5'))->{headers}{'www-authenticate'},
     qr/^Bearer error="invalid_token"/, 'a contradictory token is an authentication failure');
is(answer('/service', mint('--type', 'service', '--service', '42', '--claim', 'for=null'), @old),
   '401 malformed', 'a service token without for is malformed even with a good secret');


# personal tokens and cloud services

is(answer('/production', $tok{personal}, @old), '401 personal_cloud', 'a personal token with X-Client-Secret is refused on production');
is(answer('/production', $tok{personal}, 'x-client-secret' => 'x'), '401 personal_cloud', 'the X-Client-Secret header name is case-insensitive');
is(answer('/production', $tok{personal}, 'X-Client-Secret' => ''), '200', 'an empty X-Client-Secret does not mark a cloud service');
is(answer('/onprem', $tok{personal}, @inside, @old), '401 personal_cloud', 'a personal token with X-Client-Secret is refused even from an allowed network');
is(answer('/onprem', $tok{personal}, 'X-Real-IP' => '192.168.1.200'), '200', 'a personal token from the second allowed network passes');
is(answer('/onprem', $tok{personal}, 'X-Real-IP' => '192.168.2.1'), '401 personal_cloud', 'a personal token from next to an allowed network is refused');
is(answer('/onprem', $tok{personal}, 'X-Real-IP' => '2001:db8::1'), '200', 'a personal token from an allowed IPv6 network passes');
is(answer('/onprem', $tok{personal}, 'X-Real-IP' => '2001:db9::1'), '401 personal_cloud', 'a personal token from another IPv6 network is refused');
is(answer('/onprem', $tok{personal}), '401 personal_cloud', 'a personal token from the real address (127.0.0.1, outside) is refused');
is(answer('/onprem', $tok{base}, @outside, @old), '200', 'a base token is not bound to networks or X-Client-Secret');

my $res = get('/onprem', $tok{personal}, @outside);
is(verdict($res), '401 personal_cloud', 'a personal token from a disallowed network is personal_cloud');
is($res->{json}{detail}, 'token scope not allowed; personal token used by a cloud service', 'the personal_cloud detail says why');
is($res->{json}{title}, 'unauthorized', 'the personal_cloud title is unauthorized');
is($res->{headers}{'www-authenticate'}, 'Bearer error="insufficient_scope"', 'personal_cloud is a scope failure without a missing scope');
is($res->{headers}{'x-ts-type'}, 'personal', '$token_scope_type is personal for a refused personal token');
is($res->{headers}{'x-ts-decision'}, 'deny', 'the decision is deny');

$res = get('/onprem-report', $tok{personal}, @outside);
is($res->{status}, 200, 'report mode lets a personal token from outside through');
is($res->{headers}{'x-ts-decision'}, 'report', 'report mode reports the personal_cloud denial');
like($t->read_file('error.log'), qr/\[warn\].*personal_cloud/, 'report mode logs the would-be personal_cloud denial');


# service tokens and their secrets

is(answer('/service', $tok{service}, @old), '200', 'the old secret of a rotating service is valid');
is(answer('/service', $tok{service}, @new), '200', 'the new secret of a rotating service is valid');
is(answer('/service', $tok{service}, @s77), '401 service_secret', 'the secret of another service is refused');
is(answer('/service', $tok{service}, 'X-Client-Secret' => $secret{stray}), '401 service_secret', 'an unknown secret is refused');
is(answer('/service', $tok{service}, 'X-Client-Secret' => uc $secret{old}), '401 service_secret', 'a secret is compared exactly (not case-folded)');
is(answer('/service', $tok{service}, 'X-Client-Secret' => sha256_hex($secret{old})), '401 service_secret', 'the digest itself is not a secret');
is(answer('/service', $tok{service}, 'X-Client-Secret' => ''), '401 service_secret', 'an empty secret is no secret');
is(answer('/service', $svc77, @s77), '200', 'a digest listed in upper-case hex is valid');
is(answer('/service', $svc77, @old), '401 service_secret', 'a service token with a secret of service 42 is refused for 77');
is(answer('/service', $svc99, 'X-Client-Secret' => $secret{stray}), '401 service_secret', 'a service not in the file is refused');
is(answer('/production', $tok{service}), '200', 'without token_scope_service_secrets a service token needs no secret');
is(answer('/production', $tok{service}, @s77), '200', 'without token_scope_service_secrets the secret is not checked');

$res = get('/service', $tok{service}, @s77);
is($res->{json}{detail}, "token scope not allowed; service token used without its service's secret", 'the service_secret detail says why');
is($res->{headers}{'www-authenticate'}, 'Bearer error="insufficient_scope"', 'service_secret is a scope failure without a missing scope');
is($res->{headers}{'x-ts-service'}, '42', '$token_scope_service is set for a refused service token');
is($res->{json}{origin}, 's2s-api-auth-marketplace', 'the origin names the required category');

$res = get('/service-403', $tok{service});
is(verdict($res), '403 service_secret', 'deny_status 403 applies to service_secret');
is($res->{json}{title}, 'forbidden', 'a 403 service_secret answer has the title forbidden');
is(answer('/service-403', $tok{personal}, @old), '403 personal_cloud', 'deny_status 403 applies to personal_cloud');
is(answer('/service-403', $tok{service}, @new), '200', 'deny_status 403 lets the right secret pass');
is(answer('/service-403', undef, @new), '401 missing', 'a missing token stays 401 under deny_status 403');


# the other denials, with their details

$res = get('/users-personal', $tok{base});
is($res->{json}{detail}, 'token scope not allowed; this token type may not call this method', 'the token_type detail says why');
is($res->{headers}{'www-authenticate'}, 'Bearer error="insufficient_scope"', 'token_type is a scope failure without a missing scope');
is(detail('/nolegacy', $tok{legacy}), 'token scope not allowed; this token type may not call this method', 'legacy off answers with the token_type detail');
is(detail('/sandbox', $tok{personal}), 'token scope not allowed; this sandbox host accepts only test tokens', 'a sandbox explains that it takes test tokens only');
is(detail('/production', $tok{test}), 'token scope not allowed; a test token is for sandbox hosts only', 'production explains that a test token is for sandboxes');
like(detail('/users', $tok{base}), qr/^token scope not allowed; .*usermanagement/i, 'a personal-only category refused to a base token is named');


# personal-only categories

my $um = $t->mint('e1', '--categories', 'usermanagement');
is(answer('/users', $t->mint('e1', '--type', 'personal', '--categories', 'usermanagement')), '200', 'a personal token with usermanagement passes a personal-only location');
is(answer('/users', $um), '401 category', 'a base token with the usermanagement bit is refused where it is personal-only');
is(answer('/users-open', $um), '200', 'the same base token passes where usermanagement is not personal-only');
is(answer('/users', $t->mint('e1', '--type', 'personal', '--categories', 'marketplace')), '401 category', 'a personal token still needs the bit itself');
is(answer('/users/nested', $um), '401 category', 'a nested location inherits the personal-only categories');
is(answer('/users/nested', $t->mint('e1', '--type', 'personal', '--categories', 'usermanagement')), '200', 'a nested location admits a personal token with the category');


# the variables

for my $type (@types) {
    my $path = $type eq 'test' ? '/sandbox' : '/production';
    my $h = get($path, $tok{$type})->{headers};
    is($h->{'x-ts-type'}, $type, "\$token_scope_type is $type for a $type token");
}

is(get('/service', $tok{service}, @new)->{headers}{'x-ts-service'}, '42', '$token_scope_service is the asid of a service token');
is(get('/production', $svc77)->{headers}{'x-ts-service'}, '77', '$token_scope_service follows the token');
ok(!defined get('/production', $tok{personal})->{headers}{'x-ts-service'}, '$token_scope_service is empty for a personal token');
ok(!defined get('/production', $tok{base})->{headers}{'x-ts-service'}, '$token_scope_service is empty for a base token');

my $log = $t->read_file('access.log');
like($log, qr{"GET /onprem HTTP/1.0" 401 decision=deny reason=personal_cloud}, 'the access log records personal_cloud');
like($log, qr{"GET /service HTTP/1.0" 401 decision=deny reason=service_secret}, 'the access log records service_secret');
like($log, qr{^10\.1\.2\.3 "GET /onprem HTTP/1.0" 200}m, 'the access log shows the real address set by realip');


# the Redis form: token_scope_service_secrets redis; and scripts/service-secret

SKIP: {
    skip 'no redis-server or redis-cli', 9
        unless -x ($ENV{TEST_REDIS_SERVER} || '/usr/bin/redis-server')
               && -x ($ENV{TEST_REDIS_CLI} || '/usr/bin/redis-cli');

    $t->stop();

    my $redis = TokenScope::Redis->new($t);
    $redis->start();

    my $script = "$TokenScope::Test::ROOT/scripts/service-secret";

    my $secrets = sub {
        my ($rc, $out, $err) = $t->run_cmd([ $script, '--redis', $redis->address, @_ ]);
        return $rc == 0 ? $out : "exit $rc: $err";
    };

    like($secrets->('set', '42', $secret{old}), qr/42 has 1 valid/, 'scripts/service-secret sets a secret before nginx starts');

    my $conf = <<'EOF';
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_redis 127.0.0.1:%%REDIS%% timeout=200ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /service {
            token_scope marketplace;
            token_scope_service_secrets redis;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
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
    $t->run();

    ok(wait_for(sub { $t->read_file('error.log') =~ /service secrets synced/ }, 5), 'the node syncs the service secrets from Redis')
        or diag($t->read_file('error.log'));

    is(answer('/service', $tok{service}, @old), '200', 'Redis: the secret of the service passes');
    is(answer('/service', $tok{service}, @new), '401 service_secret', 'Redis: a secret not yet set is refused');

    $secrets->('set', '42', $secret{old}, $secret{new});
    ok(wait_for(sub { answer('/service', $tok{service}, @new) eq '200' }, 3), 'Redis: the new secret is valid soon after a rotation');
    is(answer('/service', $tok{service}, @old), '200', 'Redis: the old secret stays valid during the rotation');

    $secrets->('set', '77', $secret{s77});
    ok(wait_for(sub { answer('/service', $svc77, @s77) eq '200' }, 3), 'Redis: a second service is added');
    is(answer('/service', $tok{service}, @s77), '401 service_secret', 'Redis: the secret of another service is refused');

    $secrets->('remove', '42');
    ok(wait_for(sub { answer('/service', $tok{service}, @old) eq '401 service_secret' }, 3), 'Redis: a removed service has no valid secret');
}


$t->done_testing();

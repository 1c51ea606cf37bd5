#!/usr/bin/perl

# The catalogues scripts/openapi-rules makes of the three versions of WB's
# OpenAPI files, loaded into a real nginx: for a sample of operations per
# version (both cards methods, the first and last operation of every host,
# every operation with several categories, with token types, refused),
# a token of each single category is let through exactly when the YAML
# (read independently, t/openapi/SpecReading.pm) lists that category or
# "all", in x-category or in WB's description_auth text; a read-only token
# passes exactly the reads; a refused operation refuses every token with
# code operation.  The cards methods take a Content or a Promotion token in
# every version, as WB's text says (issue 15).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use lib "$FindBin::Bin/openapi";

use POSIX ();
use Test::More;
use TokenScope::Test qw(verdict);
use SpecReading qw(read_spec);

my $ROOT = $TokenScope::Test::ROOT;
my $TOKEN = $ENV{TEST_TOKEN_SCRIPT} || "$ROOT/scripts/token";

plan skip_all => 'python3-yaml is not installed'
    unless system("python3 -c 'import yaml' 2>/dev/null") == 0;

# catalogue name, folder, port
my $SHARED = "$ROOT/../shared";
my @VERSIONS = (
    [ 'wb_2025_12_26', "$SHARED/wb-openapi-versions/2025-12-26", 8080 ],
    [ 'wb_2026_03_11', "$SHARED/wb-openapi", 8081 ],
    [ 'wb_2026_05', "$SHARED/wb-openapi-versions/2026-05-approx", 8082 ],
);

plan skip_all => 'the WB OpenAPI folders are not beside the repository'
    if grep { !-d $_->[1] } @VERSIONS;

# every category the module knows by default (aliases aside)
my @CATEGORIES = qw(content contentanalytics discountsandprices marketplace
                    statistics advert questionsandfeedback recommendations
                    buyerchat supplies returns documents finance
                    usermanagement);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

my $dir = $t->testdir;
my (%ops, $includes, $servers);

for my $v (@VERSIONS) {
    my ($name, $folder, $port) = @$v;
    my @files = sort glob("$folder/*.yaml");

    my ($rc, $out, $err) = $t->run_cmd([ "$ROOT/scripts/openapi-rules",
                                         '--name', $name, '-o',
                                         "$dir/$name.conf", @files ]);
    is($rc, 0, "$name: the catalogue is generated") or diag($err);

    $ops{$name} = read_spec(@files);

    $includes .= "    include $dir/$name.conf;\n";
    $servers .= <<"EOF";
    server {
        listen 127.0.0.1:%%PORT_$port%%;
        server_name _;

        token_scope all;
        token_scope_operations_use $name unmatched=deny;

        location / {
            proxy_pass http://backend;
        }
    }

EOF
}

$t->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

$includes
    upstream backend {
        server 127.0.0.1:%%PORT_8090%%;
    }

$servers
    server {
        listen 127.0.0.1:%%PORT_8090%%;
        server_name backend;

        location / {
            return 200 "backend ok\\n";
        }
    }
}
EOF

# until the module reads "a|b" and "deny" (issue 15), 2025-12-26's
# catalogue stops nginx here
my ($rc, $out) = $t->test_config();

is($rc, 0, 'nginx -t accepts the three generated catalogues together') or do {
    diag($out);
    done_testing();
    exit;
};

$t->run();


# the sample: the same operations whatever the tokens

sub sample {
    my ($ops) = @_;

    my (%pick, %host, %refused);

    my @sorted = sort { $a->{host} cmp $b->{host} || $a->{path} cmp $b->{path}
                        || $a->{method} cmp $b->{method} } @$ops;

    for my $op (@sorted) {
        push @{ $host{ $op->{host} } }, $op;
    }

    for my $list (values %host) {
        $pick{ $list->[0]{key} } = $list->[0];
        $pick{ $list->[-1]{key} } = $list->[-1];
    }

    for my $op (@sorted) {
        $pick{ $op->{key} } = $op
            if $op->{path} =~ m{^/content/v2/get/cards/(list|trash)$}
               || @{ $op->{cats} } > 1
               || @{ $op->{types} }
               || ($op->{deny} && $refused{ "$op->{file} $op->{deny}" }++ < 2);
    }

    return [ sort { $a->{key} cmp $b->{key} } values %pick ];
}

my %sample = map { $_ => sample($ops{$_}) } keys %ops;


# tokens: each single category and none, in every type the sample needs;
# the read-only ones the sample needs; minted in parallel once

my %specs;

sub token_key {
    my (%o) = @_;
    return join '|', $o{type}, $o{cat} // '-', $o{ro} ? 'ro' : 'rw';
}

sub need {
    my (%o) = @_;

    my @args = defined $o{cat} ? ('--categories', $o{cat}) : ('--s', '0');
    push @args, '--readonly' if $o{ro};
    push @args, '--type', $o{type};
    push @args, '--service', 'demo-service' if $o{type} eq 'service';

    $specs{ token_key(%o) } = \@args;
}

sub op_type {
    my ($op) = @_;
    return @{ $op->{types} } ? $op->{types}[0] : 'base';
}

sub first_cat {
    my ($op) = @_;
    return $op->{cats}[0] eq 'common' ? undef : $op->{cats}[0];
}

for my $op (map { @$_ } values %sample) {
    need(type => op_type($op), cat => $_) for undef, @CATEGORIES;

    next if $op->{deny};

    need(type => op_type($op), cat => first_cat($op), ro => 1);
    need(type => 'base', cat => first_cat($op));
}

need(type => 'base', cat => 'content', ro => 1);

my %tok = mint_all(\%specs);

sub tok { my %o = @_; return $tok{ token_key(%o) } // die "no token @_\n" }


sub concrete {
    my ($path) = @_;
    (my $p = $path) =~ s/\{[^}\/]*\}/12345/g;
    return $p;
}

sub answer {
    my ($port, $op, $token, $host) = @_;

    my $res = $t->request($op->{method}, concrete($op->{path}),
                          port => $port, Host => $host // $op->{host},
                          Authorization => "Bearer $token");
    my $got = verdict($res);

    $got .= ' not-from-backend'
        if $got eq '200' && $res->{body} ne "backend ok\n";

    return $got;
}

# what WB's files (x-category and the description_auth text) say a token
# of one category gets
sub expected {
    my ($op, $cat) = @_;

    return '401 operation' if $op->{deny};
    return '200' if $op->{cats}[0] eq 'common';
    return '200' if defined $cat && grep { $_ eq $cat } @{ $op->{cats} };
    return '401 category';
}

for my $v (@VERSIONS) {
    my ($name, $folder, $port) = @$v;
    my (%wrong, %count);

    my $check = sub {
        my ($what, $op, $token, $want, $label) = @_;

        my $got = answer($port, $op, $token);
        $count{$what}++;

        push @{ $wrong{$what} }, "$op->{method} $op->{host}$op->{path} "
            . "with $label: $got, expected $want" if $got ne $want;
    };

    for my $op (@{ $sample{$name} }) {
        my $type = op_type($op);

        for my $cat (undef, @CATEGORIES) {
            $check->(category => $op, tok(type => $type, cat => $cat),
                     expected($op, $cat),
                     "a $type token of " . ($cat // 'no category'));
        }

        next if $op->{deny};

        my $cat = first_cat($op);

        $check->(access => $op, tok(type => $type, cat => $cat, ro => 1),
                 $op->{write} ? '401 read_only' : '200',
                 "a read-only $type token of " . ($cat // 'no category'));

        $check->(types => $op, tok(type => 'base', cat => $cat),
                 '401 token_type', 'a base token')
            if $type ne 'base';
    }

    my $n = @{ $sample{$name} };
    my $refused = grep { $_->{deny} } @{ $sample{$name} };

    ok($n >= 30, "$name: the sample has $n operations");
    is($count{category}, $n * 15, "$name: every sampled operation got a token of each single category and one of none");

    my $wrong = sub { scalar @{ $wrong{ $_[0] } // [] } };
    my $why = sub { join "\n", grep { defined } @{ $wrong{ $_[0] } }[0 .. 9] };

    is($wrong->('category'), 0, "$name: a token of a category the YAML lists (any one of several, in x-category or WB's description_auth text, or any for all) passes, every other token is refused with code category") or diag($why->('category'));
    is($wrong->('access'), 0, "$name: a read-only token passes the reads and is refused the writes (read_only), as x-readonly-method says") or diag($why->('access'));
    is($wrong->('types'), 0, "$name: a base token is refused (token_type) where x-token-types names other types") or diag($why->('types'));

    # the two cards methods by name: x-category [advert, content] in
    # 2025-12-26, content later, and WB's text Content or Promotion in all

    for my $path (map { "/content/v2/get/cards/$_" } qw(list trash)) {
        my ($op) = grep { $_->{method} eq 'POST' && $_->{path} eq $path }
                   @{ $sample{$name} };

        ok($op, "$name: POST $path is in the sample") or next;

        is(answer($port, $op, tok(type => 'base', cat => 'content')), '200', "$name: POST $path passes a Content token");
        is(answer($port, $op, tok(type => 'base', cat => 'advert')), '200', "$name: POST $path passes a Promotion token, as WB's text says");
        is(answer($port, $op, tok(type => 'base', cat => 'marketplace')), '401 category', "$name: POST $path refuses a Marketplace token");
        is(answer($port, $op, tok(type => 'base', cat => 'content', ro => 1)), '200', "$name: POST $path is a read: a read-only Content token passes");
        is(answer($port, $op, tok(type => 'base', cat => 'content'), 'content-api-sandbox.wildberries.ru'), '200', "$name: POST $path on the -sandbox twin host takes the same rule");
    }

    if ($refused) {
        ok($refused >= 2, "$name: the sample has $refused refused operations");
    }
}

my ($wbd) = grep { $_->{file} eq '14-wbd.yaml' } @{ $sample{wb_2025_12_26} };
is($wbd && answer(8080, $wbd, tok(type => 'base', cat => 'content')), '401 operation', 'wb_2025_12_26: an operation of 14-wbd.yaml (another API) is refused with code operation');

my ($users) = grep { $_->{path} eq '/api/v1/users' && $_->{method} eq 'GET' }
              @{ $ops{wb_2025_12_26} };
is(answer(8080, $users, tok(type => 'base', cat => 'usermanagement')), '401 operation', 'wb_2025_12_26: GET /api/v1/users without x-category is refused with code operation');
is(answer(8081, $users, tok(type => 'personal', cat => 'usermanagement')), '200', 'wb_2026_03_11: GET /api/v1/users passes a personal usermanagement token');

$t->done_testing();


sub mint_all {
    my ($specs) = @_;

    my $key = $t->keydir . '/e1.key';
    my @keys = sort keys %$specs;
    my (%running, %out);
    my $parallel = 6;
    my $n = 0;

    my $reap = sub {
        my $pid = wait();
        return if $pid <= 0;
        my $k = delete $running{$pid} // return;
        die "scripts/token mint @{ $specs->{$k} } failed (exit $?)\n" if $?;
    };

    for my $k (@keys) {
        $reap->() while keys %running >= $parallel;

        my $file = $t->testdir . '/mint-' . $n++;
        $out{$k} = $file;

        my $pid = fork();
        die "fork: $!\n" unless defined $pid;

        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $file or POSIX::_exit(126);
            exec $TOKEN, 'mint', '--key', $key, @{ $specs->{$k} }
                or POSIX::_exit(127);
        }

        $running{$pid} = $k;
    }

    $reap->() while keys %running;

    my %tokens;

    for my $k (@keys) {
        my $token = $t->read_file($out{$k});
        $token =~ s/\s+\z//;
        die "scripts/token mint @{ $specs->{$k} } printed nothing\n"
            unless length $token;
        $tokens{$k} = $t->remember($token);
        unlink $out{$k};
    }

    return %tokens;
}

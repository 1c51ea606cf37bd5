#!/usr/bin/perl

# token_scope_operations: every operation of the shipped WB catalogue
# (conf.d/wb-operations.conf) walked through a real nginx: exactly its
# categories pass, a token without them is refused, a read-only token passes
# exactly the reads, type restrictions hold, $token_scope_operation names the
# template.  Then the -sandbox twin hosts, literal segments winning over
# templates, the three unmatched= modes, and the nginx -t errors of the block.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use TokenScope::Test qw(verdict);

my $ROOT = $TokenScope::Test::ROOT;
my $CATALOGUE = "$ROOT/conf.d/wb-operations.conf";
my $TOKEN = $ENV{TEST_TOKEN_SCRIPT} || "$ROOT/scripts/token";

# every category the module knows by default (aliases aside)
my @CATEGORIES = qw(content contentanalytics discountsandprices marketplace
                    statistics advert questionsandfeedback recommendations
                    buyerchat supplies returns documents finance
                    usermanagement);


# the catalogue, as the module reads it: METHOD HOST PATH CATEGORIES ACCESS
# [types=...]; every rule line must parse.  CATEGORIES: items separated by
# commas, each needed; an item "a|b" needs any one of its alternatives;
# "deny": no token may call the operation

sub parse_catalogue {
    my ($file) = @_;

    open my $fh, '<', $file or die "cannot read $file: $!\n";

    my (@ops, @bad, $declared);

    while (my $line = <$fh>) {
        $declared = $1 if $line =~ /^#\s*(\d+) rules:/;

        next if $line =~ /^\s*(#|$)/
                || $line =~ /^\s*token_scope_operations\s+\w+\s*\{\s*$/
                || $line =~ /^\s*\}\s*$/;

        if ($line =~ /^\s*([A-Z]+)\s+(\S+)\s+("[^"]*"|\S+)\s+(\S+)
                      \s+(read|write)(?:\s+types=([\w,]+))?\s*;\s*$/x)
        {
            my ($method, $host, $path, $cats, $access, $types) =
                ($1, $2, $3, $4, $5, $6);
            $path =~ s/^"(.*)"$/$1/;

            my @items = $cats eq 'deny' ? ()
                        : map { [ split /\|/ ] } split /,/, $cats;

            push @ops, {
                method => $method,
                host   => $host,
                path   => $path,
                deny   => $cats eq 'deny',
                items  => \@items,
                cats   => [ map { $_->[0] } @items ],
                write  => $access eq 'write',
                types  => [ split /,/, $types // '' ],
                name   => "$method $host$path",
            };

        } else {
            push @bad, $line;
        }
    }

    return (\@ops, \@bad, $declared);
}

my ($ops, $unparsed, $declared) = parse_catalogue($CATALOGUE);

is(scalar @$unparsed, 0, 'every rule line of the shipped catalogue parses')
    or diag(join '', @$unparsed);
is(scalar @$ops, 286, 'the shipped catalogue has the 286 WB operations');
is(scalar @$ops, $declared, 'the catalogue has as many rules as its header says');


my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    include $CATALOGUE;

    # literal segments against templates, several categories
    token_scope_operations mini {
        GET  api.test  "/orders/{id}"        marketplace          read;
        GET  api.test  /orders/new           content              read;
        GET  api.test  "/orders/{id}/items"  marketplace          read;
        GET  api.test  /p/lit/end            content              read;
        GET  api.test  "/p/{x}/other"        marketplace          read;
        GET  api.test  /both                 content,marketplace  read;
        GET  api.test  /either               content|marketplace  read;
        GET  api.test  /refused              deny                 read;
        GET  api.test  "/{any}"              statistics           read;
    }

    log_format ops '\$request_method \$host \$uri op="\$token_scope_operation" '
                   'required=\$token_scope_required reason=\$token_scope_reason';

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    # production: unmatched requests are refused
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name _;

        access_log %%TESTDIR%%/ops.log ops;

        token_scope all;
        token_scope_operations_use wb unmatched=deny;

        add_header X-Op \$token_scope_operation always;
        add_header X-Required \$token_scope_required always;

        location / {
            proxy_pass http://backend;
        }

        location /health {
            token_scope_operations_use off;
            proxy_pass http://backend;
        }
    }

    # sandbox: test tokens only, the same catalogue
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name _;

        token_scope all;
        token_scope_environment sandbox;
        token_scope_operations_use wb unmatched=deny;

        add_header X-Op \$token_scope_operation always;

        location / {
            proxy_pass http://backend;
        }
    }

    # unmatched requests get WB's 404
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name _;

        token_scope all;
        token_scope_operations_use wb unmatched=not_found;

        add_header X-Op \$token_scope_operation always;

        location / {
            proxy_pass http://backend;
        }
    }

    # unmatched requests fall back to the location's rule (the default)
    server {
        listen 127.0.0.1:%%PORT_8084%%;
        server_name _;

        add_header X-Op \$token_scope_operation always;

        location / {
            token_scope marketplace;
            token_scope_operations_use wb;
            proxy_pass http://backend;
        }

        location /explicit/ {
            token_scope marketplace;
            token_scope_operations_use wb unmatched=location;
            proxy_pass http://backend;
        }
    }

    # the small inline catalogue
    server {
        listen 127.0.0.1:%%PORT_8085%%;
        server_name _;

        token_scope all;
        token_scope_operations_use mini unmatched=deny;

        add_header X-Op \$token_scope_operation always;

        location / {
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\\n";
        }
    }
}
EOF

$t->run();


# tokens: one per category set, type and read-only flag actually needed,
# minted in parallel once and reused for every operation

my %specs;

sub token_key {
    my (%o) = @_;

    my $cats = join ',', sort @{ $o{cats} };
    return join '|', $o{type} // 'base', $cats, $o{ro} ? 'ro' : 'rw';
}

sub need {
    my (%o) = @_;

    my $key = token_key(%o);
    return $key if $specs{$key};

    my @args;
    my @cats = grep { $_ ne 'common' } @{ $o{cats} };

    push @args, @cats ? ('--categories', join ',', @cats) : ('--s', '0');
    push @args, '--readonly' if $o{ro};

    my $type = $o{type} // 'base';
    push @args, '--type', $type;
    push @args, '--service', 'demo-service' if $type eq 'service';

    $specs{$key} = \@args;

    return $key;
}

sub except {
    my (@cats) = @_;
    my %drop = map { $_ => 1 } @cats;
    return [ grep { !$drop{$_} } @CATEGORIES ];
}

# the type an operation's main tokens have: base, or the first allowed type
sub op_type {
    my ($op) = @_;
    return @{ $op->{types} } ? $op->{types}[0] : 'base';
}

# an item with "all" or "common" among its alternatives needs no category
sub needed_items {
    my ($op) = @_;
    return grep { !grep { /^(all|common)$/ } @$_ } @{ $op->{items} };
}

sub is_common {
    my ($op) = @_;
    return !needed_items($op);
}

for my $op (@$ops) {
    my $type = op_type($op);

    $op->{cats} = [ map { $_->[0] } needed_items($op) ];

    if ($op->{deny}) {
        $op->{tok_all} = need(cats => \@CATEGORIES, type => $type);
        next;
    }

    # every other alternative of an item, with the first of the others
    for my $item (needed_items($op)) {
        for my $alt (@$item[1 .. $#$item]) {
            push @{ $op->{tok_alts} }, need(type => $type,
                cats => [ $alt, grep { $_ ne $item->[0] } @{ $op->{cats} } ]);
        }
    }

    $op->{tok_exact} = need(cats => $op->{cats}, type => $type);
    $op->{tok_ro} = need(cats => $op->{cats}, type => $type, ro => 1);
    $op->{tok_except} = need(cats => except(map { @$_ } needed_items($op)),
                             type => $type)
        unless is_common($op);

    if (@{ $op->{types} }) {
        $op->{tok_types} = [ map { need(cats => $op->{cats}, type => $_) }
                             @{ $op->{types} } ];
        $op->{tok_base} = need(cats => $op->{cats}, type => 'base');
    }
}

for my $cats ([ 'content' ], [ 'marketplace' ], [ 'statistics' ],
              [ 'content', 'marketplace' ], [])
{
    need(cats => $cats);
    need(cats => $cats, type => 'test');
    need(cats => $cats, type => 'test', ro => 1);
}

my %tok = mint_all(\%specs);

sub tok { my %o = @_; return $tok{ token_key(%o) } // die "no token @_\n" }

my $content = tok(cats => [ 'content' ]);
my $market = tok(cats => [ 'marketplace' ]);
my $stats = tok(cats => [ 'statistics' ]);
my $both = tok(cats => [ 'content', 'marketplace' ]);
my $none = tok(cats => []);


sub request {
    my ($port, $method, $host, $path, $token) = @_;

    my @h = (port => $port, Host => $host);
    push @h, Authorization => "Bearer $token" if defined $token;

    return $t->request($method, $path, @h);
}

sub answer { verdict(request(@_)) }

sub op_name { $_[0]->{headers}{'x-op'} // '' }


# every operation, with a concrete path

sub concrete {
    my ($path) = @_;
    (my $p = $path) =~ s/\{[^}\/]*\}/12345/g;
    return $p;
}

my (%wrong, %count);

sub expect {
    my ($what, $op, $token_key, $want, %o) = @_;

    my $res = request(8080, $op->{method}, $op->{host},
                      concrete($op->{path}), $tok{$token_key});
    my $got = verdict($res);
    $got .= ' not-from-backend'
        if $got eq '200' && $res->{body} ne "backend ok\n";

    $count{$what}++;

    push @{ $wrong{$what} }, "$op->{method} $op->{host}"
        . concrete($op->{path}) . " with $token_key: $got, expected $want"
        if $got ne $want;

    if ($o{name}) {
        $count{name}++;
        push @{ $wrong{name} }, "$op->{method} $op->{host}"
            . concrete($op->{path}) . ': X-Op "' . op_name($res)
            . "\", expected \"$op->{name}\""
            if op_name($res) ne $op->{name};
    }
}

for my $op (@$ops) {
    if ($op->{deny}) {
        expect(deny => $op, $op->{tok_all}, '401 operation', name => 1);
        next;
    }

    expect(exact => $op, $op->{tok_exact}, '200', name => 1);
    expect(alternative => $op, $_, '200') for @{ $op->{tok_alts} // [] };

    expect(except => $op, $op->{tok_except}, '401 category', name => 1)
        unless is_common($op);

    expect($op->{write} ? 'ro_write' : 'ro_read', $op, $op->{tok_ro},
           $op->{write} ? '401 read_only' : '200');

    if ($op->{tok_types}) {
        expect(types => $op, $_, '200') for @{ $op->{tok_types} };
        expect(base => $op, $op->{tok_base}, '401 token_type');
    }
}

sub walk_ok {
    my ($what, $name) = @_;

    is(scalar @{ $wrong{$what} // [] }, 0, $name)
        or diag(join "\n", @{ $wrong{$what} }[0 .. (@{ $wrong{$what} } > 20
                                                  ? 19 : $#{ $wrong{$what} })]);
}

my @allowed = grep { !$_->{deny} } @$ops;
my $reads = grep { !$_->{write} } @allowed;
my $writes = @allowed - $reads;
my $typed = grep { @{ $_->{types} } } @allowed;
my $common = grep { is_common($_) } @allowed;
my $alternatives = grep { $_->{tok_alts} } @allowed;

is($count{exact}, scalar @allowed, 'the walk sent every operation a token with exactly its categories');
walk_ok(exact => 'every operation passes a token with exactly its categories to the backend');
ok($alternatives >= 2, 'the catalogue has operations that any of several categories may call');
walk_ok(alternative => 'every operation with alternatives passes a token with any one of them');
walk_ok(deny => 'every operation the catalogue refuses is refused with operation, even to a token of every category');
is($count{except}, @allowed - $common, 'the walk sent every non-common operation a token with all other categories');
walk_ok(except => 'every operation refuses a token with all categories but its own (401 category)');
is($count{ro_read}, $reads, 'the walk sent a read-only token to every read operation');
walk_ok(ro_read => 'every read operation, POST reads included, passes a read-only token');
is($count{ro_write}, $writes, 'the walk sent a read-only token to every write operation');
walk_ok(ro_write => 'every write operation, GET writes included, refuses a read-only token (401 read_only)');
ok($typed >= 5, 'the catalogue has operations restricted to token types');
walk_ok(types => 'every type-restricted operation passes a token of each allowed type');
walk_ok(base => 'every type-restricted operation refuses a base token with the right categories (401 token_type)');
walk_ok(name => '$token_scope_operation names the matched operation template, on success and on denial');


# named examples from the issue

is(answer(8080, 'POST', 'content-api.wildberries.ru', '/content/v2/get/cards/list', tok(cats => [ 'content' ], ro => 1)), '200', 'POST /content/v2/get/cards/list is a read: a read-only content token passes');
is(answer(8080, 'GET', 'advert-api.wildberries.ru', '/adv/v0/start', tok(cats => [ 'advert' ], ro => 1)), '401 read_only', 'GET /adv/v0/start is a write: a read-only advert token is refused');
is(answer(8080, 'GET', 'user-management-api.wildberries.ru', '/api/v1/users', tok(cats => [ 'usermanagement' ], type => 'personal')), '200', 'user management takes a personal token');
is(answer(8080, 'GET', 'user-management-api.wildberries.ru', '/api/v1/users', tok(cats => [ 'usermanagement' ], type => 'base')), '401 token_type', 'user management refuses a base token');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $market), '401 category', 'a marketplace token is refused by a content operation');
is(request(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $market)->{json}{origin}, 's2s-api-auth-content', 'the origin names the operation\'s category');
is(request(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content)->{body}, "backend ok\n", 'an allowed operation reaches the backend');
is(request(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content)->{headers}{'x-required'}, 'content', '$token_scope_required is the operation\'s category, not the location\'s "all"');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits?locale=ru', $content), '200', 'the query string is not part of the matched path');
is(op_name(request(8080, 'GET', 'Content-API.Wildberries.RU:443', '/content/v2/cards/limits', $content)), 'GET content-api.wildberries.ru/content/v2/cards/limits', 'the Host header is matched lower-cased and without its port');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits'), '401 missing', 'a matched operation still needs a token');

# the raw path an upstream may get must name the operation that was checked

my $ro_advert = tok(cats => [ 'advert' ], ro => 1);
is(answer(8080, 'GET', 'advert-api.wildberries.ru', '/adv/v0/start/../../v1/balance', $ro_advert), '401 operation', 'a dot-segment path that normalizes to a read is refused');
is(answer(8080, 'GET', 'advert-api.wildberries.ru', '/adv/v0/start/..%2F..%2Fv1/balance', $ro_advert), '401 operation', 'an encoded slash is refused');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2//cards/limits', $content), '401 operation', 'an empty segment is refused');
is(request(8080, 'GET', 'advert-api.wildberries.ru', '/adv/./v1/balance', $ro_advert)->{json}{detail}, 'token scope not allowed; path is not canonical', 'the refusal says why');
is(answer(8080, 'HEAD', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content), '200', 'HEAD is matched by the GET operation');
is(answer(8080, 'GET', 'common-api.wildberries.ru', '/ping', $none), '200', 'a common operation passes a token without categories');
is(answer(8080, 'GET', 'common-api.wildberries.ru', '/ping', tok(cats => [], type => 'test')), '401 environment', 'a common operation on production refuses a test token');


# the -sandbox twin: the same rules on a sandbox server with test tokens

my @sandbox = (
    [ 'GET', 'content-api-sandbox.wildberries.ru', '/content/v2/cards/limits', 'content' ],
    [ 'POST', 'content-api-sandbox.wildberries.ru', '/content/v2/get/cards/list', 'content' ],
    [ 'PATCH', 'marketplace-api-sandbox.wildberries.ru', '/api/v3/orders/12345/cancel', 'marketplace' ],
    [ 'GET', 'statistics-api-sandbox.wildberries.ru', '/api/v1/supplier/orders', 'statistics' ],
);

for my $s (@sandbox) {
    my ($method, $host, $path, $cat) = @$s;
    my $other = $cat eq 'marketplace' ? 'content' : 'marketplace';

    (my $prod = $host) =~ s/-sandbox//;
    my ($op) = grep { $_->{method} eq $method && $_->{host} eq $prod
                      && concrete($_->{path}) eq $path } @$ops;

    ok($op, "$method $prod$path is in the catalogue") or next;

    my $res = request(8082, $method, $host, $path, tok(cats => [ $cat ], type => 'test'));
    is(verdict($res), '200', "$method $host$path passes a test $cat token");
    is(op_name($res), $op->{name}, "$method $host$path is matched as the production operation $op->{name}");
    is(answer(8082, $method, $host, $path, tok(cats => [ $other ], type => 'test')), '401 category', "$method $host$path refuses a test $other token");
    is(answer(8082, $method, $host, $path, tok(cats => [ $cat ], type => 'test', ro => 1)), $op->{write} ? '401 read_only' : '200', "$method $host$path " . ($op->{write} ? 'refuses' : 'passes') . ' a read-only test token as its production twin does');
    is(answer(8082, $method, $host, $path, tok(cats => [ $cat ])), '401 environment', "$method $host$path refuses a production token on the sandbox server");
}

is(answer(8082, 'GET', 'content-api-sandbox.wildberries.ru', '/no/such/path', tok(cats => [ 'content' ], type => 'test')), '401 operation', 'an unknown path on a sandbox host is refused like on production');
is(answer(8082, 'GET', 'content-api-sandboxx.wildberries.ru', '/content/v2/cards/limits', tok(cats => [ 'content' ], type => 'test')), '401 operation', 'only "-sandbox" exactly makes a twin ("-sandboxx" does not)');
is(answer(8082, 'GET', 'content-api.wildberries.ru-sandbox', '/content/v2/cards/limits', tok(cats => [ 'content' ], type => 'test')), '401 operation', '"-sandbox" counts only at the end of the first label');
is(answer(8082, 'GET', 'content-api-sandbox-sandbox.wildberries.ru', '/content/v2/cards/limits', tok(cats => [ 'content' ], type => 'test')), '401 operation', 'the twin rule strips "-sandbox" once');
is(answer(8080, 'GET', 'content-api-sandbox.wildberries.ru', '/content/v2/cards/limits', $content), '200', 'the twin rule is by host: a production server with a sandbox host name matches too');


# literal segments win over templates (inline catalogue: the WB one has no
# such pair for one method and host)

is(op_name(request(8085, 'GET', 'api.test', '/orders/new', $content)), 'GET api.test/orders/new', '/orders/new matches the literal rule, not /orders/{id}');
is(answer(8085, 'GET', 'api.test', '/orders/new', $content), '200', 'the literal rule\'s category (content) applies to /orders/new');
is(answer(8085, 'GET', 'api.test', '/orders/new', $market), '401 category', 'the template\'s category (marketplace) does not open /orders/new');
is(op_name(request(8085, 'GET', 'api.test', '/orders/42', $market)), 'GET api.test/orders/{id}', 'any other segment matches the template /orders/{id}');
is(answer(8085, 'GET', 'api.test', '/orders/42', $content), '401 category', 'the literal rule\'s category does not open the template');
is(op_name(request(8085, 'GET', 'api.test', '/orders/new/items', $market)), 'GET api.test/orders/{id}/items', 'a literal segment without the rest of the path gives way to the template (/orders/new/items)');
is(op_name(request(8085, 'GET', 'api.test', '/p/lit/other', $market)), 'GET api.test/p/{x}/other', 'the matcher backtracks from a literal dead end to the template (/p/lit/other)');
is(op_name(request(8085, 'GET', 'api.test', '/p/lit/end', $content)), 'GET api.test/p/lit/end', 'the all-literal path matches its own rule (/p/lit/end)');
is(op_name(request(8085, 'GET', 'api.test', '/orders', $stats)), 'GET api.test/{any}', 'a one-segment template matches a segment with no literal rule of its length');
is(answer(8085, 'GET', 'api.test', '/orders/42/items/7', $market), '401 operation', 'a template matches one segment, not several');
is(answer(8085, 'GET', 'api.test', '/either', $content), '200', 'a rule content|marketplace admits a content token');
is(answer(8085, 'GET', 'api.test', '/either', $market), '200', 'and a marketplace token');
is(answer(8085, 'GET', 'api.test', '/either', $stats), '401 category', 'and refuses a token with neither');
is(answer(8085, 'GET', 'api.test', '/refused', $both), '401 operation', 'a deny rule refuses every token');
is(request(8085, 'GET', 'api.test', '/refused', $both)->{json}{detail}, 'token scope not allowed; the catalogue refuses this operation', 'and says why');
is(answer(8085, 'GET', 'api.test', '/both', $both), '200', 'an operation with two categories passes a token with both');
is(answer(8085, 'GET', 'api.test', '/both', $content), '401 category', 'an operation with two categories refuses a token with one of them');
is(answer(8085, 'GET', 'api.test', '/both', $market), '401 category', 'an operation with two categories refuses a token with the other one');
is(answer(8085, 'POST', 'api.test', '/both', $both), '401 operation', 'the method is part of the operation');


# unmatched requests: deny

is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $content), '401 operation', 'deny: an unknown path on a known host is refused with code operation');
is(request(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $content)->{json}{detail}, 'token scope not allowed; no such operation', 'deny: the detail says there is no such operation');
is(answer(8080, 'DELETE', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content), '401 operation', 'deny: a known path with another method is refused');
is(answer(8080, 'GET', 'unknown-api.wildberries.ru', '/content/v2/cards/limits', $content), '401 operation', 'deny: a known path on an unknown host is refused');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards', $content), '401 operation', 'deny: a prefix of an operation\'s path is not the operation');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits/extra', $content), '401 operation', 'deny: a longer path than an operation\'s is not the operation');
is(op_name(request(8080, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $content)), '', 'deny: $token_scope_operation is empty when nothing matched');
is(answer(8080, 'GET', 'content-api.wildberries.ru', '/health', $none), '200', 'token_scope_operations_use off in a nested location brings back the location rule');


# unmatched requests: not_found

my $nf = request(8083, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $content);
is(verdict($nf), '404 operation', 'not_found: an unknown path gets 404 with code operation');
is($nf->{json}{title}, 'not found', 'not_found: the title is "not found"');
is($nf->{json}{detail}, 'path not found', 'not_found: the detail is "path not found"');
is($nf->{json}{statusText}, 'Not Found', 'not_found: the statusText is "Not Found"');
ok(!exists $nf->{headers}{'www-authenticate'}, 'not_found: the 404 has no WWW-Authenticate header');
is(answer(8083, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content), '200', 'not_found: a matched operation passes the right token');
is(answer(8083, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $market), '401 category', 'not_found: a matched operation still refuses the wrong token');


# unmatched requests: the location's rule

is(answer(8084, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $market), '200', 'location: an unknown path passes a token with the location\'s category');
is(answer(8084, 'GET', 'content-api.wildberries.ru', '/content/v2/no/such/path', $content), '401 category', 'location: an unknown path refuses a token without the location\'s category');
is(answer(8084, 'POST', 'content-api.wildberries.ru', '/content/v2/no/such/path', tok(cats => [ 'marketplace' ], ro => 1)), '401 read_only', 'location: an unknown POST is a write by its method');
is(answer(8084, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $content), '200', 'location: a matched operation\'s category replaces the location\'s');
is(answer(8084, 'GET', 'content-api.wildberries.ru', '/content/v2/cards/limits', $market), '401 category', 'location: the location\'s category does not open a matched operation');
is(answer(8084, 'POST', 'content-api.wildberries.ru', '/content/v2/get/cards/list', tok(cats => [ 'content' ], ro => 1)), '200', 'location: a matched operation\'s access replaces the method\'s');
is(answer(8084, 'GET', 'content-api.wildberries.ru', '/explicit/path', $market), '200', 'unmatched=location written out behaves as the default');
is(answer(8084, 'GET', 'content-api.wildberries.ru', '/explicit/path', $content), '401 category', 'unmatched=location written out applies the location\'s category');


# the access log names the operation

my $log = $t->read_file('ops.log');
like($log, qr{^POST content-api\.wildberries\.ru /content/v2/get/cards/list op="POST content-api\.wildberries\.ru/content/v2/get/cards/list" required=content\|advert reason=ok$}m, 'the access log names the matched operation and its alternatives');
like($log, qr{^PATCH marketplace-api\.wildberries\.ru /api/v3/orders/12345/cancel op="PATCH marketplace-api\.wildberries\.ru/api/v3/orders/\{orderId\}/cancel" }m, 'the access log names the template, not the concrete path');
like($log, qr{^GET content-api\.wildberries\.ru /content/v2/no/such/path op="-" required=-? reason=operation$}m, 'the access log shows unmatched requests with no operation and reason operation');


# nginx -t: mistakes in the block or its use name the bad value

my $c = TokenScope::Test->new();
$c->keygen('ES256', 'e1');

sub check_conf {
    my ($rules, $use) = @_;

    $use //= 'token_scope_operations_use bad;';

    $c->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_operations bad {
        $rules
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            token_scope all;
            $use
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF

    return $c->test_config();
}

my ($rc, $out);
my $good = 'GET api.test "/orders/{id}" marketplace read;';

($rc, $out) = check_conf($good);
is($rc, 0, 'a good catalogue passes nginx -t') or diag($out);

($rc, $out) = check_conf($good, 'token_scope_operations_use bad unmatched=not_found;');
is($rc, 0, 'unmatched=not_found passes nginx -t') or diag($out);

$c->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%
    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    include $CATALOGUE;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            token_scope all;
            token_scope_operations_use wb unmatched=deny;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
($rc, $out) = $c->test_config();
is($rc, 0, 'the shipped catalogue passes nginx -t') or diag($out);

($rc, $out) = check_conf('GET api.test /orders nosuchcategory read;');
isnt($rc, 0, 'an unknown category in a rule fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "nosuchcategory"/, 'the message names the unknown category');

($rc, $out) = check_conf('GET api.test /orders content,nosuchcategory read;');
like($out, qr/\[emerg\].*unknown token scope category or scope "nosuchcategory"/, 'the message names the unknown category among several');

($rc, $out) = check_conf('GET api.test /orders content|contnet read;');
isnt($rc, 0, 'an unknown alternative in a rule fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "contnet" in "content\|contnet"/, 'the message names the unknown alternative and its item');

($rc, $out) = check_conf('GET api.test /orders ' . join(',', ('content|advert') x 9) . ' read;');
like($out, qr/\[emerg\].*more than 8 sets of alternatives/, 'more sets of alternatives than fit fail nginx -t with their number');

($rc, $out) = check_conf('GET api.test /orders marketplace readwrite;');
isnt($rc, 0, 'a bad access word fails nginx -t');
like($out, qr/\[emerg\].*invalid access "readwrite"/, 'the message names the bad access word');

($rc, $out) = check_conf('get api.test /orders marketplace read;');
isnt($rc, 0, 'a lower-case method fails nginx -t');
like($out, qr/\[emerg\].*invalid method "get"/, 'the message names the bad method');

($rc, $out) = check_conf('G3T api.test /orders marketplace read;');
isnt($rc, 0, 'a method with a digit fails nginx -t');
like($out, qr/\[emerg\].*invalid method "G3T"/, 'the message names the method with a digit');

($rc, $out) = check_conf('GET api.test "/x{id}" marketplace read;');
isnt($rc, 0, 'a template that is only part of a segment fails nginx -t');
like($out, qr/\[emerg\].*whole path segment.*"x\{id\}"/, 'the message names the partial template segment');

($rc, $out) = check_conf('GET api.test "/files/{name}.json" marketplace read;');
like($out, qr/\[emerg\].*whole path segment.*"\{name\}\.json"/, 'a template followed by text in its segment is named too');

($rc, $out) = check_conf('GET api.test orders marketplace read;');
isnt($rc, 0, 'a path without a leading slash fails nginx -t');
like($out, qr/\[emerg\].*"GET api\.test orders": path must start with "\/"/, 'the message names the path and says it must start with "/"');

($rc, $out) = check_conf($good . "\n" . 'GET api.test "/orders/{id}" content write;');
isnt($rc, 0, 'a duplicate operation fails nginx -t');
like($out, qr/\[emerg\].*duplicate operation.*"GET api\.test\/orders\/\{id\}"/, 'the message names the operation it duplicates');

($rc, $out) = check_conf($good . "\n" . 'GET api.test "/orders/{orderId}" marketplace read;');
isnt($rc, 0, 'the same operation with another template name fails nginx -t');
like($out, qr/\[emerg\].*"GET api\.test \/orders\/\{orderId\}".*duplicate operation/, 'the message names the duplicate rule');

($rc, $out) = check_conf($good . "\n" . 'GET API.Test "/orders/{id}" marketplace read;');
isnt($rc, 0, 'the same operation with the host in another case fails nginx -t');

($rc, $out) = check_conf('GET api.test /orders marketplace read types=admin;');
isnt($rc, 0, 'an unknown token type fails nginx -t');
like($out, qr/\[emerg\].*invalid token type "admin"/, 'the message names the unknown token type');

($rc, $out) = check_conf('GET api.test /orders marketplace;');
isnt($rc, 0, 'a rule without an access word fails nginx -t');

($rc, $out) = check_conf($good, 'token_scope_operations_use nope;');
isnt($rc, 0, 'an unknown catalogue name in token_scope_operations_use fails nginx -t');
like($out, qr/\[emerg\].*unknown operations "nope"/, 'the message names the unknown catalogue');

($rc, $out) = check_conf($good, 'token_scope_operations_use bad unmatched=maybe;');
isnt($rc, 0, 'a bad unmatched= value fails nginx -t');
like($out, qr/\[emerg\].*"unmatched=maybe"/, 'the message names the bad unmatched= value');

($rc, $out) = check_conf($good, 'token_scope_operations_use bad sometimes;');
isnt($rc, 0, 'a parameter other than unmatched= fails nginx -t');
like($out, qr/\[emerg\].*"sometimes"/, 'the message names the bad parameter');

undef $c;

$t->done_testing();


# scripts/token mint for every spec, a few at a time: about 0.3 s each
# alone, so the ~60 tokens the walk needs are made in parallel

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

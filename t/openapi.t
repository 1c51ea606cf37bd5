#!/usr/bin/perl

# scripts/openapi-rules: OpenAPI files (t/openapi/) to token_scope_operations
# rules, compared with the expected files beside them; the reports on
# stderr and the exit status; names the module would refuse; the categories
# WB's description_auth text adds to x-category; YAML and
# OpenAPI that older versions dropped; nginx -t on the output (--check);
# --diff; and conf.d/wb-operations.conf is what the converter makes of
# ../shared/wb-openapi today.  The three WB versions: t/openapi_versions.t.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);

use Test::More;

chdir "$FindBin::Bin/.." or die "cannot chdir to the repository: $!\n";

my $tmp = tempdir(CLEANUP => 1);
my $have_yaml = system("python3 -c 'import yaml' 2>/dev/null") == 0;

my $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $MODULE = $ENV{TEST_NGINX_MODULE} || 'build/ngx_http_token_scope_module.so';

# a module built with ASan loads only with its runtime preloaded
# (make test-asan): --check then runs nginx through a wrapper that does so
if ($ENV{TEST_NGINX_PRELOAD}) {
    my $wrapper = "$tmp/nginx-preload";
    open my $fh, '>', $wrapper or die "cannot write $wrapper: $!\n";
    print $fh "#!/bin/sh\nLD_PRELOAD='$ENV{TEST_NGINX_PRELOAD}' exec '$NGINX' \"\$@\"\n";
    close $fh;
    chmod 0755, $wrapper;
    $NGINX = $wrapper;
}

# runs the converter from the repository root: (exit status, stdout, stderr)
sub convert {
    my $cmd = join ' ', map { "'$_'" } 'scripts/openapi-rules', @_;
    my $out = `$cmd 2>$tmp/stderr`;

    return ($? >> 8, $out, slurp("$tmp/stderr"));
}

sub slurp {
    my ($file) = @_;

    open my $fh, '<', $file or return undef;
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $text) = @_;

    open my $fh, '>', $file or die "$file: $!\n";
    print $fh $text;
    close $fh;
}

my ($rc, $out, $err);


# JSON input, no vendor extensions: security scopes, names declared to the
# converter as the nginx configuration declares them

my @map = ('--scope-map', 't/openapi/security.map',
           '--category', 'orders', '20', '--category', 'catalog', '21');

($rc, $out, $err) = convert(@map, 't/openapi/security.json');
is($rc, 0, 'unclassified and skipped operations leave the exit status 0');
is($out, slurp('t/openapi/security.rules'), 'scopes map to categories, document-level security applies, OR alternatives become any-of items, the rest is refused');
like($out, qr{DELETE  store\.example\.com  "/api/v3/orders/\{orderId\}"  orders\|catalog  write;}, 'OR alternatives of different categories are written as any of them');
like($err, qr{security\.json: POST /webhooks: skipped: another API: security scheme key, not oauth\n}, 'an operation of another security scheme is skipped with the reason');
like($err, qr{security\.json: GET /status: unclassified: .*\{oauth: \[\]\} names no scopes\n}, 'a requirement of this API\'s scheme without scopes is reported');
like($err, qr{security\.json: GET /reports: unclassified: scope 'read_reports' is not in the scope map\n}, 'a scope missing from the scope map is reported');
like($err, qr{security\.json: GET /public: unclassified: .*empty alternative}, 'optional authentication is reported');
like($err, qr{unclassified: 3, skipped: 1\b}, 'the summary counts the unclassified and the skipped operations');
like($out, qr{    # refused, security\.json: another API: security scheme key, not oauth\n    POST  store\.example\.com  /api/v3/webhooks  deny  write;\n}, 'a refusal is written under a comment naming the reason');

($rc, $out, $err) = convert('--strict', @map, 't/openapi/security.json');
is($rc, 1, '--strict makes unclassified or skipped operations an error');
is($out, '', '--strict writes nothing then');
like($err, qr{--strict: 3 unclassified, 1 skipped: nothing written}, '--strict says why nothing was written');

($rc, $out, $err) = convert('--allow-unclassified', @map,
    't/openapi/security.json');
is($out, slurp('t/openapi/security.rules'), '--allow-unclassified is still accepted and changes nothing');

($rc, $out, $err) = convert(map({ ('--scope', $_) } qw(read_catalog
    update_catalog read_orders update_orders openid)),
    '--category', 'catalog', '21', 't/openapi/security.json');
is($out, slurp('t/openapi/security-as-is.rules'), 'without a scope map a scope is a name as it is, known through --scope');

($rc, $out, $err) = convert('t/openapi/security.json');
like($err, qr{GET /products: unclassified: scope 'read_catalog' is not a category or scope the module knows}, 'a scope name the module does not know is refused, not written');

($rc, $out, $err) = convert('--scope-map', 't/openapi/security.map',
    't/openapi/security.json');
is($rc, 2, 'a scope map naming a category the module does not know makes the exit status 2');
like($err, qr{security\.map:2: category 'catalog' is not a category or scope the module knows}, 'the message names the line of the scope map');

($rc, $out, $err) = convert('--scope-map', "$tmp/no-such-map",
    't/openapi/security.json');
is($rc, 2, 'a missing scope map makes the exit status 2');

($rc, $out, $err) = convert("$tmp/no-such-file.json");
is($rc, 2, 'a missing input file makes the exit status 2');

spew("$tmp/swagger.json", '{"swagger": "2.0", "paths": {}}');

($rc, $out, $err) = convert("$tmp/swagger.json");
like($err, qr/Swagger 2\.0 is not supported/, 'a Swagger 2.0 file is refused with a reason');


# the names "token_scope_category" and "token_scope_scope" take

($rc, $out, $err) = convert('--category', 'Content', '20',
    "$tmp/swagger.json");
like($err, qr{--category Content 20: a category name is 1 to 31 lower-case letters}, '--category refuses a name with capitals');
($rc, $out, $err) = convert('--category', 'all', '20', "$tmp/swagger.json");
like($err, qr{--category all 20: 'all' cannot be redefined}, '--category refuses to redefine all');
($rc, $out, $err) = convert('--category', 'deny', '20', "$tmp/swagger.json");
like($err, qr{--category deny 20: 'deny' is a keyword, not a name}, '--category refuses the keyword deny');
($rc, $out, $err) = convert('--category', 'extra', '30', "$tmp/swagger.json");
like($err, qr{--category extra 30: .*except 30, the read-only flag}, '--category refuses bit 30');
($rc, $out, $err) = convert('--scope', 'content', "$tmp/swagger.json");
like($err, qr{--scope content: 'content' is a category}, '--scope refuses a category name');
is($rc, 2, 'a name nginx would refuse makes the exit status 2');


SKIP: {
    skip 'python3-yaml is not installed', 79 unless $have_yaml;

    # servers: operation > path item > document, base paths, sandboxes

    ($rc, $out, $err) = convert('t/openapi/servers.yaml');
    is($rc, 0, 'nested servers convert without complaint');
    is($out, slurp('t/openapi/servers.rules'), 'the innermost servers win, base paths are prepended, sandbox twins are dropped');
    like($err, qr{GET /sandbox-only: only sandbox servers \(beta-api-sandbox\.example\.com\): rules written for beta-api\.example\.com}, 'a sandbox-only server is noted');
    like($out, qr{GET   twin-api\.example\.com  /v3/op-twin  content  read;}, 'an operation\'s own servers with a sandbox twin give the production rule');
    like($err, qr{POST /op-twin: only sandbox servers \(twin-api-sandbox\.example\.com\): rules written for twin-api\.example\.com}, 'an operation\'s own sandbox server alone gives the production host');


    # categories: any of several, common, aliases, access, token types

    ($rc, $out, $err) = convert('--name', 'shop', 't/openapi/categories.yaml');
    is($rc, 0, 'vendor extensions convert without complaint');
    is($out, slurp('t/openapi/categories.rules'), 'several categories are written as any of them, all and commonapi become common, x-token-types become types=');
    like($out, qr{POST  marketplace-api\.wildberries\.ru  /content/v2/get/cards/list         advert\|content          read;}, 'x-category [advert, content] is advert|content: a Content or a Promotion token will do');
    like($out, qr{GET   marketplace-api\.wildberries\.ru  /api/v1/all-and-more               common  }, 'x-category [all, content] is common: any valid token will do');
    like($out, qr{GET   marketplace-api\.wildberries\.ru  /adv/v1/alias                      promotion  }, 'an alias next to its category is written once');
    like($err, qr/read 9, write 3 \(3 POST read, 1 GET write\)/, 'the summary counts reads and writes that are not what the method suggests');


    # WB's text: the <strong> names of a description_auth block are
    # alternatives beside x-category's

    ($rc, $out, $err) = convert('t/openapi/descriptions.yaml');
    is($rc, 0, 'description_auth blocks convert without complaint');
    is($out, slurp('t/openapi/descriptions.rules'), 'the categories WB\'s description_auth text names are alternatives beside x-category\'s');
    like($out, qr{POST  content-api\.wildberries\.ru  /content/v2/get/cards/list   content\|advert  }, 'x-category content, the text Content or Promotion: content|advert');
    like($err, qr{^openapi-rules: note: t/openapi/descriptions\.yaml: POST /content/v2/get/cards/list: x-category says content, the description says content or advert: any of them$}m, 'the widening is noted with the file, the operation, x-category and the text');
    like($out, qr{POST  content-api\.wildberries\.ru  /content/v2/get/cards/trash  advert\|content  }, 'the text naming what x-category names changes nothing');
    unlike($err, qr{cards/trash|rating|seller-info|cards/limits|/ping}, 'and is not noted, nor a block without names, nor names outside the block, nor the text beside all');
    like($out, qr{GET   content-api\.wildberries\.ru  /api/v1/prices  +statistics\|discountsandprices  }, 'WB\'s names are read whatever their letter case, spaces, tags and entities');
    like($err, qr{^openapi-rules: note: t/openapi/descriptions\.yaml: GET /api/v1/prices: x-category says statistics, the description says discountsandprices or statistics: any of them$}m, 'the note lists the text\'s names in its order');
    like($err, qr{^openapi-rules: note: t/openapi/descriptions\.yaml: GET /api/v1/recommendations: the description \(description_auth\) names the category 'Рекомендации', not one of WB's names known here: ignored$}m, 'a display name not known is noted and ignored');
    like($out, qr{GET   content-api\.wildberries\.ru  /api/v1/recommendations  +marketplace  }, 'and the rule is x-category\'s');
    like($out, qr{GET   content-api\.wildberries\.ru  /api/v1/seller-info  +common  }, 'a block without names ("any category") changes nothing');
    like($out, qr{GET   content-api\.wildberries\.ru  /content/v2/cards/limits  +content  }, '<strong> outside the description_auth block names no category');
    like($out, qr{GET   content-api\.wildberries\.ru  /api/v1/tariffs  +common  }, 'WB\'s common-api row (Тарифы, Новости, Информация о продавце) is any valid token');
    like($err, qr{^openapi-rules: note: t/openapi/descriptions\.yaml: GET /api/v1/tariffs: x-category says documents, the description says documents or commonapi: any valid token$}m, 'and the note says so');
    like($out, qr{GET  content-api\.wildberries\.ru  /api/v1/users  deny  read;}, 'without x-category the text classifies nothing: still refused');
    like($err, qr{^openapi-rules:   x-category widened by the description: 3 operations }m, 'the summary counts the operations the text widens');
    is(() = $err =~ /^openapi-rules: note: /mg, 4, 'one note per widened operation and per unknown name, no other');

    ($rc, $out, $err) = convert('--no-description-categories',
        't/openapi/descriptions.yaml');
    like($out, qr{POST  content-api\.wildberries\.ru  /content/v2/get/cards/list   content  +read;}, '--no-description-categories takes x-category alone');
    unlike($err, qr{note:|x-category widened}, '--no-description-categories reads no description: no notes');


    # names the module would refuse

    ($rc, $out, $err) = convert('t/openapi/names.yaml');
    is($rc, 0, 'unknown category names leave the exit status 0');
    is($out, slurp('t/openapi/names.rules'), 'an operation with a name the module does not know is refused, the others written');
    unlike($out, qr/^ +[A-Z]+ +\S+ +\S+ +\S*\b(?:wbd|Content|contnet|deny\S|extra|read_catalog)\b\S* +(?:read|write)/m, 'no rule names what nginx -t would refuse');
    like($err, qr{names\.yaml: GET /wbd: unclassified: x-category 'wbd' is not a category or scope the module knows}, 'an unknown name is reported with the operation');
    like($err, qr{names\.yaml: GET /capitals: unclassified: x-category 'Content' is not a category or scope the module knows \(names are lower case: 'content'\)}, 'a name in capitals is reported with the lower-case name');
    like($err, qr{names\.yaml: POST /keyword: unclassified: x-category 'deny' is not}, 'the keyword deny is no category');
    like($err, qr{names\.yaml: GET /one-bad-alternative: unclassified: x-category 'contnet'}, 'one unknown alternative refuses the operation');

    ($rc, $out, $err) = convert('--category', 'extra', '20', '--scope',
        'read_catalog', 't/openapi/names.yaml');
    like($out, qr{GET  names\.example\.com  /extra  extra\|content  read;}, '--category makes a name known as token_scope_category does');
    like($out, qr{PUT  names\.example\.com  /scope  read_catalog   write;}, '--scope makes a scope name known as token_scope_scope does');


    # missing extensions

    ($rc, $out, $err) = convert('-v', 't/openapi/missing.yaml');
    is($rc, 0, 'an operation without x-category or security leaves the exit status 0');
    is($out, slurp('t/openapi/missing.rules'), 'without x-readonly-method GET and HEAD are reads and POST a write; the unclassified are refused');
    like($err, qr{missing\.yaml: PATCH /products/\{id\}: unclassified: no x-category and no security requirement\n}, 'an operation without x-category or security is reported with file, method and path');
    like($err, qr{missing\.yaml: GET /status: unclassified: "security: \[\]": public}, 'an operation with "security: []" is reported as public');
    like($err, qr{warning: 3 operations without x-readonly-method}, 'access guessed from the method is counted in a warning');
    like($err, qr{missing\.yaml: POST /products\n}, '-v lists the operations whose access was guessed');


    # what the module cannot enforce

    ($rc, $out, $err) = convert('--default-host', 'files.example.com',
        't/openapi/invalid.yaml');
    is($out, slurp('t/openapi/invalid.rules'), '--default-host gives a relative server a host');
    like($err, qr{GET /files/\{name\}\.json: unclassified: .*whole-segment templates .*\(no rule written\)\n}, 'a template inside a segment is reported, and that no rule can refuse it');
    like($err, qr{GET /no-default: unclassified: .*variable \{tenant\} has no default \(no rule written\)}, 'a server variable without a default is reported');
    like($err, qr{GET /odd-values: unclassified: x-readonly-method is not a boolean}, 'a non-boolean x-readonly-method is reported');
    like($err, qr{PUT /odd-values: unclassified: x-token-types: unknown token type 'robot'}, 'an unknown token type is reported');
    like($err, qr{not written: 2\b}, 'the summary counts the operations no rule could refuse');


    # duplicates across files

    ($rc, $out, $err) = convert('t/openapi/dup-a.yaml',
        't/openapi/dup-b.yaml');
    is($out, slurp('t/openapi/dup.rules'), 'an operation defined twice with the same rule is written once, a conflicting one refused');
    like($err, qr{POST dup\.example\.com/conflict is defined more than once with different rules}, 'a conflicting duplicate is reported');


    # YAML 1.1 that PyYAML reads

    ($rc, $out, $err) = convert('t/openapi/merge.yaml');
    is($rc, 0, 'merge keys are read');
    is($out, slurp('t/openapi/merge.rules'), 'merged fields apply, and the mapping\'s own keys override them');
    like($err, qr{merge\.yaml: GET /twice: unclassified: the method is defined twice in the path item \(line \d+\)}, 'a method written twice beside merge keys is still caught');
    unlike($err, qr{/orders|/override}, 'a key overriding a merged one is no duplicate');

    ($rc, $out, $err) = convert('t/openapi/flow.yaml');
    is($rc, 0, 'a YAML file starting with a flow mapping is read');
    is($out, slurp('t/openapi/flow.rules'), 'its operations are written');

    spew("$tmp/flow.json", slurp('t/openapi/flow.yaml'));
    ($rc, $out, $err) = convert("$tmp/flow.json");
    like($err, qr{flow\.json: invalid JSON}, 'a .json file is read as JSON only');


    # every OpenAPI 3.x method

    ($rc, $out, $err) = convert('t/openapi/methods.yaml');
    is($out, slurp('t/openapi/methods.rules'), 'every method of OpenAPI 3.0 to 3.2 is written');
    like($out, qr{QUERY    methods\.example\.com  /every       content  read;}, 'OpenAPI 3.2\'s query method is a read by its method');
    like($out, qr{COPY     methods\.example\.com  /additional  content  write;}, 'additionalOperations are written');
    like($out, qr{PURGE    methods\.example\.com  /additional  content  write;}, 'a lower-case additionalOperations method is upper-cased');
    like($out, qr{POST     methods\.example\.com  /upper       content  write;}, 'an upper-case method key is read as the method');
    like($err, qr{note: .*methods\.yaml: POST /upper: method key 'Post' read as 'post'}, 'an upper-case method key is noted');
    like($err, qr{methods\.yaml: GET /twice: unclassified: the method is defined more than once in the path item \('get', 'GET'\)\n}, 'get and GET in one path item are refused once');
    like($err, qr{M-SEARCH /additional: unclassified: method 'M-SEARCH': .*\(no rule written\)}, 'a method the module cannot carry is reported');
    like($err, qr{warning: .*methods\.yaml: /dropped: 'copy' is not an OpenAPI method or path item field: dropped}, 'a key that is no method is reported as dropped');
    like($err, qr{17 operations in 1 file -> 15 rules}, 'the summary counts every operation');
    like($err, qr{dropped keys: 2\b}, 'the summary counts the dropped keys');


    # another security scheme is another API

    ($rc, $out, $err) = convert('t/openapi/schemes-api.yaml',
        't/openapi/schemes-other.yaml');
    is($rc, 0, 'another API beside this one leaves the exit status 0');
    is($out, slurp('t/openapi/schemes.rules'), 'the operations of another security scheme are refused, x-category or not');
    like($err, qr{schemes-other\.yaml: POST /offers: skipped: another API: security scheme ApiKeyAuth, not HeaderApiKey\n}, 'each operation of the other API is named with the reason');
    like($err, qr{note: t/openapi/schemes-other\.yaml: 3 operations of another API}, 'a note counts them per file');
    like($err, qr{security schemes of this API: HeaderApiKey \(named by the most operations}, 'the summary names the scheme taken as this API\'s');
    like($out, qr{GET  digital-api\.example\.com  /shared  content  read;}, 'an operation that takes this API\'s scheme too is this API\'s');

    ($rc, $out, $err) = convert('--scheme', 'ApiKeyAuth',
        't/openapi/schemes-api.yaml', 't/openapi/schemes-other.yaml');
    like($err, qr{schemes-api\.yaml: GET /products: skipped: another API: security scheme HeaderApiKey, not ApiKeyAuth}, '--scheme says which scheme is this API\'s');
}


# -o, --strict and nginx -t

SKIP: {
    skip 'python3-yaml is not installed', 3 unless $have_yaml;

    ($rc, $out, $err) = convert('-o', "$tmp/out.conf",
        't/openapi/categories.yaml');
    is(slurp("$tmp/out.conf"), slurp('t/openapi/categories.rules') =~ s/ shop / api /r, '-o writes the rules to a file, named api by default');

    ($rc, $out, $err) = convert('--strict', '-o', "$tmp/none.conf",
        't/openapi/missing.yaml');
    ok(!-e "$tmp/none.conf", '-o with --strict writes no file when an operation is unclassified');

    ($rc, $out, $err) = convert('-o', "$tmp/some.conf",
        't/openapi/missing.yaml');
    is(slurp("$tmp/some.conf"), slurp('t/openapi/missing.rules'), '-o writes the rules and the refusals without --strict');
}

SKIP: {
    skip "no nginx binary at $NGINX", 9 unless -x $NGINX;
    skip "module not built: $MODULE (run make)", 9 unless -f $MODULE;
    skip 'python3-yaml is not installed', 9 unless $have_yaml;

    my @check = ('--check', $MODULE, '--nginx', $NGINX);

    ($rc, $out, $err) = convert(@check, '-o', "$tmp/flow.conf",
        't/openapi/flow.yaml');
    is($rc, 0, '--check passes rules that nginx -t accepts');
    like($err, qr{nginx -t with \S+: the rules are accepted}, '--check says nginx -t accepted them');
    is(slurp("$tmp/flow.conf"), slurp('t/openapi/flow.rules'), '--check writes what it checked');

    spew("$tmp/keep.conf", "# the old rules\n");
    spew("$tmp/not-a-module.so", "");

    ($rc, $out, $err) = convert('--check', "$tmp/not-a-module.so", '--nginx',
        $NGINX, '-o', "$tmp/keep.conf", 't/openapi/flow.yaml');
    is($rc, 3, 'a failed nginx -t makes the exit status 3');
    is(slurp("$tmp/keep.conf"), "# the old rules\n", 'a failed nginx -t leaves the old file as it was');
    like($err, qr{nginx -t refused the rules; \S+keep\.conf not replaced:\nnginx: \[emerg\] .*not-a-module\.so}, 'a failed nginx -t shows what nginx said');

    # these need the module to read "a|b" and "deny" (issue 15)

    ($rc, $out, $err) = convert(@check, '-o', "$tmp/any.conf",
        't/openapi/categories.yaml');
    is($rc, 0, 'nginx -t with the module accepts any-of items') or diag($err);

    ($rc, $out, $err) = convert(@check, '--category', 'extra', '20',
        '--scope', 'read_catalog', 't/openapi/names.yaml');
    is($rc, 0, 'nginx -t with the module accepts refusals and the names declared with --category and --scope') or diag($err);

    ($rc, $out, $err) = convert(@check, 't/openapi/schemes-api.yaml',
        't/openapi/schemes-other.yaml', 't/openapi/methods.yaml',
        't/openapi/merge.yaml', 't/openapi/servers.yaml',
        't/openapi/descriptions.yaml');
    is($rc, 0, 'nginx -t with the module accepts every fixture\'s rules together') or diag($err);
}


# --diff: catalogues and spec files

SKIP: {
    skip 'python3-yaml is not installed', 10 unless $have_yaml;

    ($rc, $out, $err) = convert('--diff', 't/openapi/categories.rules',
        't/openapi/categories.yaml');
    is($rc, 0, '--diff of a catalogue and the spec it came from exits 0');
    like($out, qr{^0 added, 0 removed, 0 changed, 12 unchanged$}m, '--diff finds no differences between them');

    # an older catalogue of the same operations
    spew("$tmp/old.rules", <<'EOF');
token_scope_operations shop {
  POST marketplace-api.wildberries.ru /content/v2/get/cards/list advert,content read;
  POST marketplace-api.wildberries.ru /content/v2/get/cards/trash content|advert read;
  GET marketplace-api.wildberries.ru /adv/v0/start advert read;
  GET marketplace-api.wildberries.ru /api/v1/users usermanagement read;
  GET old-api.wildberries.ru /ping all read;
  GET marketplace-api.wildberries.ru /gone content read;
  POST marketplace-api.wildberries.ru "/api/v3/orders/{id}/cancel" deny write;
}
EOF

    ($rc, $out, $err) = convert('--diff', "$tmp/old.rules",
        't/openapi/categories.yaml');
    is($rc, 1, '--diff with differences exits 1');
    like($out, qr{^changed: POST marketplace-api\.wildberries\.ru/content/v2/get/cards/list: categories advert,content -> advert\|content$}m, '--diff shows all-of becoming any-of');
    unlike($out, qr{cards/trash}, '--diff takes content|advert and advert|content for the same');
    like($out, qr{^changed: GET marketplace-api\.wildberries\.ru/adv/v0/start: access read -> write$}m, '--diff shows a changed access');
    like($out, qr{^changed: GET marketplace-api\.wildberries\.ru/api/v1/users: types any -> personal$}m, '--diff shows changed token types');
    like($out, qr{^changed: GET marketplace-api\.wildberries\.ru/ping: host old-api\.wildberries\.ru -> marketplace-api\.wildberries\.ru$}m, '--diff shows an operation moved to another host, all and common the same');
    like($out, qr{^changed: POST marketplace-api\.wildberries\.ru/api/v3/orders/\{orderId\}/cancel: rule deny write -> marketplace\|supplies write$}m, '--diff shows a refusal becoming a rule, template names aside');
    like($out, qr{^removed: GET marketplace-api\.wildberries\.ru/gone: content read$}m, '--diff shows a removed rule');
    like($out, qr{^added: POST marketplace-api\.wildberries\.ru/api/v3/orders/status: marketplace\|statistics read$}m, '--diff shows an added rule');
    like($out, qr{^6 added, 1 removed, 5 changed, 1 unchanged$}m, '--diff counts them');

    spew("$tmp/bad.rules",
         "token_scope_operations x {\n    GET /no-host;\n}\n");
    ($rc, $out, $err) = convert('--diff', "$tmp/bad.rules",
        't/openapi/categories.yaml');
    is($rc, 2, '--diff of a catalogue it cannot read exits 2');
    like($err, qr{bad\.rules:2: not a rule}, '--diff names the line it cannot read');
}


# the shipped rules

SKIP: {
    my @wb = sort glob('../shared/wb-openapi/*.yaml');

    skip 'no ../shared/wb-openapi beside the repository', 6 unless @wb;
    skip 'python3-yaml is not installed', 6 unless $have_yaml;

    ($rc, $out, $err) = convert('--name', 'wb', @wb);
    is($rc, 0, 'every WB operation is classified');
    is($out, slurp('conf.d/wb-operations.conf'), 'conf.d/wb-operations.conf is up to date (regenerate: scripts/openapi-rules --name wb -o conf.d/wb-operations.conf ../shared/wb-openapi/*.yaml)');
    like($err, qr/286 operations in 13 files -> 286 rules/, 'WB\'s 286 operations make 286 rules');
    like($err, qr/duplicates: 0, unclassified: 0, skipped: 0, not written: 0, dropped keys: 0/, 'WB\'s files define no operation twice and none is refused');

    ($rc, $out, $err) = convert('--diff', 'conf.d/wb-operations.conf',
        '../shared/wb-openapi');
    is($rc, 0, '--diff of the shipped catalogue and WB\'s folder exits 0');
    like($out, qr{^0 added, 0 removed, 0 changed, 286 unchanged$}m, '--diff finds the shipped catalogue the same as WB\'s folder');
}

done_testing();

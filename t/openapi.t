#!/usr/bin/perl

# scripts/openapi-rules: OpenAPI files (t/openapi/) to token_scope_operations
# rules, compared with the expected files beside them; the reports on
# stderr and the exit status; and conf.d/wb-operations.conf is what the
# converter makes of ../shared/wb-openapi today.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);

use Test::More;

chdir "$FindBin::Bin/.." or die "cannot chdir to the repository: $!\n";

my $tmp = tempdir(CLEANUP => 1);
my $have_yaml = system("python3 -c 'import yaml' 2>/dev/null") == 0;

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

my ($rc, $out, $err);


# JSON input, no vendor extensions: security scopes

($rc, $out, $err) = convert('--scope-map', 't/openapi/security.map',
    't/openapi/security.json');
is($rc, 1, 'unclassified security requirements make the exit status 1');
is($out, '', 'nothing is written when an operation is unclassified');
like($err, qr{security\.json: DELETE /orders/\{orderId\}: unclassified: security alternatives \(OR\)}, 'OR alternatives of different categories are reported');
like($err, qr{security\.json: POST /webhooks: unclassified: .*\{key: \[\]\} names no scopes}, 'an API key without scopes is reported');
like($err, qr{security\.json: GET /reports: unclassified: scope 'read_reports' is not in the scope map}, 'a scope missing from the scope map is reported');
like($err, qr{security\.json: GET /public: unclassified: .*empty alternative}, 'optional authentication is reported');
like($err, qr{unclassified: 4\b}, 'the summary counts the unclassified operations');

($rc, $out, $err) = convert('--scope-map', 't/openapi/security.map',
    '--allow-unclassified', 't/openapi/security.json');
is($rc, 0, '--allow-unclassified makes the exit status 0');
is($out, slurp('t/openapi/security.rules'), 'scopes map to categories, document-level security applies, implied OR alternatives collapse');

($rc, $out, $err) = convert('--allow-unclassified', 't/openapi/security.json');
is($out, slurp('t/openapi/security-as-is.rules'), 'without a scope map a scope is a category name as it is');

($rc, $out, $err) = convert('--scope-map', "$tmp/no-such-map",
    't/openapi/security.json');
is($rc, 2, 'a missing scope map makes the exit status 2');

($rc, $out, $err) = convert("$tmp/no-such-file.json");
is($rc, 2, 'a missing input file makes the exit status 2');

open my $fh, '>', "$tmp/swagger.json" or die "$tmp/swagger.json: $!\n";
print $fh '{"swagger": "2.0", "paths": {}}';
close $fh;

($rc, $out, $err) = convert("$tmp/swagger.json");
like($err, qr/Swagger 2\.0 is not supported/, 'a Swagger 2.0 file is refused with a reason');


SKIP: {
    skip 'python3-yaml is not installed', 19 unless $have_yaml;

    # servers: operation > path item > document, base paths, sandboxes

    ($rc, $out, $err) = convert('t/openapi/servers.yaml');
    is($rc, 0, 'nested servers convert without complaint');
    is($out, slurp('t/openapi/servers.rules'), 'the innermost servers win, base paths are prepended, sandbox twins are dropped');
    like($err, qr{GET /sandbox-only: only sandbox servers \(beta-api-sandbox\.example\.com\): rules written for beta-api\.example\.com}, 'a sandbox-only server is noted');


    # categories, access, token types

    ($rc, $out, $err) = convert('--name', 'shop', 't/openapi/categories.yaml');
    is($rc, 0, 'vendor extensions convert without complaint');
    is($out, slurp('t/openapi/categories.rules'), 'several categories are all written, all and commonapi become common, x-token-types become types=');
    like($err, qr/read 5, write 3 \(1 POST read, 1 GET write\)/, 'the summary counts reads and writes that are not what the method suggests');


    # missing extensions

    ($rc, $out, $err) = convert('t/openapi/missing.yaml');
    is($rc, 1, 'an operation without x-category or security makes the exit status 1');
    like($err, qr{missing\.yaml: PATCH /products/\{id\}: unclassified: no x-category and no security requirement}, 'an operation without x-category or security is reported with file, method and path');
    like($err, qr{missing\.yaml: GET /status: unclassified: "security: \[\]": public}, 'an operation with "security: []" is reported as public');
    like($err, qr{warning: 3 operations without x-readonly-method}, 'access guessed from the method is counted in a warning');

    ($rc, $out, $err) = convert('--allow-unclassified', '-v',
        't/openapi/missing.yaml');
    is($out, slurp('t/openapi/missing.rules'), 'without x-readonly-method GET and HEAD are reads and POST a write');
    like($err, qr{missing\.yaml: POST /products\n}, '-v lists the operations whose access was guessed');


    # what the module cannot enforce

    ($rc, $out, $err) = convert('--default-host', 'files.example.com',
        '--allow-unclassified', 't/openapi/invalid.yaml');
    is($out, slurp('t/openapi/invalid.rules'), '--default-host gives a relative server a host');
    like($err, qr{GET /files/\{name\}\.json: unclassified: .*whole-segment templates}, 'a template inside a segment is reported');
    like($err, qr{GET /no-default: unclassified: .*variable \{tenant\} has no default}, 'a server variable without a default is reported');
    like($err, qr{GET /odd-values: unclassified: x-readonly-method is not a boolean}, 'a non-boolean x-readonly-method is reported');
    like($err, qr{PUT /odd-values: unclassified: x-token-types: unknown token type 'robot'}, 'an unknown token type is reported');


    # duplicates across files

    ($rc, $out, $err) = convert('--allow-unclassified',
        't/openapi/dup-a.yaml', 't/openapi/dup-b.yaml');
    is($out, slurp('t/openapi/dup.rules'), 'an operation defined twice with the same rule is written once, a conflicting one not at all');
    like($err, qr{POST dup\.example\.com/conflict is defined more than once with different rules}, 'a conflicting duplicate is reported');
}


SKIP: {
    skip 'python3-yaml is not installed', 2 unless $have_yaml;

    ($rc, $out, $err) = convert('-o', "$tmp/out.conf",
        't/openapi/categories.yaml');
    is(slurp("$tmp/out.conf"), slurp('t/openapi/categories.rules') =~ s/ shop / api /r, '-o writes the rules to a file, named api by default');

    ($rc, $out, $err) = convert('-o', "$tmp/none.conf",
        't/openapi/missing.yaml');
    ok(!-e "$tmp/none.conf", '-o writes no file when an operation is unclassified');
}


# the shipped rules

SKIP: {
    my @wb = sort glob('../shared/wb-openapi/*.yaml');

    skip 'no ../shared/wb-openapi beside the repository', 4 unless @wb;
    skip 'python3-yaml is not installed', 4 unless $have_yaml;

    ($rc, $out, $err) = convert('--name', 'wb', @wb);
    is($rc, 0, 'every WB operation is classified');
    is($out, slurp('conf.d/wb-operations.conf'), 'conf.d/wb-operations.conf is up to date (regenerate: scripts/openapi-rules --name wb -o conf.d/wb-operations.conf ../shared/wb-openapi/*.yaml)');
    like($err, qr/286 operations in 13 files -> 286 rules/, 'WB\'s 286 operations make 286 rules');
    like($err, qr/duplicates: 0, unclassified: 0/, 'WB\'s files define no operation twice');
}

done_testing();

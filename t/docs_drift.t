#!/usr/bin/perl

# The documentation and the code name the same directives and variables:
# every directive of a command table in src/*.c has its section in
# docs/directives.md ("### name") and every section a directive; every
# variable of a variable table has its entry under "Embedded Variables"
# and every entry a variable; directives.md names no directive that does
# not exist; the directives conf.d/*.conf uses (commented-out examples
# too) exist; and what token_scope_key_file reads is documented.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test;
use TokenScope::Model qw(documented_reasons);

my $ROOT = $TokenScope::Test::ROOT;

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "cannot read $path: $!\n";
    local $/;
    return scalar <$fh>;
}

# the code

my (%directives, %variables, %metrics);

for my $file (glob "$ROOT/src/*.c") {
    my $src = slurp($file);

    # { ngx_string("name"),
    #   NGX_HTTP_MAIN_CONF|...
    $directives{$1} = $file
        while $src =~ /\{\s*ngx_string\("(\w+)"\),\s*
                       NGX_(?:HTTP_(?:MAIN|SRV|LOC|UPS|SIF|LIF|LMT)_CONF
                           |MAIN_CONF|DIRECT_CONF|ANY_CONF)\b/gx;

    # { ngx_string("name"), ngx_http_..._variable_..., data }
    $variables{$1} = $file
        while $src =~ /\{\s*ngx_string\("(\w+)"\),\s*ngx_http_\w*variable\w*,/g;

    # prefix variables ($token_scope_claim_NAME): ngx_string("..._")
    $variables{$1} = $file
        while $src =~ /ngx_string\("(token_scope_\w+_)"\)/g;

    # the status page's families: "# HELP name ..."
    $metrics{$1} = $file
        while $src =~ /"# HELP (token_scope_\w+) /g;
}

my @prefixes = grep { /_\z/ } keys %variables;

ok(keys %directives > 20, 'directives found in the command tables: ' . scalar(keys %directives));
ok(keys %variables > 10, 'variables found in the variable tables: ' . scalar(keys %variables));
ok(keys %metrics > 10, 'metric families found on the status page: ' . scalar(keys %metrics));

# the documentation

my $doc = slurp("$ROOT/docs/directives.md");

my %doc_directives = map { $_ => 1 } $doc =~ /^### (token_scope\w*)\s*$/mg;

my ($vars_section) = $doc =~ /^## Embedded Variables\n(.*?)(?=^## |\z)/ms;
my %doc_variables = map { $_ => 1 }
                    ($vars_section // '') =~ /^`\$(\w+)`(?:\*name\*)?\s*$/mg;

sub differ {
    my ($a, $b) = @_;
    return join(' ', sort grep { !$b->{$_} } keys %$a);
}

is(differ(\%directives, \%doc_directives), '', 'every directive has its section in docs/directives.md');
is(differ(\%doc_directives, \%directives), '', 'every section of docs/directives.md is a directive of the code');
is(differ(\%variables, \%doc_variables), '', 'every variable has its entry in docs/directives.md');
is(differ(\%doc_variables, \%variables), '', 'every variable entry of docs/directives.md is a variable of the code');

# any other token_scope_ word of directives.md: a directive, a variable
# (or a name under a prefix variable's), a metric family of the status
# page, or one of the names that are neither (the module, the log format
# of conf.d/audit.conf)

my %other = (token_scope_module => 1, token_scope_audit => 1);
my %unknown;

while ($doc =~ /(\$?)\b(token_scope\w*)/g) {
    my ($dollar, $name) = ($1, $2);

    next if $dollar ? $variables{$name} : $directives{$name};
    next if $dollar && grep { index($name, $_) == 0 } @prefixes;
    (my $family = $name) =~ s/_(?:bucket|sum|count)\z//;
    next if !$dollar && ($other{$name} || $metrics{$name}
                         || $metrics{$family});

    $unknown{"$dollar$name"} = 1;
}

is(join(' ', sort keys %unknown), '', 'docs/directives.md names no directive or variable that does not exist');

# conf.d: every directive used, or shown commented out, exists

my %used;

for my $file (glob "$ROOT/conf.d/*.conf") {
    (my $name = $file) =~ s{.*/}{};

    for (split /\n/, slurp($file)) {
        next unless /^\s*(?:#\s*)?(token_scope\w*)\s/;
        $used{$1} //= $name;
    }
}

ok(keys %used > 5, 'directives found in conf.d: ' . scalar(keys %used));
is(join(' ', map { "$_ ($used{$_})" } sort grep { !$directives{$_} } keys %used), '', 'every directive conf.d uses exists');

# what the key file may hold

my $keys = slurp("$ROOT/src/ts_key.c");
my ($key_section) = $doc =~ /^### token_scope_key_file\n(.*?)(?=^### )/ms;

if ($keys =~ /PEM_read_bio_X509\b/) {
    like($key_section // '', qr/X\.509 certificate.*BEGIN CERTIFICATE/s, 'token_scope_key_file documents that it takes X.509 certificates, as ts_key.c does');
}

if ($keys =~ /"keys"/) {
    like($key_section // '', qr/JWKS/, 'token_scope_key_file documents JWKS files');
}

# conf.d/audit.conf lists every reason docs/errors.md documents

my ($audit_reasons) = slurp("$ROOT/conf.d/audit.conf")
                      =~ /^#   reason\s.*?:\n(.*?)\(docs\/errors\.md\)/ms;
my %listed = map { $_ => 1 } ($audit_reasons // '') =~ /\b([a-z_]+)\b/g;
my %reasons = map { $_ => 1 } grep { $_ ne 'ok' } documented_reasons($ROOT);

is(differ(\%reasons, \%listed), '', 'conf.d/audit.conf lists every reason of docs/errors.md');
is(differ(\%listed, \%reasons), '', 'conf.d/audit.conf lists no reason docs/errors.md does not document');

done_testing();

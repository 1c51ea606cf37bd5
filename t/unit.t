#!/usr/bin/perl

# The core's C unit tests (t/unit/ts_unit.c) speak TAP themselves.

use strict;
use warnings;

use FindBin;

my $bin = "$FindBin::Bin/../build/ts-unit";

exec $bin or die "cannot run $bin ($!): run 'make unit' first\n";

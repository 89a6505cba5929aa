package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"testing"

	"github.com/skiffkv/skiff"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		args  []string
		pos   []string
		limit int
	}{
		{[]string{"a", "--limit", "3", "b"}, []string{"a", "b"}, 3},
		{[]string{"--limit=2", "a"}, []string{"a"}, 2},
		{[]string{"a", "--", "--limit", "-x"}, []string{"a", "--limit", "-x"}, 0},
		{[]string{"-", "b"}, []string{"-", "b"}, 0}, // "-" is stdin, not a flag
		{nil, nil, 0},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		limit := fs.Int("limit", 0, "")
		pos, err := parseFlags(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || *limit != c.limit {
			t.Errorf("parseFlags(%q) = %q, limit %d, %v; want %q, limit %d", c.args, pos, *limit, err, c.pos, c.limit)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	if _, err := parseFlags(fs, []string{"--nope"}); !errors.Is(err, errUsage) {
		t.Errorf("an unknown flag: err = %v, want a usage error", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4KiB": 4 << 10, "64 MiB": 64 << 20, "2GiB": 2 << 30, "1MB": 1e6, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "lots", "1.5GiB", "99999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
	var n int
	if err := (sizeFlag[int]{&n}).Set("64KiB"); err != nil || n != 64<<10 || formatSize(int64(n)) != "64KiB" {
		t.Errorf("sizeFlag: %d, %v", n, err)
	}
}

// Each sentinel lands on its documented exit code, the most telling one
// first when an error wraps several.
func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("disk on fire"), exitError},
		{skiff.ErrCorrupt, exitError},
		{usagef("bad"), exitUsage},
		{skiff.ErrInvalidKey, exitUsage},
		{skiff.ErrConfig, exitUsage},
		{skiff.ErrNotFound, exitNotFound},
		{skiff.ErrNotMember, exitNotFound},
		{&skiff.CompactedError{Revision: 1, Oldest: 6}, exitNotFound},
		{&skiff.CompactedError{Revision: 1, Oldest: 6, Lagged: true}, exitNotFound},
		{skiff.ErrExists, exitPrecondition},
		{skiff.ErrRevisionMismatch, exitPrecondition},
		{skiff.ErrUnavailable, exitUnavailable},
		{skiff.ErrNoLeader, exitUnavailable},
		{context.DeadlineExceeded, exitUnavailable},
		{fmt.Errorf("%w: %w", skiff.ErrIndeterminate, skiff.ErrTimeout), exitIndeterminate},
		{skiff.ErrPermissionDenied, exitDenied},
	}
	for _, c := range cases {
		if got := exitCode(fmt.Errorf("context: %w", c.err)); c.err != nil && got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

package skiff_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// recorder is a slog.Handler that keeps every line, for tests that read
// what a node logged.
type recorder struct {
	mu    *sync.Mutex
	lines *[]logLine
	attrs []slog.Attr
}

type logLine struct {
	level slog.Level
	msg   string
	keys  []string // in order, repeats included
	text  string
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), lines: new([]logLine)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logLine{level: rec.Level, msg: rec.Message}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", rec.Level, rec.Message)
	add := func(a slog.Attr) bool {
		l.keys = append(l.keys, a.Key)
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	l.text = b.String()
	r.mu.Lock()
	*r.lines = append(*r.lines, l)
	r.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &c
}

func (r *recorder) WithGroup(string) slog.Handler { return r } // unused by skiff

func (r *recorder) all() []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logLine(nil), *r.lines...)
}

// An ordinary rolling restart (stop a member, write, start it again, wait
// until it has caught up; then the next) is routine: it must not log
// errors. Raft's complaints about the member that is away are warnings,
// and no line repeats a key.
func TestRollingRestartLogsNoErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts three nodes")
	}
	rec := newRecorder()
	nodes, cfgs := staticCluster(t, 3, func(i int, cfg *skiff.Config) { cfg.Logger = slog.New(rec) })
	ctx := testCtx(t)
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if err := nodes[i].Close(); err != nil {
			t.Fatalf("Close(s%d): %v", i, err)
		}
		want := putAll(t, nodes[(i+1)%3], fmt.Sprintf("while-s%d-away", i), 10)
		var err error
		if nodes[i], err = skiff.Open(ctx, cfgs[i]); err != nil {
			t.Fatalf("reopen s%d: %v", i, err)
		}
		t.Cleanup(func() { nodes[i].Close() })
		eventually(t, 10*time.Second, func() error { return hasAll(nodes[i], want) })
		if _, err := nodes[i].Put(ctx, fmt.Sprintf("back/s%d", i), []byte("x")); err != nil {
			t.Fatalf("Put on restarted s%d: %v", i, err)
		}
	}
	warnings := 0
	for _, l := range rec.all() {
		if l.level >= slog.LevelError {
			t.Errorf("logged an error: %s", l.text)
		}
		if l.level == slog.LevelWarn {
			warnings++
		}
		seen := map[string]bool{}
		for _, k := range l.keys {
			if seen[k] {
				t.Errorf("key %q written twice: %s", k, l.text)
			}
			seen[k] = true
		}
	}
	t.Logf("%d lines, %d warnings", len(rec.all()), warnings)
}
